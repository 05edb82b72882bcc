"""
The undo of a confirmed change (issue 21): its command lines (the script, the transient
timer that runs it, the disarm), the boot-time unit, and the POSIX shell script that puts
the recorded state back. Pure text: the names and paths are ``wgf_confirm``'s; what runs
them is ``wgf_confirm_run`` through the host adapter.

Every command line and unit names paths only: the recorded files, which hold the key,
stay in the root-only state directory.
"""

import dataclasses
import re
import shlex

import wgf_addr
import wgf_confirm
import wgf_iptables
import wgf_layout
import wgf_quota_ipt


def undo_argv(interface, mode="timer", root=wgf_confirm.STATE_ROOT):
    """The undo command: the recorded script of the interface, run by a shell. It names
    a path only: the keys stay in the root-only state directory."""
    if mode not in wgf_confirm.UNDO_MODES:
        raise ValueError(f"undo mode {mode!r}: one of {', '.join(wgf_confirm.UNDO_MODES)}")
    return [
        wgf_confirm.SHELL,
        f"{wgf_confirm.state_dir(interface, root)}/{wgf_confirm.UNDO_SCRIPT}",
        mode,
    ]


def arm_argv(interface, timeout, root=wgf_confirm.STATE_ROOT, systemd_run=wgf_confirm.SYSTEMD_RUN):
    """``systemd-run``'s command line for the transient timer and service that undo the
    change at ``timeout`` unless disarmed. PID 1 runs them outside salt-minion's cgroup,
    so killing the minion does not stop them; ``AccuracySec=1s`` because the default
    (1 min) would let the deadline slip by up to a minute."""
    timeout = wgf_confirm.parse_timeout(timeout, "timeout")
    return [
        systemd_run,
        f"--unit={wgf_confirm.unit_name(interface)}",
        f"--description=wireguard-formula: undo the unconfirmed change of {interface}",
        f"--on-active={timeout}",
        "--timer-property=AccuracySec=1s",
        "--collect",
        "--property=Type=oneshot",
        *undo_argv(interface, "timer", root),
    ]


#: OpenRC's waiter: ``$0`` its name (``wireguard-confirm-<if>``), ``$1`` the timeout,
#: ``$2`` the undo script. It leaves the cgroup of the service that started it first
#: (OpenRC's ``rc_cgroup_cleanup`` kills what a stopped service leaves behind: cgroup v2
#: at /sys/fs/cgroup or, hybrid, /sys/fs/cgroup/unified; v1's own hierarchy), then
#: waits and runs the undo in its place.
#: A waiter's first lines (its ``$0`` names the cgroup it moves into): out of the cgroup
#: of the service that started it. Client expiry's waiter (``wgf_expiry``) starts so too.
LEAVE_CGROUP = """\
for root in /sys/fs/cgroup/unified /sys/fs/cgroup; do
    if [ -e "$root/cgroup.controllers" ]; then
        { mkdir -p "$root/$0" && echo $$ > "$root/$0/cgroup.procs"; } 2>/dev/null
        break
    fi
done
if [ -e /sys/fs/cgroup/openrc/cgroup.procs ]; then
    echo $$ 2>/dev/null > /sys/fs/cgroup/openrc/cgroup.procs
fi
"""
WAITER_SCRIPT = LEAVE_CGROUP + 'sleep "$1"\nexec /bin/sh "$2" timer\n'


def waiter_argv(interface, timeout, root=wgf_confirm.STATE_ROOT):
    """OpenRC: the command line of the detached process that runs the undo of
    ``interface`` at ``timeout`` unless killed by the disarm (:func:`is_waiter` tells it
    by this command line). It names a path only."""
    timeout = wgf_confirm.parse_timeout(timeout, "timeout")
    script = undo_argv(interface, "timer", root)[1]
    return [
        wgf_confirm.SHELL,
        "-c",
        WAITER_SCRIPT,
        wgf_confirm.unit_name(interface),
        str(timeout),
        script,
    ]


def is_waiter(cmdline, interface, root=wgf_confirm.STATE_ROOT):
    """Whether ``cmdline`` (``/proc/<pid>/cmdline``: NUL-separated bytes) is the waiter
    of ``interface`` still waiting: once it runs the undo its command line is the
    script's, and the disarm lets that finish under the lock."""
    args = cmdline.decode(errors="replace").split("\0")
    return (
        len(args) >= 6
        and args[1:4] == ["-c", WAITER_SCRIPT, wgf_confirm.unit_name(interface)]
        and args[5] == undo_argv(interface, "timer", root)[1]
    )


def disarm_argv(interface):
    """Stop the timer only: a service already running is an undo under way, which the
    lock in the state directory lets finish (the run then reports it undone)."""
    return ["systemctl", "stop", wgf_confirm.timer_unit(interface)]


def restore_unit_text(interface, service, root=wgf_confirm.STATE_ROOT):
    """The boot-time unit of ``interface``: after a reboot before confirmation it puts
    the recorded files back before ``service`` (``wg-quick@<if>``) brings the interface
    up. It runs only while an undo is armed, and only at boot: ordered before the
    service but not wanted by it (a unit the service wants would run at every restart of
    the service, and undo the very change the run is making: seen in the lab), and the
    script's ``boot`` mode does nothing in the boot the change was armed in."""
    wgf_addr.check_interface_name(interface)
    directory = wgf_confirm.state_dir(interface, root)
    argv = " ".join(undo_argv(interface, "boot", root))
    return (
        "# Written by wireguard-formula (issue 21): do not edit.\n"
        "[Unit]\n"
        f"Description=wireguard-formula: put back the unconfirmed change of {interface}\n"
        "DefaultDependencies=no\n"
        "After=local-fs.target\n"
        f"Before={service}.service network-pre.target\n"
        f"ConditionPathExists={directory}/{wgf_confirm.ARMED}\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={argv}\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def restore_script_text(interface, service, root=wgf_confirm.STATE_ROOT):
    """OpenRC's boot-time service of ``interface`` (in the ``boot`` runlevel, before
    ``service``, ``wg-quick.<if>``): after a reboot before confirmation it puts the
    recorded files back, as :func:`restore_unit_text` does on systemd."""
    wgf_addr.check_interface_name(interface)
    if not isinstance(service, str) or not wgf_confirm._UNIT_NAME.fullmatch(service):
        raise ValueError(f"restore script: service {service!r}")
    directory = _script_path(wgf_confirm.state_dir(interface, root))
    argv = " ".join(shlex.quote(a) for a in undo_argv(interface, "boot", root))
    return (
        "#!/sbin/openrc-run\n"
        "# Written by wireguard-formula (issue 21): do not edit.\n"
        f'description="wireguard-formula: put back the unconfirmed change of {interface}"\n'
        "\n"
        "depend() {\n"
        "    need localmount\n"
        f"    before {service} net\n"
        "}\n"
        "\n"
        "start() {\n"
        f"    [ -e {directory}/{wgf_confirm.ARMED} ] || return 0\n"
        f"    {argv}\n"
        "}\n"
    )


#: What a path the undo script names may hold (it is also quoted): no spaces, quotes,
#: ``$``, ``%`` or newlines.
_SCRIPT_PATH = re.compile(r"/[A-Za-z0-9._@+/=-]*")
_RECORD_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_RESERVED = frozenset(
    {
        wgf_confirm.UNDO_SCRIPT,
        wgf_confirm.ARMED,
        wgf_confirm.UNDONE,
        wgf_confirm.LOCK,
        wgf_confirm.WAITER,
        "firewall",
        "firewall6",
        "undone.tmp",
    }
)


#: The record of a systemd drop-in, and where systemd reads units: a restored file of
#: either needs a ``systemctl daemon-reload`` before the restart.
DROPIN = "dropin"
SYSTEMD_DIR = "/etc/systemd/"
#: How long the undo waits for networkd to build the interface again, in tenths of a
#: second (an emulated guest's networkd took over 10 s).
NETWORKD_BUILD_TENTHS = 600
#: The records of networkd's unit files of the interface (``wgf_confirm_run``).
NETWORKD_UNITS = ("netdev", "network")
#: The iptables records, per IP version (``wgf_iptables.iptables_put_back``).
IPTABLES_RECORDS = {4: "firewall", 6: "firewall6"}
_IPTABLES_TOOLS = {4: "iptables", 6: "ip6tables"}


@dataclasses.dataclass(frozen=True)
class Restore:
    """A file the undo puts back: ``target`` (absolute) from the record ``recorded`` in
    the state directory, or removed when ``recorded`` is None (it did not exist before
    the change). ``unit``: a systemd unit or drop-in (also when recorded as ``dropin``
    or kept under /etc/systemd/), which systemd reads again only at a daemon-reload."""

    target: str
    recorded: str | None = None
    unit: bool = False
    #: A key copy networkd reads (issue 25): put back 0640 root:<group>.
    group: str | None = None

    @property
    def systemd(self):
        return self.unit or self.recorded == DROPIN or self.target.startswith(SYSTEMD_DIR)


def _script_path(path):
    if not isinstance(path, str) or not _SCRIPT_PATH.fullmatch(path) or "/../" in path + "/":
        raise ValueError(f"undo script: {path!r} is no path the script may name")
    return shlex.quote(path)


def armed_text(boot_id):
    """What ``armed`` holds: the boot it was armed in (the kernel's ``boot_id``)."""
    if not isinstance(boot_id, str) or not re.fullmatch(r"[0-9a-f-]{1,64}", boot_id.strip()):
        raise ValueError(f"boot id {boot_id!r}")
    return f"boot_id={boot_id.strip()}\n"


def _iptables_lines(version, ours):
    """The undo's iptables steps of IP ``version`` (4: iptables, 6: ip6tables) for the
    state ``ours`` (``wgf_iptables.iptables_ours`` lines) recorded at arm time: load the
    record (every formula chain declared, the recorded ones filled), then per chain of
    ``wgf_iptables.iptables_chains`` (the output chain of clients' limits too): a recorded
    jump exists exactly once, one not recorded not at all, a chain not recorded is
    removed (a client's quota chain too). Idempotent. The names come from there only (a
    quota chain's: when it is named as ``wgf_quota_ipt.chain`` names them)."""
    tool = _IPTABLES_TOOLS[version]
    chains, jumps = wgf_iptables.iptables_recorded(ours)
    # --counters: the clients' quota counts recorded on their IPv4 counting rules
    record = f'"$dir/{IPTABLES_RECORDS[version]}"'
    lines = [f"    {tool}-restore --noflush --counters {record} || failed=1"]
    for table in wgf_iptables.IPTABLES_CHAINS:
        for chain, builtin in wgf_iptables.iptables_chains(table):
            ipt = f"{tool} -w -t {table}"
            jump = f"{builtin} -j {chain}"
            if (table, builtin, chain) in jumps:
                lines += [
                    f"    {ipt} -C {jump} 2>/dev/null || {ipt} -I {builtin} 1 -j {chain} "
                    "|| failed=1",
                    # a copy the change added: one jump stays
                    f"    while [ \"$({ipt} -S {builtin} | grep -cxF -- '-A {jump}')\" -gt 1 ]; do",
                    f"        {ipt} -D {jump} || {{ failed=1; break; }}",
                    "    done",
                ]
            else:
                lines.append(f"    while {ipt} -D {jump} 2>/dev/null; do :; done")
            if (table, chain) not in chains:
                lines.append(f"    {ipt} -X {chain} || failed=1")
    # the clients' quota chains the change made: nothing recorded jumps to them
    kept = " ".join(sorted(c for t, c in chains if wgf_quota_ipt.is_quota_chain(c)))
    ipt = f"{tool} -w -t filter"
    listed = f"sed -n 's/^-N \\({wgf_quota_ipt.CHAIN_PREFIX}[0-9a-f]*\\)$/\\1/p'"
    lines += [
        f'    kept=" {kept} "',
        f"    for chain in $({ipt} -S | {listed}); do",
        '        case "$kept" in *" $chain "*) continue ;; esac',
        f'        {ipt} -F "$chain" && {ipt} -X "$chain" || failed=1',
        "    done",
    ]
    return lines


def undo_script(
    interface,
    restores,
    service,
    firewall=None,
    init="systemd",
    root=wgf_confirm.STATE_ROOT,
    restart_pending=None,
    boot_id=wgf_confirm.BOOT_ID,
    iptables=None,
    networkd=False,
):
    """The undo of ``interface``, a POSIX shell script written into its state directory
    (0700) when a change is armed, run as ``undo_argv`` by the timer (``timer``), the
    boot-time unit (``boot``) or the run itself (``now``).

    Under the directory's lock, and only while ``armed`` exists: put back each
    :class:`Restore`; when one of them is a systemd unit or drop-in that the change
    altered (``cmp``), ``systemctl daemon-reload`` (systemd only, in every mode: else
    systemd restarts the service with the drop-in it has cached); unless at boot
    (nothing runs yet; the firewall is not persisted across a reboot), load the recorded
    firewall (``firewall``: ``nftables`` runs ``nft -f <dir>/firewall``, a record that
    replaces ``table inet wireguard`` in one transaction; ``iptables`` puts back the
    formula's ``WIREGUARD-*`` chains of each IP version ``iptables`` (``{4|6: the
    wgf_iptables.iptables_ours lines recorded}``) holds, from ``<dir>/firewall`` and
    ``<dir>/firewall6`` (``wgf_iptables.iptables_put_back``), and their jumps
    (:func:`_iptables_lines`); without ``iptables`` only the records are loaded; None:
    the run did not touch it) and restart ``service`` from the restored file, so the live
    interface is what a fresh start builds. Then ``undone`` (mode, time, whether a step
    failed) replaces ``armed``. It names paths only: the recorded files, which hold the
    key, stay in the directory. At ``boot`` it does nothing when ``armed``
    (:func:`armed_text`) names the running boot. ``root``, ``restart_pending`` (the mark
    ``wgf_layout.restart_pending`` names, which the restart makes void) and ``boot_id``
    are there for tests. ``networkd``: the interface is networkd's (issue 25): instead of a
    restart, the interface is deleted and systemd-networkd, restarted, builds it again."""
    if init not in wgf_confirm.INITS:
        raise ValueError(f"undo script: init {init!r}: one of {', '.join(wgf_confirm.INITS)}")
    if firewall not in (None, "nftables", "iptables"):
        raise ValueError(f"undo script: firewall {firewall!r}")
    if iptables is not None and (firewall != "iptables" or not set(iptables) <= {4, 6}):
        raise ValueError(f"undo script: iptables records of {sorted(iptables)!r}")
    if not isinstance(service, str) or not wgf_confirm._UNIT_NAME.fullmatch(service):
        raise ValueError(f"undo script: service {service!r}")
    directory = _script_path(wgf_confirm.state_dir(interface, root))
    lines = [
        "#!/bin/sh",
        f"# wireguard-formula: undo the unconfirmed change of {interface} (issue 21).",
        "# Written when the change was armed; it holds no key. $1: timer | boot | now",
        "set -u",
        'mode="${1:-timer}"',
        f"dir={directory}",
        "umask 077",
        'exec 9>"$dir/lock"',
        "flock 9",
        '[ -e "$dir/armed" ] || exit 0',
        # at boot only after a reboot: armed in this very boot, the change is under way
        'if [ "$mode" = boot ]; then',
        f'    now="$(cat {_script_path(boot_id)} 2>/dev/null)"',
        '    [ "boot_id=$now" != "$(head -n 1 "$dir/armed")" ] || exit 0',
        "fi",
        "failed=0",
    ]
    # systemd reads a unit or drop-in again only at a daemon-reload
    reload = init == "systemd" and any(r.systemd for r in restores)
    if reload:
        lines.append("reload=0")
    for restore in restores:
        target = _script_path(restore.target)
        if restore.recorded is None:
            if reload and restore.systemd:
                lines.append(f"[ ! -e {target} ] || reload=1")
            lines.append(f"rm -f {target} || failed=1")
            continue
        name = restore.recorded
        if not isinstance(name, str) or not _RECORD_NAME.fullmatch(name) or name in _RESERVED:
            raise ValueError(f"undo script: record name {name!r}")
        if reload and restore.systemd:
            lines.append(f'cmp -s "$dir/{name}" {target} || reload=1')
        tmp = _script_path(restore.target + ".wgf-undo")
        lines.append(
            f'cp -p "$dir/{name}" {tmp} && mv -f {tmp} {target} || failed=1',
        )
        if restore.group is not None:
            if not _RECORD_NAME.fullmatch(restore.group):
                raise ValueError(f"undo script: group {restore.group!r}")
            lines.append(f"chgrp {restore.group} {target} && chmod 0640 {target} || failed=1")
        elif restore.systemd or name in NETWORKD_UNITS:
            # the record is root's alone (0600); systemd-networkd reads its unit files as
            # systemd-network: they go back 0644 as they were written
            lines.append(f"chmod 0644 {target} || failed=1")
    if reload:
        lines.append('[ "$reload" = 0 ] || systemctl daemon-reload || failed=1')
    lines.append('if [ "$mode" != boot ]; then')
    if firewall == "nftables":
        lines.append('    nft -f "$dir/firewall" || failed=1')
    elif firewall == "iptables" and iptables is not None:
        for version in sorted(iptables):
            lines += _iptables_lines(version, iptables[version])
    elif firewall == "iptables":
        lines.append('    iptables-restore --noflush --counters "$dir/firewall" || failed=1')
        lines.append('    if [ -e "$dir/firewall6" ]; then')
        lines.append('        ip6tables-restore --noflush --counters "$dir/firewall6" || failed=1')
        lines.append("    fi")
    # the undo restarts anyway: a restart the run decided and did not do is void
    pending = restart_pending or wgf_layout.restart_pending(interface)
    lines.append(f"    rm -f {_script_path(pending)}")
    quoted = shlex.quote(service)
    # `9>&-`: what the restart leaves running (an init script's daemon, wireguard-go)
    # must not inherit the lock, or every later undo and disarm waits for it forever
    if networkd:
        # networkd's restart of one interface (issue 25): it builds a netdev it does not
        # have from its restored file; reload alone keeps a netdev as it is
        device = shlex.quote(interface)
        lines.append(f"    ip link delete dev {device} 2>/dev/null")
        # networkd builds a netdev it knew only when it starts (not at a reload)
        lines.append("    systemctl restart systemd-networkd 9>&- || failed=1")
        # the undo ends when the interface is back
        lines.append(f"    tries={NETWORKD_BUILD_TENTHS}")
        lines.append(f"    until ip link show dev {device} > /dev/null 2>&1; do")
        lines.append('        [ "$tries" -gt 0 ] || { failed=1; break; }')
        lines.append("        tries=$((tries - 1)); sleep 0.1")
        lines.append("    done")
    elif init == "systemd":
        lines.append(f"    systemctl reset-failed {quoted} 2>/dev/null")
        lines.append(f"    systemctl restart {quoted} 9>&- || failed=1")
    else:
        lines.append(f"    rc-service {quoted} restart 9>&- || failed=1")
    lines += [
        "fi",
        'printf "mode=%s\\ntime=%s\\nfailed=%s\\n" "$mode" "$(date +%s)" "$failed" '
        '> "$dir/undone.tmp"',
        'mv -f "$dir/undone.tmp" "$dir/undone"',
        'rm -f "$dir/armed"',
        'exit "$failed"',
    ]
    return "\n".join(lines) + "\n"
