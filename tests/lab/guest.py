"""Lab guests: QEMU virtual machines booting Debian's own kernel (kernel WireGuard).

A guest is the kernel tier's host: QEMU's software emulation (TCG; a `-enable-kvm`
guest hangs on this machine) boots the cached guest image (tests/lab/guestimage.py)
from a copy-on-write qcow2 overlay of its own. QEMU runs inside the guest's own network
namespace `<lab id>-<name>` (so `./lab clean` finds and kills it like any process of a
lab namespace); each NIC is a tap device opened in a switch's namespace and plugged
into that switch's bridge, so guests and containers share the lab's simulated
internet. A tap lives as long as QEMU holds it: when QEMU ends, its ports go.

Commands run through the QEMU guest agent (a virtio serial port; `guest-exec`), which
answers before the guest's network is up and needs no key: about 0.1 s per command.
The guest's network is set inside, at every boot, by `/etc/lab-net.sh` (lab-net.service):
NICs named by MAC address, addresses and routes, so a reboot brings them back as a
container's namespace keeps them.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import random
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from .host import Bridge, Container, Host
from .saltmaster import MINION_READY
from .util import CLEAN_ENV, LabError, debug, fmt_cmd, log, remove_tree, sh, wait_for

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIMED_OUT = 124  # timeout(1)'s exit status


def open_tap(bridge: Bridge, name: str) -> int:
    """Open a new tap device `name` in the switch's namespace (from a thread of its own:
    setns moves only the calling thread) and plug it into br0. Returns its fd; the tap
    disappears when the last holder of the fd closes it."""
    result: dict = {}

    def inner():
        try:
            with bridge.entered():
                fd = os.open("/dev/net/tun", os.O_RDWR)
                try:
                    fcntl.ioctl(
                        fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI)
                    )
                except BaseException:
                    os.close(fd)
                    raise
                result["fd"] = fd
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=inner)
    thread.start()
    thread.join()
    if "error" in result:
        raise LabError(f"tap {name} in {bridge.name}: {result['error']}")
    bridge.ip("link", "set", name, "master", "br0")
    bridge.ip("link", "set", name, "up")
    return result["fd"]


class Agent:
    """A client of the QEMU guest agent on a unix socket (one request at a time)."""

    def __init__(self, path: Path, name: str):
        self.path = path
        self.name = name
        self.sock: socket.socket | None = None
        self.buf = b""
        self.synced = False
        self.lock = threading.RLock()

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
        self.synced = False

    def _send(self, data: bytes) -> None:
        if self.sock is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(self.path))
            self.buf = b""
        self.sock.sendall(data)

    def _read_until(self, sep: bytes, deadline: float) -> bytes:
        while sep not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError as exc:
                self.close()
                raise TimeoutError from exc
            if not chunk:
                self.close()
                raise TimeoutError
            self.buf += chunk
        head, _, self.buf = self.buf.partition(sep)
        return head

    def sync(self, timeout: float = 2.0) -> bool:
        """guest-sync-delimited: flush whatever a previous boot or call left behind."""
        with self.lock:
            token = random.randrange(1, 2**31)
            deadline = time.monotonic() + timeout
            try:
                msg = {"execute": "guest-sync-delimited", "arguments": {"id": token}}
                self._send(b"\xff" + json.dumps(msg).encode() + b"\n")
                while True:
                    self._read_until(b"\xff", deadline)
                    line = self._read_until(b"\n", deadline)
                    with contextlib.suppress(ValueError):
                        if json.loads(line).get("return") == token:
                            self.synced = True
                            return True
            except (TimeoutError, OSError):
                self.synced = False
                return False

    def call(self, command: str, arguments: dict | None = None, timeout: float = 20.0):
        with self.lock:
            if not self.synced and not self.sync(timeout=min(timeout, 5.0)):
                raise LabError(f"guest {self.name}: the guest agent does not answer")
            msg = {"execute": command, **({"arguments": arguments} if arguments else {})}
            deadline = time.monotonic() + timeout
            try:
                self._send(json.dumps(msg).encode() + b"\n")
                while True:
                    line = self._read_until(b"\n", deadline).strip().lstrip(b"\xff")
                    if not line:
                        continue
                    reply = json.loads(line)
                    if "error" in reply:
                        raise LabError(f"guest {self.name}: {command}: {reply['error']}")
                    if "return" in reply:
                        return reply["return"]
            except (TimeoutError, OSError, ValueError) as exc:
                self.synced = False
                raise LabError(f"guest {self.name}: no answer to {command} ({exc!r})") from exc


class Guest(Host):
    """A QEMU virtual machine on Debian's kernel, with the Host interface of a container
    (run/out/ip/systemctl/unit_state/write/reboot...)."""

    kind = "guest"
    # the same helpers as a container: they only call self.run
    systemctl = Container.systemctl
    systemd_run = Container.systemd_run
    unit_state = Container.unit_state
    file_exists = Container.file_exists
    read = Container.read

    def __init__(self, lab, name: str, image: Path, memory: int = 512):
        super().__init__(lab, name)
        self.image = image
        self.memory = memory
        self.dir = lab.state_dir / name
        self.disk = self.dir / "disk.qcow2"
        self.console = self.dir / "console.log"
        self.agent = Agent(self.dir / "qga.sock", name)
        self.nics: list[tuple[Bridge, str, str, list[str]]] = []  # bridge, ifname, mac, addrs
        self.routes: list[str] = []
        self.files: dict[str, tuple[str, int]] = {}
        self.units: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.booted = False
        self.configured = False
        self.boot_seconds: float | None = None
        self._t_start = 0.0

    # -- life cycle ------------------------------------------------------------------------
    def create(self) -> Guest:
        # the namespace QEMU runs in (no links: the NICs are taps in the switches)
        sh(["ip", "netns", "add", self.netns], what=self.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        sh(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                self.image / "disk.img",
                "-F",
                "raw",
                self.disk,
            ],
            what=self.name,
        )
        return self

    def nic(self, bridge: Bridge, ifname: str, addrs=()) -> None:
        """A NIC on a lab switch, named `ifname` inside (before start())."""
        if self.proc is not None:
            raise LabError(f"guest {self.name}: NICs are plugged in before it starts")
        mac = "52:54:00:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))
        addrs = [addrs] if isinstance(addrs, str) else list(addrs)
        self.nics.append((bridge, ifname, mac, addrs))

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file into the guest (kept until it has booted, then written there)."""
        self.files[path] = (text, mode)
        if self.configured:
            self._write_now(path, text, mode)

    def enable_unit(self, unit: str) -> None:
        self.units.append(unit)
        if self.configured:
            self.run(["systemctl", "enable", "--now", "--no-block", unit])

    def _write_now(self, path: str, text: str, mode: int) -> None:
        self.run(
            [
                "sh",
                "-c",
                'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"',
                "write",
                path,
                f"{mode:o}",
            ],
            input=text,
        )

    def net_script(self) -> str:
        lines = ["# written by the wireguard-formula lab: this guest's NICs, addresses, routes"]
        lines.append("for i in $(seq 300); do")
        macs = " ".join(mac for _, _, mac, _ in self.nics)
        lines.append(
            f'  ok=1; for m in {macs}; do grep -qx "$m" /sys/class/net/*/address || ok=0; done'
        )
        lines.append('  [ "$ok" = 1 ] && break; sleep 0.1')
        lines.append("done")
        for i, (_, ifname, mac, _) in enumerate(self.nics):
            lines.append(
                f'for d in /sys/class/net/*; do [ "$(cat $d/address)" = {mac} ] && '
                f'[ "${{d##*/}}" != {ifname} ] && ip link set "${{d##*/}}" name labnic{i}; '
                "done"
            )
        for i, (_, ifname, _, addrs) in enumerate(self.nics):
            lines.append(f"ip link set labnic{i} name {ifname} 2>/dev/null || true")
            lines.append(f"ip link set {ifname} up")
            for cidr in addrs:
                fam = "-6 " if ":" in cidr else ""
                extra = " nodad" if ":" in cidr else ""
                lines.append(f"ip {fam}addr replace {cidr} dev {ifname}{extra}")
        for spec in self.routes:
            fam = "-6 " if ":" in spec else ""
            lines.append(f"ip {fam}route replace {spec}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Launch QEMU (returns at once; `wait_booted()` waits for systemd)."""
        fds = []
        netargs = []
        try:
            for i, (bridge, _ifname, mac, _) in enumerate(self.nics):
                bridge._ports += 1
                fd = open_tap(bridge, f"t{bridge._ports}")
                fds.append(fd)
                netargs += [
                    "-netdev",
                    f"tap,id=n{i},fd={fd}",
                    "-device",
                    f"virtio-net-pci,netdev=n{i},mac={mac}",
                ]
            argv = [
                "nsenter",
                f"--net=/run/netns/{self.netns}",
                "qemu-system-x86_64",
                "-name",
                f"{self.netns},process={self.netns}",
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-machine",
                "q35",
                "-m",
                str(self.memory),
                "-smp",
                "1",
                "-kernel",
                str(self.image / "vmlinuz"),
                "-initrd",
                str(self.image / "initrd.img"),
                "-append",
                # no CPU bug mitigations: an emulated CPU pays dearly for each
                "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 quiet mitigations=off",
                "-drive",
                f"file={self.disk},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
                "-serial",
                f"file:{self.console}",
                "-chardev",
                f"socket,id=qga,path={self.agent.path},server=on,wait=off",
                "-device",
                "virtio-serial-pci",
                "-device",
                "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
                *netargs,
            ]
            debug(f"{self.name}: {fmt_cmd(argv)}")
            self._t_start = time.monotonic()
            with open(self.dir / "qemu.log", "ab") as qemu_log:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=qemu_log,
                    pass_fds=fds,
                    start_new_session=True,
                    env=CLEAN_ENV,
                )
        finally:
            for fd in fds:
                os.close(fd)

    def console_tail(self, lines: int = 25) -> str:
        try:
            text = self.console.read_text(errors="replace").splitlines()
        except OSError:
            return "(no console log)"
        return f"--- last console lines of {self.name} ({self.console}):\n" + "\n".join(
            text[-lines:]
        )

    def boot_jobs(self) -> str:
        """What a boot that is not done yet waits for (if the agent answers), and the
        console's last lines."""
        jobs = "(the guest agent does not answer)"
        with contextlib.suppress(LabError):
            jobs = self.out(["systemctl", "list-jobs", "--no-pager"], check=False, timeout=10)
        return f"--- systemctl list-jobs in {self.name}:\n{jobs.strip()}\n{self.console_tail()}"

    def _alive(self) -> None:
        if self.proc is None:
            raise LabError(f"guest {self.name} was never started")
        if self.proc.poll() is not None:
            qemu_log = ""
            with contextlib.suppress(OSError):
                qemu_log = (self.dir / "qemu.log").read_text(errors="replace")[-2000:]
            raise LabError(
                f"guest {self.name}: QEMU exited with {self.proc.returncode}\n{qemu_log}"
                f"{self.console_tail()}"
            )

    def _state(self) -> str | None:
        self._alive()
        if not self.agent.path.exists() or not self.agent.sync(timeout=1.0):
            return None
        if not self.configured:
            self._configure()
        _, out, _ = self._exec(["systemctl", "is-system-running"], timeout=20)
        state = out.strip()
        return state if state in ("running", "degraded") else None

    def _configure(self) -> None:
        """First boot: host name, network script, files and units the lab asked for."""
        self.configured = True
        self._write_now("/etc/hostname", f"{self.name}\n", 0o644)
        self._write_now("/etc/lab-net.sh", self.net_script(), 0o755)
        for path, (text, mode) in self.files.items():
            self._write_now(path, text, mode)
        self.run(["hostname", self.name])
        self.run(["sh", "/etc/lab-net.sh"])
        for unit in self.units:
            self.run(["systemctl", "enable", "--now", "--no-block", unit])

    def wait_booted(self, timeout: float = 180) -> None:
        if self.booted:
            return
        state = wait_for(
            self._state,
            timeout,
            f"guest {self.name} to boot",
            interval=0.5,
            max_interval=1.0,
            detail=self.console_tail,
        )
        self.booted = True
        self.boot_seconds = time.monotonic() - self._t_start
        if state == "degraded":
            failed = self.out(["systemctl", "--failed", "--no-legend", "--plain"])
            log(f"{self.name}: booted degraded; failed units: {failed.strip()}")
        debug(f"{self.name}: booted in {self.boot_seconds:.1f}s ({state})")

    def wait_minion_ready(self, timeout: float = 240) -> None:
        """Until the salt-minion's log says it is ready (read inside: one cheap command)."""
        wait_for(
            lambda: (
                self.run(
                    ["grep", "-q", MINION_READY, "/var/log/salt/minion"], check=False
                ).returncode
                == 0
            ),
            timeout,
            f"the salt-minion of guest {self.name}",
            interval=1.0,
            max_interval=2.0,
            detail=lambda: self.out("tail -n 20 /var/log/salt/minion", check=False),
        )

    # -- commands --------------------------------------------------------------------------
    def _exec(self, argv, input: str | None = None, timeout: float | None = 120):
        """(exit status, stdout, stderr) of argv run by the guest agent."""
        limit = int(timeout or 3600)
        full = ["/usr/bin/env", f"PATH={GUEST_PATH}", "LANG=C.UTF-8", "HOME=/root"]
        full += ["timeout", "-k", "3", str(limit), *argv]
        args = {"path": full[0], "arg": full[1:], "capture-output": True}
        if input is not None:
            args["input-data"] = base64.b64encode(input.encode()).decode()
        pid = self.agent.call("guest-exec", args)["pid"]
        deadline = time.monotonic() + limit + 10
        pause = 0.02
        while True:
            status = self.agent.call("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                raise LabError(f"guest {self.name}: `{fmt_cmd(argv)}` never ended")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)
        out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
        err = base64.b64decode(status.get("err-data", "")).decode(errors="replace")
        rc = status.get("exitcode", -status.get("signal", 1))
        return rc, out, err

    def run(
        self, cmd, check: bool = True, timeout: float | None = 120, input: str | None = None
    ) -> subprocess.CompletedProcess:
        argv = self._words(cmd)
        debug(f"guest {self.name}$ {fmt_cmd(argv)}")
        rc, out, err = self._exec(argv, input=input, timeout=timeout)
        if rc == TIMED_OUT and timeout:
            raise LabError(f"guest {self.name}: `{fmt_cmd(argv)}` timed out after {timeout}s")
        if check and rc != 0:
            raise LabError(
                f"guest {self.name}: `{fmt_cmd(argv)}` exited {rc}\n"
                f"--- stdout\n{out.strip()}\n--- stderr\n{err.strip()}"
            )
        return subprocess.CompletedProcess(argv, rc, out, err)

    def popen(self, cmd, **kwargs):
        raise LabError(f"guest {self.name}: run background commands with systemd_run()")

    def ip(self, *args, check: bool = True) -> str:
        """`ip ARGS` inside the guest (its kernel owns its network)."""
        return self.run(["ip", *args], check=check).stdout

    def sysctl(self, values: dict) -> None:
        self.run(["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())])

    def route(self, spec: str) -> None:
        """Add a route now and at every boot."""
        self.routes.append(spec)
        if self.configured:
            self._write_now("/etc/lab-net.sh", self.net_script(), 0o755)
            super().route(spec)

    def veth(self, *args, **kwargs):
        raise LabError(f"guest {self.name}: plug it into a switch with lab.guest(nics=...)")

    # -- reboot and tear-down --------------------------------------------------------------
    def boot_id(self) -> str:
        return self.read("/proc/sys/kernel/random/boot_id").strip()

    def reboot(self, timeout: float = 600) -> float:
        """`systemctl reboot` inside; QEMU resets the machine in place (same process, same
        taps). Returns seconds until systemd is up again: about 50 s alone here, three
        times that beside the other tiers on CI's 2 cores (slow, not stuck)."""
        t0 = time.monotonic()
        before = self.boot_id()
        with contextlib.suppress(LabError):
            self.run(["systemctl", "reboot"], check=False, timeout=10)
        self.agent.synced = False
        self.booted = False

        def again():
            self._alive()
            if not self.agent.sync(timeout=3.0):  # a guest still booting answers late
                return None
            try:
                if self.boot_id() == before:
                    return None
                state = self.out(["systemctl", "is-system-running"], check=False).strip()
            except LabError:
                return None
            return state in ("running", "degraded")

        wait_for(
            again, timeout, f"guest {self.name} to reboot", interval=1.0, detail=self.boot_jobs
        )
        self.booted = True
        return time.monotonic() - t0

    def destroy(self) -> None:
        """Kill QEMU (nothing of a guest is kept), remove its overlay and namespace."""
        try:
            self.agent.close()
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, 9)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=10)
        finally:
            self.delete()
            remove_tree(self.dir)
            self.booted = False
