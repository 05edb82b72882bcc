"""`Lab`: a set of hosts, switches and links, torn down completely when it ends.

    with Lab("demo") as lab:
        hub = lab.container("hub")                 # boots at once, in parallel
        nat = lab.namespace("nat-a")
        inet = lab.bridge("inet")
        inet.attach(hub, "eth0", "198.18.0.1/24")
        lab.wait_ready()                           # booted, minions answer the master
        lab.master.state_apply("hub", {"hub": {...}})  # pillar, then state.apply

A management switch (`mgmt`, 198.19.255.0/24) joins the salt-master (198.19.255.1) and
every minion container, whose salt-minion connects there. The master serves the repo
checkout read-only as its file_roots.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import guestimage
from . import rootfs as rootfs_mod
from .guest import Guest
from .host import Bridge, Container, Host
from .saltmaster import FORMULA_DIR, MASTER_IP, MINION_CONF, Master, minion_conf
from .util import NSPAWN_RUN_DIR, PREFIX, REPO, STATE_DIR, LabError, log, remove_tree, require_root

MGMT_NET = "198.19.255"

_LIVE_LABS: list[Lab] = []

# An emulated CPU is slow to fork and set up a process for every job: a guest's minion
# runs its jobs in threads (as Salt does on Windows)
GUEST_MINION_CONF = "multiprocessing: False\n"


class _Interrupted(KeyboardInterrupt):
    pass


def _on_signal(signum, frame):
    raise _Interrupted(f"signal {signal.Signals(signum).name}")


class Lab:
    def __init__(
        self,
        prefix: str = "lab",
        *,
        master: bool = True,
        rootfs: Path | None = None,
        formula: Path | None = None,
        master_files: dict[str, str] | None = None,
    ):
        if not prefix.isalnum():
            raise LabError(f"lab prefix {prefix!r}: letters and digits only")
        self.id = f"{PREFIX}{prefix}-{secrets.token_hex(2)}"
        self.state_dir = STATE_DIR / self.id
        self.with_master = master
        self.rootfs = rootfs
        # what the master serves: the checkout (WGLAB_FORMULA points elsewhere, e.g. to
        # try a patched copy of the formula)
        self.formula = Path(formula or os.environ.get("WGLAB_FORMULA") or REPO).resolve()
        # files written into the master before it starts ({path: text}): more config
        self.master_files = dict(master_files or {})
        self.hosts: dict[str, Host] = {}
        self._order: list[Host] = []
        self.master: Master | None = None
        self.mgmt: Bridge | None = None
        self._mgmt_next = 10
        self._old_handlers: dict = {}
        self._closed = False
        self.timings: dict[str, float] = {}
        self.guest_image: Path | None = None
        # called with a shared host (see shared()) whose name a new host wants; returns
        # whether its owner let it go
        self.release_shared: Callable[[Host], bool] | None = None

    # -- context ---------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Lab:
        require_root()
        if self.rootfs is None:
            self.rootfs = rootfs_mod.ensure_rootfs()
        self._install_signal_handlers()
        _LIVE_LABS.append(self)
        # `./lab clean` leaves labs alone whose owner still runs: the state directory
        # appears (renamed into place) with its owner file already in it
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = STATE_DIR / f".{self.id}.new"
        tmp.mkdir()
        (tmp / "owner").write_text(f"{os.getpid()}\n")
        tmp.rename(self.state_dir)
        log(f"lab {self.id}: starting (state in {self.state_dir})")
        _raise_inotify_limit()
        try:
            if self.with_master:
                self.mgmt = self.bridge("mgmt")
                self.master = Master(
                    self,
                    "master",
                    self.rootfs,
                    binds_ro=[(self.formula, FORMULA_DIR)],
                    tmpfs=self._hidden_in_formula(),
                )
                self._add(self.master)
                self.master.create()
                for path, text in self.master_files.items():
                    self.master.write(path, text)
                self.mgmt.attach(self.master, "mgmt0", f"{MASTER_IP}/24")
                self.master.start()
        except BaseException:
            self.close()
            raise
        return self

    def _hidden_in_formula(self) -> list[str]:
        """Big trees of the checkout the master must not walk for every file list
        (.venv has ~15000 files): an empty tmpfs over them inside the master."""
        return [
            f"{FORMULA_DIR}/{d}"
            for d in (".venv", ".git", ".ruff_cache")
            if (self.formula / d).is_dir()
        ]

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, OSError):
                self._old_handlers[sig] = signal.signal(sig, _on_signal)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)
        self._old_handlers = {}

    # -- building blocks -------------------------------------------------------------------
    def _add(self, host: Host) -> Host:
        taken = self.hosts.get(host.name)
        if taken is not None and getattr(taken, "shared", False) and self.release_shared:
            self.release_shared(taken)
        if host.name in self.hosts:
            raise LabError(f"lab {self.id}: a host named {host.name!r} exists already")
        self.hosts[host.name] = host
        self._order.append(host)
        return host

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def namespace(self, name: str) -> Host:
        """A bare network namespace: a LAN client, a NAT router, a server."""
        ns = Host(self, name)
        self._add(ns)
        return ns.create()

    def bridge(self, name: str) -> Bridge:
        br = Bridge(self, f"sw-{name}")
        self._add(br)
        return br.create()

    def container(
        self,
        name: str,
        minion: bool = True,
        hosts: dict | None = None,
        start: bool = True,
        formula: bool = False,
    ) -> Container:
        """A systemd container; with minion=True its salt-minion (id = name) talks to the
        lab's master over the mgmt switch. With formula=True the formula is at
        /srv/formula (read-only), for `salt-call --local` (tests/lab/tunnel.py). Returns
        as soon as nspawn is launched."""
        more = {}
        if formula:
            more = {
                "binds_ro": [(self.formula, FORMULA_DIR)],
                "tmpfs": self._hidden_in_formula(),
            }
        c = Container(self, name, self.rootfs, **more)
        c.minion = minion
        self._add(c)
        c.create()
        etc_hosts = ["127.0.0.1 localhost", f"127.0.1.1 {name}", "::1 localhost ip6-localhost"]
        if self.master is not None:
            etc_hosts.append(f"{MASTER_IP} salt master")
        for hname, addr in (hosts or {}).items():
            etc_hosts.append(f"{addr} {hname}")
        c.write("/etc/hosts", "\n".join(etc_hosts) + "\n")
        if minion:
            if self.master is None:
                raise LabError("a minion needs the lab's master (Lab(master=True))")
            if self._mgmt_next > 254:
                raise LabError("the management network is full")
            addr = f"{MGMT_NET}.{self._mgmt_next}/24"
            self._mgmt_next += 1
            self.mgmt.attach(c, "mgmt0", addr)
            c.write("/etc/salt/minion.d/lab.conf", minion_conf(name))
            c.enable_unit("salt-minion.service")
        if start:
            c.start()
        return c

    def guest(
        self,
        name: str,
        nics=(),
        minion: bool = True,
        hosts: dict | None = None,
        memory: int = 512,
    ) -> Guest:
        """A QEMU virtual machine on Debian's kernel (kernel WireGuard; tests/lab/guest.py)
        with the Host interface of a container. `nics`: (switch, ifname, addresses) plugged
        in at start; with minion=True also `mgmt0` on the management switch, and its
        salt-minion (id = name) talks to the lab's master. Returns as soon as QEMU is
        launched; the guest is configured when it has booted (wait_ready/wait_booted)."""
        if self.guest_image is None:
            self.guest_image = guestimage.ensure_image()
        g = Guest(self, name, self.guest_image, memory=memory)
        g.minion = minion
        self._add(g)
        g.create()
        etc_hosts = ["127.0.0.1 localhost", f"127.0.1.1 {name}", "::1 localhost ip6-localhost"]
        if self.master is not None:
            etc_hosts.append(f"{MASTER_IP} salt master")
        for hname, addr in (hosts or {}).items():
            etc_hosts.append(f"{addr} {hname}")
        g.write("/etc/hosts", "\n".join(etc_hosts) + "\n")
        if minion:
            if self.master is None:
                raise LabError("a minion needs the lab's master (Lab(master=True))")
            addr = f"{MGMT_NET}.{self._mgmt_next}/24"
            self._mgmt_next += 1
            g.nic(self.mgmt, "mgmt0", addr)
            g.write("/etc/salt/minion.d/lab.conf", minion_conf(name) + GUEST_MINION_CONF)
            g.enable_unit("salt-minion.service")
        for bridge, ifname, addrs in nics:
            g.nic(bridge, ifname, addrs)
        g.start()
        return g

    def tunnel_master(self, name: str, files: dict[str, str] | None = None) -> Master:
        """Salt over the tunnel (issue 21): a salt-master that is also a WireGuard node,
        the hub. It has no link to the mgmt switch: it listens on every address of its
        own (its tunnel address too), its own salt-minion (id = name) talks to it over
        loopback, and minions made with tests/lab/tunnel.py reach it only through the
        tunnel. `files` ({path: text}) are written before it boots (more master
        config). Returns as soon as nspawn is launched."""
        m = Master(
            self,
            name,
            self.rootfs,
            binds_ro=[(self.formula, FORMULA_DIR)],
            tmpfs=self._hidden_in_formula(),
        )
        self._add(m)
        m.create()
        # master.d files are read in name order: this one overrides lab.conf's interface
        m.write("/etc/salt/master.d/tunnel.conf", "interface: 0.0.0.0\n")
        m.write("/etc/salt/minion.d/lab.conf", MINION_CONF.format(master="127.0.0.1", id=name))
        m.enable_unit("salt-minion.service")
        m.write("/etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {name}\n::1 localhost\n")
        for path, text in (files or {}).items():
            m.write(path, text)
        m.start()
        return m

    def link(
        self, a: Host, b: Host, a_if: str = "eth0", b_if: str = "eth0", a_addrs=(), b_addrs=()
    ) -> None:
        """A veth pair between two hosts, created directly in their namespaces."""
        a.veth(b, a_if, b_if, a_addrs, b_addrs)

    def nat(self, router: Host, out_iface: str) -> None:
        """Make `router` a NAT router: forward, masquerade everything leaving out_iface."""
        router.sysctl({"net.ipv4.ip_forward": 1})
        router.run(
            ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", out_iface, "-j", "MASQUERADE"]
        )

    def containers(self) -> list[Container]:
        return [h for h in self._order if isinstance(h, Container)]

    def guests(self) -> list[Guest]:
        return [h for h in self._order if isinstance(h, Guest)]

    def minions(self) -> list[Container | Guest]:
        return [
            c
            for c in [*self.containers(), *self.guests()]
            if getattr(c, "minion", False) and not isinstance(c, Master)
        ]

    def wait_ready(self, timeout: float = 120) -> None:
        """All containers booted; the master answers; every minion answers test.ping.
        The formula's extensions are synced the way users do it: on the minions with
        `salt MINIONS saltutil.sync_all`, on the master with `salt-run saltutil.sync_all`
        (its runner and the utils the runner imports)."""
        t0 = time.monotonic()
        for c in self.containers():
            c.wait_booted(timeout=timeout)
        for g in self.guests():  # TCG: slower than a container, booting meanwhile
            g.wait_booted(timeout=max(timeout, 240))
        boot = time.monotonic() - t0
        for g in self.guests():  # every test.ping would only queue up in a slow guest
            if getattr(g, "minion", False) and not getattr(g, "synced", False):
                g.wait_minion_ready(timeout=max(timeout, 240))
        minions = [c for c in self.minions() if not getattr(c, "synced", False)]
        if minions:
            ids = [c.name for c in minions]
            self.master.wait_minions(ids, timeout=timeout, hosts=self.hosts)
            wait = max(120, timeout)
            ret = self.master.salt(ids, "saltutil.sync_all", timeout=wait)
            missing = [i for i in ids if not isinstance(ret.get(i), dict)]
            if missing:  # a busy emulated guest can miss Salt's "still running?" query
                ret.update(self.master.salt(missing, "saltutil.sync_all", timeout=wait))
                missing = [i for i in ids if not isinstance(ret.get(i), dict)]
            if missing:
                raise LabError(f"saltutil.sync_all failed on {missing}: {ret}")
            for c in minions:
                c.synced = True
        elif self.master is not None:
            self.master.wait_ready(timeout=timeout)
        if self.master is not None:
            self.master.sync_all()
        self.timings["boot"] = boot
        self.timings["ready"] = time.monotonic() - t0
        log(
            f"lab {self.id}: ready ({len(self.containers())} containers booted in "
            f"{boot:.1f}s, minions answering after {time.monotonic() - t0:.1f}s)"
        )

    # -- tear-down -------------------------------------------------------------------------
    def remove(self, hosts) -> None:
        """Tear down some hosts (containers are killed: nothing of them is kept); forget
        their minion keys."""
        hosts = list(hosts)
        containers = [h for h in hosts if isinstance(h, (Container, Guest))]
        errors = []
        for h in reversed(hosts):
            try:
                h.destroy()
            except Exception as exc:  # keep going: remove everything we can
                errors.append(f"{h.name}: {exc}")
            self.hosts.pop(h.name, None)
            with contextlib.suppress(ValueError):
                self._order.remove(h)
        if self.master is not None and self.master in self._order:
            alive = self.master.booted and self.master.proc and self.master.proc.poll() is None
            for c in containers:
                if getattr(c, "minion", False) and alive and c is not self.master:
                    self.master.delete_key(c.name)
        if errors:
            raise LabError("tear-down problems:\n" + "\n".join(errors))

    @contextlib.contextmanager
    def section(self):
        """Everything created inside the block is torn down when it ends (but what a
        shared() block made)."""
        # by identity, not by position: a shared host made before may go meanwhile
        # (`kept` holds those hosts, so no new one can take over an id of theirs)
        kept = list(self._order)
        before = {id(h) for h in kept}
        try:
            yield self
        finally:
            created = [
                h for h in self._order if id(h) not in before and not getattr(h, "shared", False)
            ]
            if created and not self._closed:
                self.remove(created)

    @contextlib.contextmanager
    def shared(self):
        """Hosts created in the block outlive any section() around it: a deployment
        several test modules share, first built inside one of them. Yields the list of
        those hosts (filled when the block ends); their owner removes them (`remove`),
        or the lab's end does. A host that wants the name of a shared one asks
        `release_shared` to let it go first."""
        kept = list(self._order)
        before = {id(h) for h in kept}
        created: list[Host] = []
        try:
            yield created
        finally:
            created += [h for h in self._order if id(h) not in before]
            for h in created:
                h.shared = True

    def detach(self) -> None:
        """Leave the lab running after this process ends (`./lab demo --keep`);
        `./lab clean` removes it later."""
        (self.state_dir / "owner").write_text("kept\n")
        self._closed = True
        self._restore_signal_handlers()
        with contextlib.suppress(ValueError):
            _LIVE_LABS.remove(self)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        t0 = time.monotonic()
        # a second Ctrl-C must not leave half a lab behind
        old_int = None
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError):
                old_int = signal.signal(
                    signal.SIGINT, lambda *_: log("tearing the lab down, please wait")
                )
        try:
            log(f"lab {self.id}: tearing down {len(self._order)} hosts")
            errors = []
            for h in reversed(list(self._order)):
                try:
                    h.destroy()
                except Exception as exc:
                    errors.append(f"{h.name}: {exc}")
            self._order.clear()
            self.hosts.clear()
            for root in (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")):
                d = root / self.id
                if d.exists():
                    Container._clean_cgroup(d)
            remove_tree(self.state_dir)
            with contextlib.suppress(OSError):
                STATE_DIR.rmdir()
            _tidy_nspawn_run_dir(self.id)
            log(f"lab {self.id}: gone ({time.monotonic() - t0:.1f}s)")
            if errors:
                raise LabError("tear-down problems:\n" + "\n".join(errors))
        finally:
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
            self._restore_signal_handlers()
            with contextlib.suppress(ValueError):
                _LIVE_LABS.remove(self)


# Every container's systemd holds several inotify instances, all of user root: at the
# kernel's default of 128 per user, about 30 running containers (several labs at once)
# exhaust them, and the next container's systemd exits at once, silently (nspawn: exit
# status 255). The lab raises the limit on the machine, as container engines advise.
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_WANTED = 8192


def _raise_inotify_limit() -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(INOTIFY_INSTANCES.read_text()) < INOTIFY_WANTED:
            INOTIFY_INSTANCES.write_text(f"{INOTIFY_WANTED}\n")
            log(f"fs.inotify.max_user_instances raised to {INOTIFY_WANTED} (many containers)")


def _tidy_nspawn_run_dir(prefix: str = PREFIX) -> None:
    """systemd-nspawn leaves /run/systemd/nspawn/{propagate,...}/<machine>: remove ours,
    then the directories themselves when nothing else is in them."""
    if not NSPAWN_RUN_DIR.is_dir():
        return
    for sub in NSPAWN_RUN_DIR.glob("*/*"):
        if sub.name.startswith(prefix):
            remove_tree(sub)
    # image locks (locks/inode-...): nspawn takes a POSIX lock while it runs; remove
    # those nobody holds, i.e. left behind by containers that are gone
    for lock in NSPAWN_RUN_DIR.glob("locks/*"):
        try:
            with open(lock, "r+") as fh:
                fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock.unlink()
        except OSError:
            continue
    for sub in NSPAWN_RUN_DIR.iterdir():
        if sub.is_dir():
            with contextlib.suppress(OSError):
                sub.rmdir()
    with contextlib.suppress(OSError):
        NSPAWN_RUN_DIR.rmdir()


@atexit.register
def _close_forgotten_labs() -> None:
    for lab in list(_LIVE_LABS):
        with contextlib.suppress(Exception):
            lab.close()
