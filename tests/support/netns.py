"""Network namespaces the tests create, for the functional tests, the benchmarks and the
lab (whose hosts are namespaces too, see tests/lab/host.py).

Nothing here touches the machine's root namespace: every link, address and WireGuard
interface lives in a namespace that ``delete()`` removes, killing whatever still runs
inside. A namespace the tests name themselves carries its creator's PID
(``wgt-<label>-<pid>-<hex>``): when that process was killed before its tear-down ran,
the next ``create()`` (or ``./lab clean``) removes what it left, ``reap_orphans()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

CLONE_NEWNET = 0x40000000
PREFIX = "wgt-"
_libc = ctypes.CDLL(None, use_errno=True)


def _owner(name: str) -> int | None:
    """The PID in a ``wgt-<label>-<pid>-<hex>`` name, or None."""
    parts = name[len(PREFIX) :].split("-") if name.startswith(PREFIX) else []
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def reap_orphans() -> list[str]:
    """Delete the ``wgt-`` namespaces whose creator no longer runs; their names."""
    reaped = []
    for path in sorted(Path("/run/netns").glob(f"{PREFIX}*")):
        owner = _owner(path.name)
        if owner is not None and not Path(f"/proc/{owner}").exists():
            Netns(netns=path.name).delete()
            reaped.append(path.name)
    return reaped


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _tear_down_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C (finally blocks, pytest's fixture tear-down), so a
    process stopped with ``kill`` or ``timeout`` removes what it made; one that has a
    handler of its own keeps it."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _interrupt)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Netns:
    """One network namespace, ``/run/netns/<netns>``: ``create()`` makes it,
    ``delete()`` removes it; commands run inside with ``ip netns exec``, and
    ``with ns.entered():`` moves the calling thread in."""

    # environment of the commands run here (None: this process's)
    env: dict | None = None

    def __init__(self, label: str = "ns", netns: str | None = None):
        self.netns = netns or f"{PREFIX}{label}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    # -- life cycle ------------------------------------------------------------------
    def create(self) -> Netns:
        _tear_down_on_sigterm()
        if self.netns.startswith(PREFIX):
            reap_orphans()
        self._sh(["ip", "netns", "add", self.netns])
        try:
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        """Kill everything inside, then delete the namespace."""
        if not Path(f"/run/netns/{self.netns}").exists():
            return
        for _ in range(50):
            pids = self._sh(["ip", "netns", "pids", self.netns], check=False).stdout.split()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.05)
        self._sh(["ip", "netns", "del", self.netns], check=False)

    # -- commands --------------------------------------------------------------------
    def _sh(self, argv, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run argv on the machine, capture text output (the lab raises its own error)."""
        return subprocess.run(
            [str(a) for a in argv],
            check=check,
            capture_output=True,
            text=True,
            env=self.env,
            **kwargs,
        )

    def _argv(self, argv: list[str]) -> list[str]:
        """How argv runs in here: a machine binary in this network namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    @staticmethod
    def _words(cmd) -> list[str]:
        return ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(c) for c in cmd]

    def run(
        self, cmd, check: bool = True, timeout: float | None = 120, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run argv (list) or a shell string in here."""
        return self._sh(self._argv(self._words(cmd)), check=check, timeout=timeout, input=input)

    def popen(self, cmd, **kwargs) -> subprocess.Popen:
        """Start argv or a shell string in the background (by default its stdout and
        stderr together on a text pipe)."""
        options = {
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
            "text": True,
            "env": self.env,
            **kwargs,
        }
        return subprocess.Popen(self._argv(self._words(cmd)), **options)

    def out(self, cmd, **kwargs) -> str:
        return self.run(cmd, **kwargs).stdout

    @contextlib.contextmanager
    def entered(self):
        """Move the calling thread (and the processes it starts) into the namespace."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield self
            finally:
                _setns(own)
        finally:
            os.close(target)
            os.close(own)

    # -- network ---------------------------------------------------------------------
    def ip(self, *args, check: bool = True) -> str:
        """`ip -n <netns> ARGS` from the outside; returns stdout."""
        return self._sh(["ip", "-n", self.netns, *args], check=check).stdout

    def sysctl(self, values: dict) -> None:
        """Set net.* sysctls of this namespace (from the outside: also before a
        container in it boots)."""
        self._sh(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                "sysctl",
                "-q",
                "-w",
                *(f"{k}={v}" for k, v in values.items()),
            ]
        )

    def add_addr(self, ifname: str, cidr: str) -> None:
        self.ip("addr", "add", cidr, "dev", ifname, *(["nodad"] if ":" in cidr else []))

    def veth(self, other: Netns, ifname: str, other_ifname: str, addrs=(), other_addrs=()) -> None:
        """A veth pair to another namespace, created directly in the two namespaces."""
        self.ip(
            "link",
            "add",
            ifname,
            "type",
            "veth",
            "peer",
            "name",
            other_ifname,
            "netns",
            other.netns,
        )
        for ns, name, cidrs in ((self, ifname, addrs), (other, other_ifname, other_addrs)):
            ns.ip("link", "set", name, "up")
            for cidr in [cidrs] if isinstance(cidrs, str) else cidrs:
                ns.add_addr(name, cidr)

    def ifindex(self, ifname: str) -> int | None:
        out = self.ip("-o", "link", "show", "dev", ifname, check=False)
        number = out.split(":", 1)[0]
        return int(number) if number.isdigit() else None

    def wireguard(self, ifname, private_key, address, listen_port=None):
        """Bring up a userspace WireGuard interface with a key and an address. Its
        control socket, /var/run/wireguard/<ifname>.sock, is on the machine's file
        system: give every interface a name no concurrent run uses."""
        # wireguard-go daemonises; its child must not inherit our pipes.
        subprocess.run(
            self._argv(["wireguard-go", ifname]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**(self.env or os.environ), "LOG_LEVEL": "error"},
        )
        keyfile = f"/run/{self.netns}-{ifname}.key"
        fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, private_key.encode() + b"\n")
            os.close(fd)
            args = ["wg", "set", ifname, "private-key", keyfile]
            if listen_port:
                args += ["listen-port", str(listen_port)]
            self.run(args)
        finally:
            os.unlink(keyfile)
        self.add_addr(ifname, address)
        self.ip("link", "set", ifname, "up")
