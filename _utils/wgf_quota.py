"""Client quotas (issue 23): ``limits: {quota, period}`` enforced in the formula's
nftables table (or its iptables chains: the ``ipt_*`` functions), counted across table
replacements, applies, restarts and reboots.

Pure text and arithmetic; what runs it is the host adapter (``wgf_host.Host``).

- **Enforcement**: one named ``quota`` object per client (``quota_<if>_<client>``,
  ``over <quota> bytes used <count> bytes``) that every packet of the client passes in
  both directions: what it sends (``iifname <if> saddr <its address>``, chains input and
  forward) and what it is sent (``oifname <if> daddr <its address>``, chains forward and
  output). Once the count is over the quota, the rule drops the packet. The rules come
  after the clients' rates (a packet a rate drops is not counted) and before every
  accept of ``open_port``, ``access`` and ``masquerade``.
- **Counters**: the count lives in the kernel's quota object. Before the table is
  replaced, the live count is read and written into the new table (``carried``); when
  the table is gone (a reboot), the count comes from the counters file that the saver
  keeps. The saver (``script_text``, POSIX shell) runs every ``INTERVAL`` seconds from a
  systemd timer (OpenRC: a detached loop) and at orderly shutdown, without salt-minion:
  it copies the live counts into ``counters`` (0600, in the 0700 ``STATE_DIR``), resets
  a client's count when its period has ended, and sends ``wireguard/client/over_quota``
  once per period for each client whose quota is used up.
- **Periods** (UTC): ``day`` (``2026-12-06``), ``week`` (ISO week, from Monday,
  ``2026-W49``), ``month`` (``2026-12``); a count belongs to the period id it was
  saved with, and a new id starts it at 0.

Files in ``STATE_DIR`` (no key, no address: object names, client names, numbers)::

    clients   <object> <interface> <client> <quota bytes> <period>     (written by the apply)
    counters  <object> <period id> <used bytes> <period id notified|->  (written by the saver)
"""

import datetime
import ipaddress
import json
import re
import shlex

import wgf_events
import wgf_openrc

STATE_DIR = "/var/lib/wireguard-formula/quota"
SCRIPT = "save"
CLIENTS = "clients"
COUNTERS = "counters"
WAITER = "waiter"
EVENT_TAG = "wireguard/client/over_quota"
#: Seconds between two saves: a crash loses at most this much counting.
INTERVAL = 30
UNIT = "wireguard-quota"
#: The unit whose stop (at shutdown) saves the counts once more.
SHUTDOWN_UNIT = "wireguard-quota-shutdown.service"
UNIT_DIR = "/etc/systemd/system"
SHELL = "/bin/sh"
TABLE = "wireguard"
DIRECTIONS = ("in", "out")
NFT_CHAINS = {"in": ("input", "forward"), "out": ("forward", "output")}
IPT_CHAINS = {
    "in": ("WIREGUARD-INPUT", "WIREGUARD-FORWARD"),
    "out": ("WIREGUARD-FORWARD", "WIREGUARD-OUTPUT"),
}
_FAMILY = {4: "ip", 6: "ip6"}
_NOT_LIVE = ("disabled", "expired")
_SAFE = re.compile(r"[A-Za-z0-9_]")
_USED = re.compile(r"^(\s*over \d+ \S+) used \d+ \S+$", re.MULTILINE)
_LINE = re.compile(r"[A-Za-z0-9_.-]+")
_IPT_COUNT = re.compile(r'^\[\d+:(\d+)\] -A WIREGUARD-\S+ .* quota (quota_[^" ]+)(?:"| of )')


# ------------------------------------------------------------------- who is counted


def quota_clients(iface):
    """``[(client, quota bytes, period, [addresses])]`` of the interface's present,
    enabled, unexpired clients whose ``limits`` set a ``quota``, by name."""
    out = []
    for name, client in sorted(iface.get("clients", {}).items()):
        limits = client.get("limits") or {}
        if client.get("absent") or client.get("status") in _NOT_LIVE or not limits.get("quota"):
            continue
        if client.get("address"):
            out.append((name, limits["quota"], limits["period"], list(client["address"])))
    return out


def needs_table(iface):
    """Whether a client's ``quota`` needs the formula's firewall on this interface."""
    return bool(quota_clients(iface))


def _ident(text):
    return "".join(c if _SAFE.fullmatch(c) else f".{ord(c):02x}" for c in text)


def object_name(interface, client):
    """The named ``quota`` object of one client."""
    return f"quota_{_ident(interface)}_{_ident(client)}"


# -------------------------------------------------------------------------- periods


def period_id(period, now):
    """The id of the period (``day``, ``week``, ``month``, UTC) that holds ``now``."""
    now = now.astimezone(datetime.timezone.utc)
    if period == "day":
        return now.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week:02d}"
    return now.strftime("%Y-%m")


def period_end(period, now):
    """The instant (aware, UTC) the period holding ``now`` ends: the next midnight, the
    next Monday's, or the first of the next month's."""
    now = now.astimezone(datetime.timezone.utc)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day + datetime.timedelta(days=1)
    if period == "week":
        return day + datetime.timedelta(days=7 - now.weekday())
    if now.month == 12:
        return day.replace(year=now.year + 1, month=1, day=1)
    return day.replace(month=now.month + 1, day=1)


# ---------------------------------------------------------------------- the counts


def parse_live(json_text):
    """``{object: used bytes}`` from ``nft -j list quotas table inet wireguard``."""
    try:
        items = json.loads(json_text or "{}").get("nftables", [])
    except (ValueError, AttributeError):
        return {}
    return {
        item["quota"]["name"]: int(item["quota"].get("used", 0))
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("quota"), dict)
        and item["quota"].get("table") == TABLE
    }


def parse_counters(text):
    """``{object: (period id, used, notified period id or None)}`` of the counters file;
    lines that are not four fields are skipped."""
    found = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2].isdigit():
            found[parts[0]] = (parts[1], int(parts[2]), None if parts[3] == "-" else parts[3])
    return found


def counters_text(counters):
    """The counters file for ``{object: (period id, used, notified or None)}``."""
    return "".join(
        f"{name} {pid} {int(used)} {notified or '-'}\n"
        for name, (pid, used, notified) in sorted(counters.items())
    )


def count(name, period, live, saved, now):
    """A client's count in the current period: 0 when the saved count is of an earlier
    period (the saver may not have reset it yet), else the live quota object's when the
    table has it, else the saved one (the table is gone: a reboot)."""
    current = period_id(period, now)
    record = saved.get(name)
    if record is not None and record[0] != current:
        return 0
    if name in live:
        return live[name]
    return record[1] if record else 0


def carried(interfaces, live, saved, now):
    """``{object: used}`` to write into a new table: every counted client's count."""
    return {
        object_name(iface["name"], client): count(
            object_name(iface["name"], client), period, live, saved, now
        )
        for iface in interfaces
        for client, _, period, _ in quota_clients(iface)
    }


def use(iface, live, saved, now):
    """``{client: use}`` for ``wireguard.clients``: ``used`` (bytes of this period, at
    most the quota: what went over it was dropped), ``quota``, ``remaining``, ``period``,
    ``period_end`` (UTC) and ``over_quota``; for each present client with a quota."""
    found = {}
    for name, client in sorted(iface.get("clients", {}).items()):
        limits = client.get("limits") or {}
        if client.get("absent") or not limits.get("quota"):
            continue
        quota, period = limits["quota"], limits["period"]
        used = min(count(object_name(iface["name"], name), period, live, saved, now), quota)
        found[name] = {
            "used": used,
            "quota": quota,
            "remaining": quota - used,
            "period": period,
            "period_end": period_end(period, now).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "over_quota": used >= quota,
        }
    return found


def use_of(host, declared, now):
    """``{interface: {client: use}}`` (``use``) of the declared interfaces, from the
    live counts (``host.nft_quotas``; iptables: ``host.iptables_counts``) and the
    saver's counters file."""
    live = parse_live(host.nft_quotas(TABLE)) if host.has_exec("nft") else {}
    live.update(parse_ipt_live(host.iptables_counts(4), host.iptables_counts(6)))
    saved = parse_counters(host.read_text(f"{STATE_DIR}/{COUNTERS}"))
    return {
        name: use(iface, live, saved, now)
        for name, iface in declared.items()
        if not iface.get("absent")
    }


# -------------------------------------------------------------------- nftables text


def strip_used(table_text):
    """A listed table without its quotas' counts: what is compared to tell whether the
    table must change (the counts change all the time)."""
    return None if table_text is None else _USED.sub(r"\1", table_text)


def nft_objects(iface, used=None):
    """The table's ``quota`` objects for the counted clients of ``iface`` (lines)."""
    lines = []
    for name, quota, _, _ in quota_clients(iface):
        obj = object_name(iface["name"], name)
        count_ = int((used or {}).get(obj, 0))
        tail = f" used {count_} bytes" if count_ else ""
        lines += [f"quota {obj} {{", f"\tover {quota} bytes{tail}", "}"]
    return lines


def nft_rules(iface):
    """``{chain: [rules]}`` (input, forward, output) that count the clients' traffic in
    both directions into their quota and drop it once the quota is used up."""
    chains = {"input": [], "forward": [], "output": []}
    ifname = iface["name"]
    for name, _, _, addresses in quota_clients(iface):
        obj = object_name(ifname, name)
        comment = f'comment "{ifname} client {name} quota"'
        for direction in DIRECTIONS:
            for address in addresses:
                family = _FAMILY[ipaddress.ip_address(address).version]
                match = (
                    f'iifname "{ifname}" {family} saddr {address}'
                    if direction == "in"
                    else f'oifname "{ifname}" {family} daddr {address}'
                )
                for chain in NFT_CHAINS[direction]:
                    chains[chain].append(f'{match} quota name "{obj}" drop {comment}')
    return chains


# -------------------------------------------------------------------- iptables text


def ipt_comment(interface, client, quota=None):
    """The comment of a client's counting rules (``wgf_quota_ipt``): its object name
    last, or followed by `` of <quota>`` (the saver and ``parse_ipt_live`` find the
    client by it)."""
    tail = f" of {quota}" if quota is not None else ""
    return f"{interface} client {client} quota {object_name(interface, client)}{tail}"


def parse_ipt_live(*save_texts):
    """``{object: used bytes}``: the byte counters of each client's counting rules in
    ``ip(6)tables-save -c`` outputs (None: the tool is missing), summed over both
    directions and both IP versions."""
    found = {}
    for text in save_texts:
        for line in (text or "").splitlines():
            match = _IPT_COUNT.match(line)
            if match:
                found[match[2]] = found.get(match[2], 0) + int(match[1])
    return found


# --------------------------------------------------------------------- the saver


def clients_text(interfaces):
    """The ``clients`` file: one line per counted client of every interface whose table
    the formula builds (``interfaces`` already filtered by the caller)."""
    lines = []
    for iface in sorted(interfaces, key=lambda i: i["name"]):
        for name, quota, period, _ in quota_clients(iface):
            fields = (object_name(iface["name"], name), iface["name"], name, str(quota), period)
            if not all(_LINE.fullmatch(f) for f in fields):
                raise ValueError(f"quota: client {name!r} cannot be written into {CLIENTS}")
            lines.append(" ".join(fields) + "\n")
    return "".join(lines)


#: The saver's count keeping, in awk: ``clients`` and ``counters`` (the files), then the
#: live counts (``<object> <used>`` lines). Writes ``counters.new``, and prints
#: ``reset <object> <quota>``, ``over <object>`` (used up: iptables' rules must drop) and
#: ``event <interface> <client> <quota> <period> <id> <used>``.
_AWK = r"""
FILENAME == ARGV[1] { q[$1] = $4; per[$1] = $5; ifc[$1] = $2; cl[$1] = $3; next }
FILENAME == ARGV[2] { spid[$1] = $2; sused[$1] = $3; snote[$1] = $4; next }
{ live[$1] = $2 }
END {
    for (o in q) {
        cur = (per[o] == "day") ? day : (per[o] == "week") ? week : month
        note = (o in snote) ? snote[o] : "-"
        if ((o in spid) && spid[o] != cur) {
            used = 0; note = "-"
            if (o in live) print "reset " o " " q[o]
        } else if (o in live) {
            used = live[o]
        } else {
            used = (o in sused) ? sused[o] : 0
        }
        if (used + 0 >= q[o] + 0) print "over " o
        if (used + 0 >= q[o] + 0 && note != cur) {
            print "event " ifc[o] " " cl[o] " " q[o] " " per[o] " " cur " " used
            note = cur
        }
        print o " " cur " " used " " note > (dir "/counters.new")
    }
}
"""

#: The event's data as the saver prints it (names need no escape: checked when written).
_EVENT_FORMAT = (
    '{"interface": "%s", "client": "%s", "quota": %s, "period": "%s", '
    '"period_id": "%s", "used": %s}'
)


#: The byte counts of the clients' iptables counting rules, ``<object> <bytes>`` a rule.
_IPT_SED = r's/^\[[0-9]*:\([0-9]*\)\] -A WIREGUARD-.* quota \(quota_[^" ]*\)[" ].*/\2 \1/p'
#: ``ipt_mark <object> drop``: the client's chains (``wgf_quota_ipt``) get a DROP first
#: (comment ``<object>-over``), once; ``ipt_mark <object> count <quota>`` (a new period): those
#: DROPs go, the quota match starts again at the whole quota and the other counting rules
#: at 0 (``-R`` and ``-Z`` of the rule found again by its text). No other rule changes.
_IPT_MARK = [
    "ipt_mark() {",
    "    for tool in iptables ip6tables; do",
    '        command -v "$tool" > /dev/null 2>&1 || continue',
    "        \"$tool\" -w -S 2> /dev/null | grep '^-A WIREGUARD-' |"
    ' grep -F -e " quota $1\\"" -e " quota $1 of " > "$dir/rules"',
    "        while read -r _ chain rest; do",
    '            over="-m comment --comment $1-over -j DROP"',
    '            if [ "$2" = drop ]; then',
    '                case "$chain" in WIREGUARD-Q-*) ;; *) continue ;; esac',
    '                "$tool" -w -C "$chain" $over 2> /dev/null || "$tool" -w -I "$chain" 1 $over',
    "                continue",
    "            fi",
    '            while "$tool" -w -D "$chain" $over 2> /dev/null; do :; done',
    '            n="$("$tool" -w -S "$chain" | grep \'^-A \' |'
    ' grep -n -x -F -- "-A $chain $rest" | cut -d: -f1 | head -n 1)"',
    '            [ -n "$n" ] || continue',
    '            case "$rest" in',
    '            *"--quota "*) eval "$tool -w -R $chain $n'
    ' $(echo "$rest" | sed "s/--quota [0-9]*/--quota $3/")" ;;',
    '            *) "$tool" -w -Z "$chain" "$n" ;;',
    "            esac",
    '        done < "$dir/rules"',
    "    done",
    '    rm -f "$dir/rules"',
    "}",
]


def script_text(salt_call=None, root=None):
    """The saver (``sh <dir>/save``): under the directory's lock it reads the live
    counts (``nft -j list quotas``), keeps them in ``counters`` (a count of an ended
    period is reset, live too: ``nft reset quota``), and for each client whose quota
    is used up queues ``wireguard/client/over_quota`` once per period in ``events/``,
    then sends the queued events with ``salt-call event.fire_master`` (``salt-call`` on
    PATH, else ``salt_call``) and logs them in ``sent``; an event no master took waits
    for the next run."""
    directory = shlex.quote(root or STATE_DIR)
    fallback = shlex.quote(salt_call) if salt_call else "''"
    return (
        "\n".join(
            [
                "#!/bin/sh",
                "# wireguard-formula: keep the clients' quota counts (issue 23). Written at",
                "# apply time; no key, no address: object and client names, numbers.",
                "set -u",
                f"dir={directory}",
                "umask 077",
                'exec 9>"$dir/lock"',
                "flock 9",
                '[ -f "$dir/clients" ] || exit 0',
                '[ -f "$dir/counters" ] || : > "$dir/counters"',
                "nft -j list quotas table inet wireguard 2>/dev/null | tr '{' '\\n' |"
                ' sed -n \'s/.*"name": "\\([^"]*\\)".*"used": \\([0-9]*\\).*/\\1 \\2/p\''
                ' > "$dir/live"',
                "{ iptables-save -c -t filter; ip6tables-save -c -t filter; } 2>/dev/null |"
                f" sed -n '{_IPT_SED}' |"
                " awk '{ s[$1] += $2 } END { for (o in s) print o, s[o] }' >> \"$dir/live\"",
                *_IPT_MARK,
                'awk -v dir="$dir" -v day="$(date -u +%Y-%m-%d)" -v week="$(date -u +%G-W%V)"'
                ' -v month="$(date -u +%Y-%m)" \'' + _AWK + '\' "$dir/clients" "$dir/counters"'
                ' "$dir/live" > "$dir/todo" || exit 1',
                "while read -r what a b c d e f; do",
                '    case "$what" in',
                '    reset) nft reset quota inet wireguard "$a" > /dev/null 2>&1',
                '        ipt_mark "$a" count "$b" ;;',
                '    over) ipt_mark "$a" drop ;;',
                "    event)",
                '        mkdir -p "$dir/events"',
                f'        printf \'{_EVENT_FORMAT}\\n\' "$a" "$b" "$c" "$d" "$e" "$f"'
                ' > "$dir/events/$e-$a-$b.tmp"',
                '        mv -f "$dir/events/$e-$a-$b.tmp" "$dir/events/$e-$a-$b" ;;',
                "    esac",
                'done < "$dir/todo"',
                'mv -f "$dir/counters.new" "$dir/counters"',
                'rm -f "$dir/live" "$dir/todo"',
                *wgf_events.send_lines(EVENT_TAG, fallback, "0"),
            ]
        )
        + "\n"
    )


def units(root=None):
    """``{unit file name: text}`` of the systemd saver: a timer every ``INTERVAL``
    seconds (and once after boot), and a unit whose stop at shutdown saves once more
    (ordered after nftables.service, so it runs before that flushes the rule set)."""
    run = f"{SHELL} {root or STATE_DIR}/{SCRIPT}"
    head = "# wireguard-formula: the clients' quota counts (issue 23)\n"
    return {
        f"{UNIT}.service": head
        + "[Unit]\nDescription=wireguard-formula: save the clients' quota counts\n\n"
        + f"[Service]\nType=oneshot\nExecStart={run}\n",
        f"{UNIT}.timer": head
        + "[Unit]\nDescription=wireguard-formula: save the clients' quota counts often\n\n"
        + f"[Timer]\nOnBootSec={INTERVAL}s\nOnUnitActiveSec={INTERVAL}s\nAccuracySec=1s\n\n"
        + "[Install]\nWantedBy=timers.target\n",
        SHUTDOWN_UNIT: head
        + "[Unit]\nDescription=wireguard-formula: save the clients' quota counts at shutdown\n"
        + "After=network.target nftables.service\n\n"
        + f"[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\nExecStop={run}\n\n"
        + "[Install]\nWantedBy=multi-user.target\n",
    }


def enabled_units():
    """What the saver enables and starts."""
    return [f"{UNIT}.timer", SHUTDOWN_UNIT]


#: OpenRC: a detached loop; the host adapter puts the lines that leave salt-minion's
#: cgroup (``wgf_confirm_undo.LEAVE_CGROUP``, as the expiry waiter does) before it.
WAITER_LOOP = f'while :; do /bin/sh "$1"; sleep {INTERVAL}; done\n'


def waiter_argv(leave_cgroup="", root=None):
    return [SHELL, "-c", leave_cgroup + WAITER_LOOP, UNIT, f"{root or STATE_DIR}/{SCRIPT}"]


def boot_script(leave_cgroup="", root=None):
    """OpenRC: the init script (``wgf_openrc``, service ``UNIT``) that starts the loop
    again after a reboot and saves the counts once more when it stops at shutdown."""
    directory = root or STATE_DIR
    return wgf_openrc.waiter_script(
        "wireguard-formula: save the clients' quota counts",
        waiter_argv(leave_cgroup, root),
        f"{directory}/{WAITER}",
        stop=[SHELL, f"{directory}/{SCRIPT}"],
    )


def is_waiter(cmdline, leave_cgroup="", root=None):
    """Whether ``cmdline`` (``/proc/<pid>/cmdline``) is the saver's OpenRC loop."""
    args = cmdline.decode(errors="replace").split("\0")
    return len(args) >= 5 and args[1:5] == waiter_argv(leave_cgroup, root)[1:]
