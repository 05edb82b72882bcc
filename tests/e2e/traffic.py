"""Traffic the e2e tests watch while the formula changes something: a steady ping."""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field


@dataclass
class SteadyPing:
    """20 echo requests a second; after the block: which replies came."""

    dst: str = ""
    sent: int = 0
    answered: set[int] = field(default_factory=set)
    output: str = ""

    @property
    def lost(self) -> list[int]:
        """Sequence numbers with no reply, up to the last one answered."""
        return sorted(set(range(1, max(self.answered, default=0) + 1)) - self.answered)

    def check(self, what: str, may_lose: int = 0) -> None:
        assert self.sent >= 20, f"{what}: only {self.sent} echo requests\n{self.output[-2000:]}"
        assert len(self.lost) <= may_lose, (
            f"{what}: {len(self.lost)} of {self.sent} echo requests to "
            f"{self.dst} got no reply (icmp_seq {self.lost[:20]})"
        )
        # the tunnel still answers at the end: only the requests in flight lack a reply
        assert self.sent - max(self.answered, default=0) <= 5, (
            f"{what}: the last reply was to icmp_seq {max(self.answered, default=0)} "
            f"of {self.sent}\n{self.output[-2000:]}"
        )


@contextlib.contextmanager
def steady_ping(host, dst: str):
    """20 echo requests a second from ``host`` to ``dst`` while the block runs. On a QEMU
    guest (no background process from outside) ping runs as a transient unit whose
    output goes to a file."""
    tag = secrets.token_hex(4)
    pidfile, logfile = f"/run/steady-ping-{tag}.pid", f"/run/steady-ping-{tag}.out"
    command = f"echo $$ > {pidfile}; exec ping -n -i 0.05 -W 1 {dst}"
    unit = proc = None
    if host.kind == "guest":
        unit = host.systemd_run(["sh", "-c", f"{command} > {logfile} 2>&1"], "steady-ping")
    else:
        proc = host.popen(command)
    result = SteadyPing(dst)
    try:
        deadline = time.monotonic() + 10
        while not host.file_exists(pidfile):
            started = proc is None or proc.poll() is None
            assert time.monotonic() < deadline and started, "ping did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # 10 requests before the change, on a tunnel that answers in ms
        yield result
        time.sleep(0.5)  # the last replies come back
    finally:
        if unit:
            host.systemctl("kill", "--signal=SIGINT", unit, check=False)
        else:
            host.run(f"kill -INT $(cat {pidfile})", check=False)
        host.run(["rm", "-f", pidfile], check=False)
        if proc is None:  # an emulated CPU: ping may take a while to print its summary
            deadline = time.monotonic() + 15
            while "packets transmitted" not in result.output and time.monotonic() < deadline:
                time.sleep(0.2)
                result.output = host.run(["cat", logfile], check=False).stdout
            host.run(["rm", "-f", logfile], check=False)
        else:
            try:
                result.output, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                result.output, _ = proc.communicate()
    m = re.search(r"(\d+) packets transmitted", result.output)
    result.sent = int(m.group(1)) if m else 0
    result.answered = {int(n) for n in re.findall(r"icmp_seq=(\d+) ttl=", result.output)}
