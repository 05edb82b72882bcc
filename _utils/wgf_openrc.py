"""OpenRC boot scripts of the formula's detached waiters (issue 23).

Where PID 1 is not systemd, the client expiry waiter and the quota saver's loop are
processes the host adapter starts itself (``wgf_host.Host._spawn_waiter``): nothing
would start them again after a reboot. Each therefore also gets an init script in the
``default`` runlevel whose ``start`` runs the same command line detached (a session of
its own where ``setsid`` is there) and records its process id as the adapter does; its
``stop`` (at shutdown) runs what must happen before the machine goes down, if anything
(the saver: one last save of the counts). The waiter outlives the service's stop: it
leaves the service's cgroup itself (``wgf_confirm_undo.LEAVE_CGROUP``)."""

import re
import shlex

import wgf_layout

RUNLEVEL = "default"
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")


def check_service(name):
    """``name`` when it can name an OpenRC service, else ``ValueError``."""
    if not isinstance(name, str) or not _SERVICE.fullmatch(name):
        raise ValueError(f"OpenRC service name {name!r}")
    return name


def script_path(service):
    """``/etc/init.d/<service>``."""
    return f"{wgf_layout.INIT_SCRIPT_DIR}/{check_service(service)}"


def runlevel_link(service, runlevel=RUNLEVEL):
    """The link that puts ``service`` into ``runlevel`` (``rc-update add`` makes it)."""
    return f"{wgf_layout.RUNLEVELS_DIR}/{runlevel}/{check_service(service)}"


def _command(argv):
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def waiter_script(description, argv, record, after=None, stop=None):
    """The init script that starts ``argv`` at boot, detached (no terminal, output to
    /dev/null), with its process id written into ``record`` (0600), after the service
    ``after`` when one is named; ``stop`` (an argv) runs at the service's stop."""
    depend = ["    need localmount"]
    if after:
        depend.append(f"    after {check_service(after)}")
    return "\n".join(
        [
            "#!/sbin/openrc-run",
            "# Written by wireguard-formula: do not edit.",
            f"description={shlex.quote(description)}",
            "",
            "depend() {",
            *depend,
            "}",
            "",
            "start() {",
            "    session=$(command -v setsid) || session=",
            f"    $session {_command(argv)} < /dev/null > /dev/null 2>&1 &",
            f"    (umask 077 && echo $! > {shlex.quote(record)})",
            "}",
            "",
            "stop() {",
            f"    {_command(stop) if stop else ':'}",
            "}",
            "",
        ]
    )
