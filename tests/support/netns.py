"""Real WireGuard interfaces (wireguard-go) in network namespaces the tests create.

Nothing here touches the machine's root namespace: every link, address and
WireGuard interface lives in a namespace named ``wgt-...`` that ``close()`` removes,
killing whatever still runs inside.
"""

import contextlib
import ctypes
import os
import subprocess
import time
import uuid

CLONE_NEWNET = 0x40000000
PREFIX = "wgt-"
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Netns:
    """One network namespace; ``with ns.entered():`` runs this thread inside it."""

    def __init__(self, label="ns"):
        self.name = f"{PREFIX}{label}-{uuid.uuid4().hex[:6]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run(["ip", "link", "set", "lo", "up"])

    def run(self, argv, check=True, **kwargs):
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=check,
                              capture_output=True, text=True, **kwargs)

    def popen(self, argv, **kwargs):
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)

    @contextlib.contextmanager
    def entered(self):
        """Move the calling thread (and the processes it starts) into the namespace."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield self
            finally:
                _setns(own)
        finally:
            os.close(target)
            os.close(own)

    def wireguard(self, ifname, private_key, address, listen_port=None):
        """Bring up a userspace WireGuard interface with a key and an address."""
        # wireguard-go daemonises; its child must not inherit our pipes.
        subprocess.run(["ip", "netns", "exec", self.name, "wireguard-go", ifname], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "LOG_LEVEL": "error"})
        keyfile = f"/run/{self.name}-{ifname}.key"
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
        self.run(["ip", "address", "add", address, "dev", ifname])
        self.run(["ip", "link", "set", ifname, "up"])

    def ifindex(self, ifname):
        out = self.run(["cat", f"/sys/class/net/{ifname}/ifindex"], check=False)
        if out.returncode == 0:
            return int(out.stdout)
        return int(self.run(["ip", "-o", "link", "show", ifname]).stdout.split(":")[0])

    def close(self):
        """Kill everything inside, then delete the namespace."""
        for _ in range(50):
            pids = subprocess.run(["ip", "netns", "pids", self.name],
                                  capture_output=True, text=True).stdout.split()
            if not pids:
                break
            subprocess.run(["kill", "-9", *pids], check=False, capture_output=True)
            time.sleep(0.05)
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)


def veth(a, b, addr_a, addr_b):
    """Join two namespaces with a veth pair (eth-<peer> on each side)."""
    left, right = f"v{uuid.uuid4().hex[:8]}", f"v{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", left, "netns", a.name, "type", "veth",
                    "peer", "name", right, "netns", b.name], check=True)
    a.run(["ip", "address", "add", addr_a, "dev", left])
    b.run(["ip", "address", "add", addr_b, "dev", right])
    a.run(["ip", "link", "set", left, "up"])
    b.run(["ip", "link", "set", right, "up"])
    return left, right


def leftovers():
    """Namespaces a crashed run of these tests left behind."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]
