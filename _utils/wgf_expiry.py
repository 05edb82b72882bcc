"""
Client expiry on time (issue 23): what removes the live peer of a client at the instant
its ``expires`` passes, without Salt. Pure text: the schedule, the POSIX shell script
that removes the expired peers (live and from the interface's conf) and sends
``wireguard/client/expired``, the timer that runs it (systemd: one persistent timer unit
per interface, one ``OnCalendar`` per future instant; OpenRC: a detached waiter). What
writes and runs them is the host adapter (``wgf_host.Host``).

Nothing here holds a key: the schedule names clients, their public keys and instants.
"""

import datetime
import json
import math
import os
import re
import shlex

import wgf_addr
import wgf_clients
import wgf_confirm_undo
import wgf_events
import wgf_files
import wgf_layout
import wgf_openrc

#: Root-only (0700) state, one directory per interface.
STATE_ROOT = "/var/lib/wireguard-formula/expiry"
SCRIPT = "expire"
SCHEDULE = "schedule"
#: What was armed (the schedule's text): the apply compares it with what it wants.
ARMED = "armed"
WAITER = "waiter"
EVENT_TAG = "wireguard/client/expired"
SHELL = "/bin/sh"
#: Where the timer and service unit files go (a test points it elsewhere).
UNIT_DIR = wgf_layout.SYSTEMD_UNIT_DIR

#: The event's data, as the script prints it (client and interface names need no escape).
_EVENT_FORMAT = '{"interface": "%s", "client": "%s", "expires": "%s"}'

_PATH = re.compile(r"/[A-Za-z0-9._@+/=-]*")


def unit_name(interface):
    """``wireguard-client-expiry-<if>``: the timer's and service's name."""
    wgf_addr.check_interface_name(interface)
    return f"wireguard-client-expiry-{interface}"


def timer_unit(interface):
    return unit_name(interface) + ".timer"


def service_unit(interface):
    return unit_name(interface) + ".service"


def unit_paths(interface, unit_dir=None):
    """``[service file, timer file]`` of ``interface`` under ``/etc/systemd/system``."""
    unit_dir = unit_dir or UNIT_DIR
    return [f"{unit_dir}/{service_unit(interface)}", f"{unit_dir}/{timer_unit(interface)}"]


def state_dir(interface, root=STATE_ROOT):
    wgf_addr.check_interface_name(interface)
    return f"{root}/{interface}"


def _path(path):
    if not isinstance(path, str) or not _PATH.fullmatch(path) or "/../" in path + "/":
        raise ValueError(f"expiry script: {path!r} is no path the script may name")
    return shlex.quote(path)


def schedule(iface, peers, now):
    """``[(epoch, iso, client, public key)]``, sorted: each live client of the validated
    ``iface`` (``peers``: ``{public key: peer}`` of its client peers) whose ``expires``
    is after ``now`` (aware datetime). ``epoch`` is the first whole second at or after
    the instant, when the timer fires."""
    found = []
    for key, peer in peers.items():
        client = iface["clients"].get(peer["name"])
        when = wgf_clients.expires_at(client) if client else None
        if when is None or when <= now or not key:
            continue
        epoch = math.ceil(when.timestamp())
        found.append((epoch, _iso(epoch), peer["name"], key))
    return sorted(found)


def _iso(epoch):
    when = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_text(entries):
    """The schedule file: one ``<epoch> <iso> <client> <public key>`` line per entry."""
    lines = []
    for epoch, iso, name, key in entries:
        if not wgf_clients.is_client_name(name) or not re.fullmatch(r"[A-Za-z0-9+/]{43}=", key):
            raise ValueError(f"expiry schedule: client {name!r}")
        lines.append(f"{int(epoch)} {iso} {name} {key}\n")
    return "".join(lines)


def instants(entries):
    """The distinct epochs of ``entries``, in order: when the timer fires."""
    return sorted({int(e[0]) for e in entries})


def calendar(epoch):
    """systemd's calendar form of ``epoch``, in UTC (``2027-01-31 18:00:00 UTC``)."""
    when = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def script_argv(interface, root=STATE_ROOT):
    return [SHELL, f"{state_dir(interface, root)}/{SCRIPT}"]


def unit_files(interface, epochs, after, root=STATE_ROOT, unit_dir=None):
    """``{path: text}`` of the timer and service units of ``interface``, files under
    ``/etc/systemd/system`` so that they survive a reboot: the timer has one
    ``OnCalendar`` per instant of ``epochs`` (clients expiring at different instants
    between two applies are each removed on time, with no re-arming), ``AccuracySec=1s``
    (the default minute would miss the 10 s) and ``Persistent=true``: an instant that
    passed while the machine was off (or the timer stopped) runs the script as soon as
    the timer starts again, at boot. The service is ordered after the interface's unit
    ``after`` (``wg-quick@<if>.service``), so at boot it runs once the interface is up.
    PID 1 runs them, outside salt-minion."""
    if not epochs:
        raise ValueError(f"{interface}: no expiry to arm")
    if not re.fullmatch(r"[A-Za-z0-9@._:-]+", after or ""):
        raise ValueError(f"{interface}: {after!r} is no unit name")
    after = after if after.endswith(".service") else after + ".service"
    what = f"wireguard-formula: remove the expired clients of {interface}"
    service_path, timer_path = unit_paths(interface, unit_dir)
    script = " ".join(script_argv(interface, root))
    return {
        service_path: (
            f"# {what} (issue 23). Written by Salt: local changes are overwritten.\n"
            f"[Unit]\nDescription={what}\nAfter={after}\n\n"
            f"[Service]\nType=oneshot\nExecStart={script}\n"
        ),
        timer_path: (
            f"# {what} (issue 23). Written by Salt: local changes are overwritten.\n"
            f"[Unit]\nDescription={what}\n\n[Timer]\n"
            + "".join(f"OnCalendar={calendar(e)}\n" for e in sorted(set(epochs)))
            + f"AccuracySec=1s\nPersistent=true\nUnit={service_unit(interface)}\n\n"
            "[Install]\nWantedBy=timers.target\n"
        ),
    }


def disarm_argv(interface):
    """Stops the timer: the unit file's, or a transient one an earlier release armed."""
    return ["systemctl", "stop", timer_unit(interface)]


def is_armed_argv(interface):
    return ["systemctl", "is-active", "--quiet", timer_unit(interface)]


#: OpenRC's waiter: ``$0`` its name, ``$1`` the script, then the instants (epochs). It
#: leaves salt-minion's cgroup as the confirm waiter does (``wgf_confirm_undo``), then
#: sleeps until each instant and runs the script.
WAITER_SCRIPT = (
    wgf_confirm_undo.LEAVE_CGROUP
    + """\
script="$1"
shift
for when in "$@"; do
    now="$(date +%s)"
    [ "$when" -le "$now" ] || sleep "$((when - now))"
    /bin/sh "$script"
done
"""
)


def waiter_argv(interface, epochs, root=STATE_ROOT):
    """OpenRC: the detached process that runs the script at each instant of ``epochs``."""
    if not epochs:
        raise ValueError(f"{interface}: no expiry to arm")
    return [
        SHELL,
        "-c",
        WAITER_SCRIPT,
        unit_name(interface),
        script_argv(interface, root)[1],
        *(str(int(e)) for e in epochs),
    ]


def boot_script(interface, epochs, service=None, root=STATE_ROOT):
    """OpenRC: the init script (``wgf_openrc``, service ``unit_name``) that starts
    ``interface``'s waiter for ``epochs`` again after a reboot, after ``service``."""
    record = f"{state_dir(interface, root)}/{WAITER}"
    description = f"wireguard-formula: the client expiry of {interface}"
    return wgf_openrc.waiter_script(
        description, waiter_argv(interface, epochs, root), record, after=service
    )


def is_waiter(cmdline, interface, root=STATE_ROOT):
    """Whether ``cmdline`` (``/proc/<pid>/cmdline``) is ``interface``'s waiter."""
    args = cmdline.decode(errors="replace").split("\0")
    return (
        len(args) >= 5
        and args[1:4] == ["-c", WAITER_SCRIPT, unit_name(interface)]
        and args[4] == script_argv(interface, root)[1]
    )


#: awk: the conf without the ``[Peer]`` block whose ``PublicKey`` is ``key``. The formula
#: writes each peer as a blank line, ``[Peer]`` and its lines up to the next blank line;
#: what comes before the first blank line (``[Interface]``) is copied as it is.
_DROP_PEER = (
    "function flush() { if (n > 0 && !drop) for (i = 1; i <= n; i++) print buf[i]; "
    "n = 0; drop = 0 } "
    "/^$/ { flush(); buf[++n] = $0; next } "
    "n == 0 { print; next } "
    '{ buf[++n] = $0; if (n == 2 && $0 != "[Peer]") peer = 0; '
    'else if (n == 2) peer = 1; if (peer && $0 == "PublicKey = " key) drop = 1 } '
    "END { flush() }"
)


def script_text(interface, root=STATE_ROOT, salt_call=None, conf=None):
    """The script the timer runs (``sh <dir>/expire``), written at apply time into the
    interface's 0700 state directory. Under the directory's lock, for every client of
    the schedule whose instant has passed, it removes its live peer (``wg set <if> peer
    <key> remove``, one at a time: no other peer is touched) and its ``[Peer]`` from the
    interface's conf ``conf`` (a copy of the file, mode and owner kept, replaced in one
    ``mv``; nothing of it is printed), so that a restart or a reboot brings back what is
    live. For each client it took away it writes the event's data into ``events/``, then
    sends every pending event with ``salt-call event.fire_master <data>
    wireguard/client/expired`` (``salt-call`` on PATH, else ``salt_call``, the minion's
    own) and moves what it sent into the ``sent`` log; what it could not send waits for
    the next apply or minion start (``wireguard.client_expiry_report``)."""
    directory = _path(state_dir(interface, root))
    fallback = _path(salt_call) if salt_call else "''"
    conf = _path(conf) if conf else "''"
    return (
        "\n".join(
            [
                "#!/bin/sh",
                f"# wireguard-formula: remove the live peers of the expired clients of {interface}",
                "# (issue 23). Written at apply time; no key: client names, public keys, instants.",
                "set -u",
                f"interface={shlex.quote(interface)}",
                f"dir={directory}",
                f"conf={conf}",
                "umask 077",
                'exec 9>"$dir/lock"',
                "flock 9",
                "failed=0",
                'now="$(date +%s)"',
                'live="$(wg show "$interface" peers 2>/dev/null)"',
                "# the conf without the peer: a copy (mode, owner) written, then moved over it",
                "drop_peer() {",
                '    tmp="$(dirname "$conf")/.$(basename "$conf").expire"',
                '    if cp -p "$conf" "$tmp" &&',
                f'        awk -v key="$1" {shlex.quote(_DROP_PEER)} "$conf" > "$tmp" &&',
                '        mv -f "$tmp" "$conf"; then',
                "        return 0",
                "    fi",
                '    rm -f "$tmp"',
                "    return 1",
                "}",
                'schedule="$dir/schedule"',
                '[ -f "$schedule" ] || schedule=/dev/null',
                "while read -r when iso name key; do",
                '    [ -n "${key:-}" ] || continue',
                '    [ "$when" -le "$now" ] || continue',
                "    removed=0",
                '    if printf \'%s\\n\' "$live" | grep -qxF -- "$key"; then',
                '        if wg set "$interface" peer "$key" remove; then',
                "            removed=1",
                "        else",
                "            failed=1",
                "        fi",
                "    fi",
                '    if [ -f "$conf" ] && grep -qxF -- "PublicKey = $key" "$conf"; then',
                '        if drop_peer "$key"; then removed=1; else failed=1; fi',
                "    fi",
                '    [ "$removed" = 1 ] || continue',
                '    mkdir -p "$dir/events"',
                f'    printf \'{_EVENT_FORMAT}\\n\' "$interface" "$name" "$iso"'
                ' > "$dir/events/$when-$name.tmp"',
                '    mv -f "$dir/events/$when-$name.tmp" "$dir/events/$when-$name"',
                'done < "$schedule"',
                *wgf_events.send_lines(EVENT_TAG, fallback, '"$failed"'),
            ]
        )
        + "\n"
    )


def pending_events(root=STATE_ROOT):
    """``[(path, data)]`` of the events the scripts could not send yet, oldest first."""
    found = []
    for interface in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        directory = os.path.join(root, interface, wgf_events.EVENTS)
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            path = os.path.join(directory, name)
            if name.endswith(".tmp") or not os.path.isfile(path):
                continue
            try:
                data = json.loads(wgf_files.read(path) or "")
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("interface") == interface:
                found.append((path, data))
    return found


def report(host, root=STATE_ROOT):
    """Send ``wireguard/client/expired`` for each event not sent yet (the script's, when
    no master answered it), log it as sent and remove it; the list of the events' data."""
    sent = []
    for path, data in pending_events(root):
        if not host.send_event(EVENT_TAG, data):
            continue
        directory = os.path.dirname(os.path.dirname(path))
        log = wgf_files.read(os.path.join(directory, wgf_events.SENT)) or ""
        line = f"{host.now():.0f} {json.dumps(data, sort_keys=True)}\n"
        host.write_records(directory, {wgf_events.SENT: log + line})
        host.remove(path)
        sent.append(data)
    return sent
