"""Lab hosts: bare network namespaces and systemd-nspawn containers.

Every host owns a network namespace `/run/netns/<lab id>-<name>` that the lab creates
first; links, addresses and routes are set from the outside with `ip -n`. A container
additionally boots real systemd (systemd-nspawn -b) on its own overlayfs over the cached
root file system, inside that namespace. Nothing is ever created in the machine's root
network namespace.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..support.netns import Netns
from .util import (
    CGROUP_ROOTS,
    CLEAN_ENV,
    NSPAWN_RUN_DIR,
    LabError,
    debug,
    fmt_cmd,
    log,
    remove_tree,
    sh,
    umount_tree,
    wait_for,
)

# systemd's "power off" signal
SIG_POWEROFF = signal.SIGRTMIN + 4


@dataclass
class PingResult:
    src: str
    dst: str
    sent: int
    received: int
    output: str

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.received == self.sent

    @property
    def lost(self) -> int:
        return self.sent - self.received

    def __str__(self) -> str:
        return f"ping {self.src} -> {self.dst}: {self.received}/{self.sent} received"


def parse_ping(src: str, dst: str, output: str) -> PingResult:
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", output)
    sent, received = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return PingResult(src, dst, sent, received, output)


class Host(Netns):
    """A lab host: a network namespace, which alone is a LAN client, a NAT router or a
    server; switches and containers build on it. Links, addresses and routes are set
    from the outside with `ip -n`."""

    kind = "namespace"
    env = CLEAN_ENV

    def __init__(self, lab, name: str):
        super().__init__(netns=f"{lab.id}-{name}")
        self.lab = lab
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name}>"

    def create(self) -> Host:
        super().create()
        # A new namespace may inherit settings from the machine's root namespace;
        # start every host from the same known state: no forwarding, no IPv6 DAD delay.
        self.sysctl(
            {
                "net.ipv4.ip_forward": 0,
                "net.ipv6.conf.all.forwarding": 0,
                "net.ipv6.conf.all.accept_dad": 0,
                "net.ipv6.conf.default.accept_dad": 0,
            }
        )
        return self

    def destroy(self) -> None:
        self.delete()

    def _sh(
        self, argv, check: bool = True, timeout: float | None = 120, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return sh(argv, check=check, timeout=timeout, input=input, what=f"{self.kind} {self.name}")

    def route(self, spec: str) -> None:
        """Add a route, e.g. `default via 192.168.1.1` or `10.0.0.0/8 via 192.168.1.2`."""
        words = spec.split()
        fam = ["-6"] if any(":" in w for w in words) else []
        self.ip(*fam, "route", "add", *words)

    def links(self) -> list[str]:
        out = self.ip("-o", "link", "show")
        return [m.group(1) for m in re.finditer(r"^\d+: ([^:@]+)[:@]", out, re.M)]

    def file_exists(self, path: str) -> bool:
        """Whether ``path`` exists as this host's commands see it."""
        return self.run(["test", "-e", path], check=False).returncode == 0

    def ping(
        self,
        dst: str,
        count: int = 3,
        interval: float = 0.2,
        source: str | None = None,
        wait: float = 1.0,
        timeout: float | None = None,
    ) -> PingResult:
        """Send `count` echo requests and count the replies (never raises on loss)."""
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(wait)]
        if ":" in dst:
            argv.insert(1, "-6")
        if source:
            argv += ["-I", source]
        argv.append(dst)
        if timeout is None:
            timeout = count * interval + wait + 30
        proc = self.run(argv, check=False, timeout=timeout)
        return parse_ping(self.name, dst, proc.stdout + proc.stderr)

    def ping_until(self, dst: str, within: float = 20.0, source: str | None = None) -> PingResult:
        """Ping once a second until a reply comes (handshakes take a moment)."""
        deadline = time.monotonic() + within
        while True:
            res = self.ping(dst, count=1, wait=1.0, source=source)
            if res.received or time.monotonic() >= deadline:
                return res


class Bridge(Host):
    """A switch: a namespace of its own holding bridge `br0`; ports are veth pairs."""

    kind = "bridge"

    def create(self) -> Bridge:
        super().create()
        self.ip("link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        self.ip("link", "set", "br0", "up")
        self._ports = 0
        return self

    def attach(self, host: Host, ifname: str, addrs=()) -> str:
        """Plug `host` into this switch with interface `ifname` (a veth pair whose other
        end is a port of br0). The kernel here has no 802.1Q: a VLAN is a switch."""
        self._ports += 1
        port = f"p{self._ports}"
        self.veth(host, port, ifname, other_addrs=addrs)
        self.ip("link", "set", port, "master", "br0")
        return ifname


class Container(Host):
    """A systemd-nspawn container booting real systemd on its own overlay."""

    kind = "container"

    def __init__(self, lab, name: str, rootfs: Path, binds=(), binds_ro=(), tmpfs=()):
        super().__init__(lab, name)
        self.machine = self.netns
        self.rootfs = rootfs
        self.dir = lab.state_dir / name
        self.upper = self.dir / "upper"
        self.work = self.dir / "work"
        self.merged = self.dir / "merged"
        self.console = self.dir / "console.log"
        self.binds = list(binds)
        self.binds_ro = list(binds_ro)
        self.tmpfs = list(tmpfs)
        self.proc: subprocess.Popen | None = None
        self.pid1: int | None = None
        self.booted = False
        self.boot_seconds: float | None = None
        self._t_start = 0.0
        self.cgroups = [root / lab.id / name for root in CGROUP_ROOTS]

    # -- life cycle --------------------------------------------------------------------
    def create(self) -> Container:
        """Namespace, overlay and files; then `start()` boots it."""
        super().create()
        for d in (self.upper, self.work, self.merged):
            d.mkdir(parents=True, exist_ok=True)
        sh(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={self.rootfs},upperdir={self.upper},workdir={self.work}",
                self.merged,
            ],
            what=self.name,
        )
        self.write("/etc/hostname", f"{self.name}\n")
        return self

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file into the container's file system (before or after boot)."""
        target = self.merged / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def enable_unit(self, unit: str, target: str = "multi-user.target") -> None:
        wants = self.merged / "etc/systemd/system" / f"{target}.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / unit
        if not link.is_symlink():
            link.symlink_to(f"/etc/systemd/system/{unit}")

    def start(self) -> None:
        """Launch systemd-nspawn (returns at once; `wait_booted()` waits for systemd)."""
        for cg in self.cgroups:
            self._clean_cgroup(cg, keep_top=True)
            cg.mkdir(parents=True, exist_ok=True)
        argv = [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            "systemd-nspawn",
            "-q",
            "-b",
            "-D",
            str(self.merged),
            "-M",
            self.machine,
            f"--hostname={self.name}",
            "--register=no",
            "--keep-unit",
            "--bind=/dev/net/tun",
            "--capability=CAP_NET_ADMIN",
            "--console=pipe",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
        ]
        argv += [f"--bind={s}:{d}" for s, d in self.binds]
        argv += [f"--bind-ro={s}:{d}" for s, d in self.binds_ro]
        argv += [f"--tmpfs={d}" for d in self.tmpfs]
        # Move into our own cgroups first (nspawn --keep-unit creates payload/ and
        # supervisor/ where it runs), in both hierarchies of the machine's hybrid layout.
        script = "".join(f'echo $$ > "{cg}/cgroup.procs" && ' for cg in self.cgroups)
        script += 'exec "$@"'
        debug(f"{self.name}: {fmt_cmd(argv)}")
        self._t_start = time.monotonic()
        self.pid1 = None
        self.booted = False
        with open(self.console, "ab") as console:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", script, "nspawn", *argv],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=CLEAN_ENV,
            )

    def console_tail(self, lines: int = 25) -> str:
        try:
            text = self.console.read_text(errors="replace").splitlines()
        except OSError:
            return "(no console log)"
        return f"--- last console lines of {self.name} ({self.console}):\n" + "\n".join(
            text[-lines:]
        )

    def _find_pid1(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            raise LabError(
                f"container {self.name}: systemd-nspawn exited with "
                f"{self.proc.returncode} while booting\n{self.console_tail()}"
            )
        ppid = self.proc.pid
        try:
            children = Path(f"/proc/{ppid}/task/{ppid}/children").read_text().split()
        except OSError:
            children = []
        for pid in children:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"^NSpid:\s+(.*)$", status, re.M)
            if m and m.group(1).split()[-1] == "1" and len(m.group(1).split()) > 1:
                return int(pid)
        return None

    def _state(self) -> str | None:
        if self.pid1 is None:
            self.pid1 = self._find_pid1()
            if self.pid1 is None:
                return None
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(
                f"container {self.name}: systemd-nspawn exited with "
                f"{self.proc.returncode}\n{self.console_tail()}"
            )
        proc = subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-a", "systemctl", "is-system-running"],
            capture_output=True,
            text=True,
            env=CLEAN_ENV,
            timeout=30,
        )
        state = proc.stdout.strip()
        return state if state in ("running", "degraded") else None

    def wait_booted(self, timeout: float = 60) -> None:
        if self.booted:
            return
        if self.proc is None:
            raise LabError(f"container {self.name} was never started")
        state = wait_for(
            self._state,
            timeout,
            f"container {self.name} to boot",
            interval=0.05,
            max_interval=0.3,
            detail=self.console_tail,
        )
        self.booted = True
        self.boot_seconds = time.monotonic() - self._t_start
        if state == "degraded":
            failed = self.out(["systemctl", "--failed", "--no-legend", "--plain"])
            log(f"{self.name}: booted degraded; failed units: {failed.strip()}")
        debug(f"{self.name}: booted in {self.boot_seconds:.2f}s ({state})")

    def _argv(self, argv: list[str]) -> list[str]:
        self.wait_booted()
        return ["nsenter", "-t", str(self.pid1), "-a", *argv]

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(["systemctl", *args], check=check)

    def systemd_run(self, cmd, name: str, *properties: str) -> str:
        """Start argv as a transient unit `<name>-<random>` and return the unit's name.
        Each call gets a name of its own: a finished unit of the same name may not be
        collected yet ("Unit ... was already loaded")."""
        unit = f"{name}-{secrets.token_hex(4)}"
        self.run(["systemd-run", f"--unit={unit}", *(f"--property={p}" for p in properties), *cmd])
        return unit

    def unit_state(self, unit: str) -> tuple[str, str]:
        """(is-active, is-enabled) of a unit, as systemctl prints them."""
        active = self.run(["systemctl", "is-active", unit], check=False).stdout.strip()
        enabled = self.run(["systemctl", "is-enabled", unit], check=False).stdout.strip()
        return active, enabled

    def read(self, path: str) -> str:
        return self.out(["cat", path])

    # -- reboot and tear-down ------------------------------------------------------------
    def signal_poweroff(self) -> None:
        """Ask systemd to power off (returns at once)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pid1 = self.pid1 or self._safe_pid1()
        if pid1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid1, SIG_POWEROFF)
        else:  # still booting: nspawn forwards SIGTERM as a shutdown request
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    def _safe_pid1(self) -> int | None:
        try:
            return self._find_pid1()
        except LabError:
            return None

    def wait_stopped(self, timeout: float = 20, quiet: bool = False) -> int | None:
        """Wait for nspawn to exit; kill it (and everything in its cgroups) if it won't."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            (debug if quiet else log)(
                f"{self.name}: did not power off within {timeout:.0f}s; killing it"
            )
            self._kill_cgroups()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                return None

    def reboot(self, timeout: float = 60) -> float:
        """`systemctl reboot` inside, then boot again in the same network namespace
        (what systemd-nspawn@.service does on exit status 133). Returns seconds taken."""
        t0 = time.monotonic()
        self.run(["systemctl", "reboot"], check=False)
        rc = self.wait_stopped(timeout=30)
        if rc != 133:
            log(f"{self.name}: nspawn exited with {rc} on reboot (expected 133)")
        for cg in self.cgroups:
            self._clean_cgroup(cg, keep_top=True)
        self.start()
        self.wait_booted(timeout=timeout)
        return time.monotonic() - t0

    def _kill_cgroups(self) -> None:
        for cg in self.cgroups:
            self._kill_cgroups_at(cg)

    @staticmethod
    def _kill_cgroups_at(cg: Path) -> None:
        """SIGKILL every process in a cgroup tree (cgroup.kill where the kernel has it)."""
        if not cg.exists():
            return
        kill = cg / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")
            return
        for procs in cg.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)

    @staticmethod
    def _clean_cgroup(cg: Path, keep_top: bool = False) -> None:
        """rmdir a cgroup directory tree, depth first."""
        if not cg.exists():
            return
        dirs = sorted(
            (p for p in cg.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        if not keep_top:
            dirs.append(cg)
        for d in dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)

    def destroy(self, grace: float = 0.0) -> None:
        """Stop it, unmount, remove cgroups, namespace and files. With `grace`, systemd
        may power off for that long first; by default everything in the container is
        killed at once: nothing of it is kept, and a graceful stop only costs time
        (salt alone takes 5 s to act on SIGTERM)."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                if grace > 0:
                    self.signal_poweroff()
                    self.wait_stopped(timeout=grace, quiet=True)
                else:
                    self._kill_cgroups()
                    self.wait_stopped(timeout=10, quiet=True)
        finally:
            self._kill_cgroups()
            for cg in self.cgroups:
                self._clean_cgroup(cg)
            umount_tree(self.merged)
            self.delete()
            remove_tree(self.dir)
            for sub in ("propagate", "unix-export", "incoming"):
                remove_tree(NSPAWN_RUN_DIR / sub / self.machine)
            self.booted = False
