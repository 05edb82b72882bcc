"""The wiring of every topology in examples/, and what must (not) pass over it.

examples/<topology>/ says what each minion's WireGuard looks like; this file says which of
those minions are containers, which bare namespaces exist around them (NAT routers, LAN
clients, the "internet" server), how they are cabled, and which pings a user would
expect to pass or to fail once `state.apply wireguard` has run.

The simulated internet is one switch, `inet`, on 198.18.0.0/24 (and fd18::/64 for the
IPv6 full tunnel). Nothing in the lab has a route out of the machine.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field

import yaml

from .host import Container, Host, PingResult
from .saltmaster import describe_failures
from .util import REPO, LabError, log

EXAMPLES = REPO / "examples"


@dataclass(frozen=True)
class Port:
    """`host` plugged into a segment (a switch) as interface `ifname`."""

    host: str
    ifname: str
    addrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ping:
    """`src` pings `dst_ip`. `seen_as`: the source address the destination host `dst`
    must see (NAT on the way); `source`: the address ping binds to."""

    src: str
    dst_ip: str
    dst: str | None = None
    seen_as: str | None = None
    source: str | None = None
    why: str = ""

    def __str__(self) -> str:
        extra = f" from {self.source}" if self.source else ""
        return f"{self.src}{extra} -> {self.dst_ip}" + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True)
class Spoof:
    """`src` sends into `interface` from `addr`, which the receiving peer's AllowedIPs
    for `src` does not contain: cryptokey routing must drop it."""

    src: str
    addr: str
    dst_ip: str
    interface: str = "wg0"
    why: str = ""


@dataclass
class Topology:
    name: str
    containers: tuple[str, ...]
    namespaces: tuple[str, ...] = ()
    segments: dict[str, tuple[Port, ...]] = field(default_factory=dict)
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    nat: dict[str, str] = field(default_factory=dict)
    etc_hosts: dict[str, dict[str, str]] = field(default_factory=dict)
    passes: tuple[Ping, ...] = ()
    fails: tuple[Ping, ...] = ()
    spoofs: tuple[Spoof, ...] = ()


INET = "198.18.0"


def _inet(host: str, n: int, ifname: str = "eth0", v6: bool = False) -> Port:
    addrs = (f"{INET}.{n}/24",) + ((f"fd18::{n}/64",) if v6 else ())
    return Port(host, ifname, addrs)


TOPOLOGIES: dict[str, Topology] = {}
# one entry per Deployment built in this process: what each step took (seconds)
TIMINGS: list[dict] = []


def _add(t: Topology) -> None:
    TOPOLOGIES[t.name] = t


def _segment(*ports: tuple[str, str, str]) -> tuple[Port, ...]:
    """A switch's ports, each `(host, ifname, address)`."""
    return tuple(Port(host, ifname, (addr,)) for host, ifname, addr in ports)


def _outside(src: str, addr: str, dst_ip: str, peer: str, allowed: str, interface="wg0"):
    """`src` sends from `addr`, outside the AllowedIPs (`allowed`) `peer` keeps for it."""
    why = f"{peer}'s AllowedIPs for {src} is {allowed}"
    return (Spoof(src, addr, dst_ip, interface, why=why),)


def _nat(src: str, dst_ip: str, dst: str, seen_as: str, why: str) -> Ping:
    """A ping that passes and reaches `dst` from `seen_as` (NAT on the way)."""
    return Ping(src, dst_ip, dst=dst, seen_as=seen_as, why=why)


_add(
    Topology(
        name="laptop-server",
        containers=("server", "laptop"),
        segments={"inet": (_inet("server", 1), _inet("laptop", 10))},
        etc_hosts={"laptop": {"server.example.net": f"{INET}.1"}},
        passes=(
            Ping("laptop", "10.0.0.1", why="laptop dials the server by name"),
            Ping("server", "10.0.0.2", why="server answers on the learned endpoint"),
        ),
        spoofs=_outside("laptop", "10.0.0.99", "10.0.0.1", "server", "10.0.0.2/32"),
    )
)

_add(
    Topology(
        name="internet-gateway",
        containers=("gateway", "laptop"),
        namespaces=("home-router", "internet"),
        segments={
            "inet": (
                _inet("gateway", 1, v6=True),
                _inet("home-router", 102, "wan"),
                _inet("internet", 200, v6=True),
            ),
            "home": _segment(
                ("home-router", "lan", "192.168.50.1/24"), ("laptop", "eth0", "192.168.50.2/24")
            ),
        },
        routes={"laptop": ("default via 192.168.50.1",)},
        nat={"home-router": "wan"},
        passes=(
            Ping("laptop", "10.8.0.1", why="tunnel, IPv4"),
            Ping("laptop", "fd08::1", why="tunnel, IPv6"),
            _nat(
                "laptop",
                f"{INET}.200",
                "internet",
                f"{INET}.1",
                "0.0.0.0/0 through the gateway's NAT",
            ),
            _nat("laptop", "fd18::200", "internet", "fd18::1", "::/0 through the gateway's NAT"),
        ),
        fails=(Ping("internet", "10.8.0.2", why="the tunnel network is hidden behind NAT"),),
        spoofs=_outside("laptop", "10.8.0.99", "10.8.0.1", "gateway", "10.8.0.2/32"),
    )
)

_add(
    Topology(
        name="jumpbox-vlan",
        containers=("jumpbox", "admin"),
        namespaces=("nas",),
        segments={
            "inet": (_inet("jumpbox", 1), _inet("admin", 10)),
            # VLAN 50 as an access port: this machine's kernel has no 802.1Q, so the VLAN
            # is a switch of its own and the jumpbox's port into it is called vlan50
            "vlan50": _segment(
                ("jumpbox", "vlan50", "172.16.50.1/24"), ("nas", "eth0", "172.16.50.10/24")
            ),
        },
        passes=(
            Ping("admin", "10.9.0.1", why="tunnel"),
            _nat(
                "admin",
                "172.16.50.10",
                "nas",
                "172.16.50.1",
                "into the VLAN, masqueraded by the jumpbox",
            ),
        ),
        fails=(Ping("nas", "10.9.0.2", why="the VLAN has no way back into the tunnel"),),
        spoofs=_outside(
            "admin", "10.9.0.99", "172.16.50.10", "jumpbox", "10.9.0.2/32", interface="jump0"
        ),
    )
)

_add(
    Topology(
        name="mesh",
        containers=("mesh1", "mesh2", "mesh3"),
        segments={"inet": tuple(_inet(f"mesh{i}", i) for i in (1, 2, 3))},
        passes=tuple(
            Ping(f"mesh{a}", f"10.10.0.{b}") for a in (1, 2, 3) for b in (1, 2, 3) if a != b
        ),
        spoofs=_outside("mesh1", "10.10.0.99", "10.10.0.2", "mesh2", "10.10.0.1/32"),
    )
)

_add(
    Topology(
        name="road-warriors",
        containers=("server", "warrior1", "warrior2"),
        namespaces=("nat1", "nat2"),
        segments={
            "inet": (_inet("server", 1), _inet("nat1", 101, "wan"), _inet("nat2", 102, "wan")),
            # both NATed LANs use the same prefix: it does not matter to WireGuard
            "lan1": _segment(
                ("nat1", "lan", "192.168.1.1/24"), ("warrior1", "eth0", "192.168.1.2/24")
            ),
            "lan2": _segment(
                ("nat2", "lan", "192.168.1.1/24"), ("warrior2", "eth0", "192.168.1.2/24")
            ),
        },
        routes={"warrior1": ("default via 192.168.1.1",), "warrior2": ("default via 192.168.1.1",)},
        nat={"nat1": "wan", "nat2": "wan"},
        passes=(
            Ping("server", "10.20.0.11", why="keepalive told the server where warrior1 is"),
            Ping("server", "10.20.0.12", why="keepalive told the server where warrior2 is"),
            Ping("warrior1", "10.20.0.12", why="warrior to warrior through the server"),
            Ping("warrior2", "10.20.0.11", why="warrior to warrior through the server"),
        ),
        fails=(Ping("server", "192.168.1.2", why="the warriors' LANs are behind NAT"),),
        spoofs=(
            Spoof("warrior1", "10.20.0.12", "10.20.0.1", why="warrior1 pretends to be warrior2"),
        ),
    )
)

_add(
    Topology(
        name="two-sites-behind-nat",
        containers=("hub", "site-a", "site-b"),
        namespaces=("nat-a", "nat-b", "client-a", "client-b"),
        segments={
            "inet": (_inet("hub", 1), _inet("nat-a", 101, "wan"), _inet("nat-b", 102, "wan")),
            "lan-a": _segment(
                ("nat-a", "lan", "192.168.1.1/24"),
                ("site-a", "eth0", "192.168.1.2/24"),
                ("client-a", "eth0", "192.168.1.10/24"),
            ),
            "lan-b": _segment(
                ("nat-b", "lan", "192.168.2.1/24"),
                ("site-b", "eth0", "192.168.2.2/24"),
                ("client-b", "eth0", "192.168.2.10/24"),
            ),
        },
        routes={
            "site-a": ("default via 192.168.1.1",),
            "site-b": ("default via 192.168.2.1",),
            # LAN hosts: internet through the NAT router, the other site via the gateway
            "client-a": (
                "default via 192.168.1.1",
                "192.168.2.0/24 via 192.168.1.2",
                "10.30.0.0/24 via 192.168.1.2",
            ),
            "client-b": (
                "default via 192.168.2.1",
                "192.168.1.0/24 via 192.168.2.2",
                "10.30.0.0/24 via 192.168.2.2",
            ),
        },
        nat={"nat-a": "wan", "nat-b": "wan"},
        passes=(
            Ping("site-a", "10.30.0.1", why="site A to the hub"),
            Ping("site-b", "10.30.0.1", why="site B to the hub"),
            Ping("client-a", "192.168.2.10", why="LAN A to LAN B through the hub"),
            Ping("client-b", "192.168.1.10", why="LAN B to LAN A through the hub"),
            Ping("hub", "192.168.1.10", why="hub into LAN A"),
            Ping("hub", "192.168.2.10", why="hub into LAN B"),
            Ping("client-a", "10.30.0.3", why="LAN A to site B's gateway"),
        ),
        fails=(
            Ping("nat-a", "192.168.2.10", why="only the tunnel joins the sites, not the internet"),
        ),
        spoofs=(
            Spoof(
                "site-a",
                "192.168.2.99",
                "10.30.0.1",
                why="site A claims an address of site B's LAN",
            ),
        ),
    )
)

_add(
    Topology(
        name="dns-two-gateways",
        containers=("gw1", "gw2", "client"),
        namespaces=("server1", "server2"),
        segments={
            "inet": (_inet("gw1", 1), _inet("gw2", 2), _inet("client", 10)),
            "office1": _segment(
                ("gw1", "eth1", "172.16.1.1/24"), ("server1", "eth0", "172.16.1.10/24")
            ),
            "office2": _segment(
                ("gw2", "eth1", "172.16.2.1/24"), ("server2", "eth0", "172.16.2.10/24")
            ),
        },
        routes={"server1": ("default via 172.16.1.1",), "server2": ("default via 172.16.2.1",)},
        passes=(
            Ping("client", "10.40.0.1", why="gateway 1"),
            Ping("client", "10.40.0.2", why="gateway 2"),
            Ping("client", "172.16.1.10", why="office 1 through gateway 1"),
            Ping("client", "172.16.2.10", why="office 2 through gateway 2"),
            Ping("server1", "10.40.0.10", why="office 1 back to the client"),
        ),
        fails=(Ping("gw1", "10.40.0.2", why="the gateways are not peers of each other"),),
        spoofs=_outside(
            "client", "10.40.0.99", "10.40.0.1", "gw1", "10.40.0.10/32", interface="corp0"
        ),
    )
)


# --------------------------------------------------------------------------- pillar
def load_examples(root=EXAMPLES) -> dict[str, dict]:
    """{topology name: {minion id: pillar}} from examples/<topology>/: `<minion>.sls` is
    that minion's pillar, `all.sls` every minion's (a network's nodes are its minions);
    top.sls says the same to Salt (tests/unit/test_pillar_examples.py checks both)."""
    out = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        minions = {}
        for path in sorted(directory.glob("*.sls")):
            if path.name == "top.sls":
                continue
            pillar = yaml.safe_load(path.read_text())
            if path.stem != "all":
                minions[path.stem] = pillar
                continue
            networks = pillar.get("wireguard", {}).get("networks", {})
            for node in sorted({n for net in networks.values() for n in net["nodes"]}):
                minions[node] = copy.deepcopy(pillar)
        if not minions:
            raise LabError(f"{directory}: no pillar file")
        out[directory.name] = minions
    return out


def interfaces_of(pillar: dict) -> list[str]:
    ifs = pillar.get("wireguard", {}).get("interfaces", {})
    return [n for n, i in ifs.items() if not i.get("absent") and i.get("enabled", True)]


# --------------------------------------------------------------------------- deployment
class Deployment:
    """One topology wired up in a lab (inside a lab.section() of the caller's)."""

    def __init__(self, lab, name: str, pillar: dict | None = None):
        if name not in TOPOLOGIES:
            raise LabError(f"unknown topology {name!r}; known: {', '.join(TOPOLOGIES)}")
        self.lab = lab
        self.topo = TOPOLOGIES[name]
        self.name = name
        self.pillar = pillar if pillar is not None else load_examples()[name]
        missing = set(self.pillar) - set(self.topo.containers)
        if missing:
            raise LabError(
                f"{name}: examples/{name} has minions {sorted(missing)} that the "
                f"topology does not wire up"
            )
        self.hosts: dict[str, Host] = {}
        self.timings: dict[str, float] = {}
        # {minion: the pillar its last successful apply ran}
        self.applied: dict[str, dict] = {}
        self.base: dict | None = None  # the example's pillar, kept by the tests
        self.first: dict | Exception | None = None  # the first apply's return

    @property
    def minions(self) -> list[str]:
        return list(self.topo.containers)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def build(self) -> Deployment:
        t0 = time.monotonic()
        topo, lab = self.topo, self.lab
        log(
            f"{self.name}: booting {', '.join(topo.containers)}"
            + (f"; namespaces {', '.join(topo.namespaces)}" if topo.namespaces else "")
        )
        for c in topo.containers:
            self.hosts[c] = lab.container(c, hosts=topo.etc_hosts.get(c))
        for n in topo.namespaces:
            self.hosts[n] = lab.namespace(n)
        for seg, ports in topo.segments.items():
            br = lab.bridge(f"{self.name[:10]}-{seg}")
            for p in ports:
                br.attach(self.hosts[p.host], p.ifname, p.addrs)
        for host, routes in topo.routes.items():
            for r in routes:
                self.hosts[host].route(r)
        for router, out in topo.nat.items():
            lab.nat(self.hosts[router], out)
        lab.wait_ready()
        self.timings.update(
            topology=self.name,
            containers=len(topo.containers),
            boot=lab.timings.get("boot", 0.0),
            ready=lab.timings.get("ready", 0.0),
            build=time.monotonic() - t0,
        )
        TIMINGS.append(self.timings)
        return self

    # -- salt --------------------------------------------------------------------------
    def apply(self, pillar: dict | None = None, minions=None, check: bool = True) -> dict:
        """Make `pillar` (default: the deployment's) the master's, then `salt MINIONS
        state.apply wireguard` (default: every minion of it); see Master.state_apply."""
        if pillar is not None:
            self.pillar = pillar
        minions = sorted(minions or self.pillar)
        for mid in minions:
            self.applied.pop(mid, None)
        t0 = time.monotonic()
        ret = self.lab.master.state_apply(minions, self.pillar, check=check)
        self.timings.setdefault("apply", time.monotonic() - t0)
        for mid in minions:
            if isinstance(ret.get(mid), dict) and not describe_failures({mid: ret[mid]}):
                self.applied[mid] = copy.deepcopy(self.pillar.get(mid))
        return ret

    # -- traffic -----------------------------------------------------------------------
    def ping(self, p: Ping, within: float = 20.0) -> PingResult:
        return self.hosts[p.src].ping_until(p.dst_ip, within=within, source=p.source)

    def check_pass(self, p: Ping) -> list[str]:
        """Problems (empty when fine) of a ping that must pass."""
        counter = None
        if p.seen_as:
            counter = _SourceCounter(self.hosts[p.dst], p.seen_as)
        res = self.ping(p)
        if not res.received:
            return [f"must pass, but no reply: {p}\n{res.output.strip()}"]
        res = self.hosts[p.src].ping(p.dst_ip, count=3, interval=0.2, source=p.source)
        problems = [] if res.ok else [f"must pass, lost {res.lost}/{res.sent}: {p}"]
        if counter is not None:
            seen = counter.read()
            if seen < 3:
                problems.append(
                    f"{p}: {p.dst} saw only {seen} echo requests from "
                    f"{p.seen_as} (the NAT address expected)"
                )
        return problems

    def check_fail(self, p: Ping) -> list[str]:
        res = self.hosts[p.src].ping(p.dst_ip, count=3, interval=0.3, source=p.source)
        return [f"must fail, but {res.received} replies: {p}"] if res.received else []

    def check_spoof(self, s: Spoof) -> list[str]:
        """The spoofed packets must enter the tunnel (tx bytes grow) and get no reply."""
        host = self.hosts[s.src]
        host.ip("addr", "add", f"{s.addr}/{128 if ':' in s.addr else 32}", "dev", "lo")
        try:
            before = tx_bytes(host, s.interface)
            res = host.ping(s.dst_ip, count=3, interval=0.3, source=s.addr)
            after = tx_bytes(host, s.interface)
        finally:
            host.ip(
                "addr", "del", f"{s.addr}/{128 if ':' in s.addr else 32}", "dev", "lo", check=False
            )
        problems = []
        if res.received:
            problems.append(
                f"cryptokey routing: {s.src} from {s.addr} -> {s.dst_ip} got "
                f"{res.received} replies ({s.why})"
            )
        if after <= before:
            problems.append(
                f"{s.src}: the spoofed pings never entered {s.interface} "
                f"(tx {before} -> {after}), so the test proves nothing"
            )
        return problems


def tx_bytes(host: Host, interface: str) -> int:
    """Sum of the transfer-tx column of `wg show IF transfer`."""
    out = host.out(["wg", "show", interface, "transfer"])
    return sum(int(line.split()[2]) for line in out.splitlines() if line.strip())


class _SourceCounter:
    """An iptables rule in the destination namespace counting echo requests from one
    source address: what the destination sees, i.e. whether NAT happened."""

    def __init__(self, host: Host, source: str):
        self.host = host
        self.source = source
        v6 = ":" in source
        self.tool = "ip6tables" if v6 else "iptables"
        self.rule = [
            "INPUT",
            "-s",
            source,
            "-p",
            "ipv6-icmp" if v6 else "icmp",
            "--icmpv6-type" if v6 else "--icmp-type",
            "echo-request",
        ]
        # a new rule starts at 0 (and creates the filter table in a fresh namespace)
        self._cmd(["-I", *self.rule])

    def _cmd(self, args, check=True):
        return self.host.run([self.tool, "-w", *args], check=check)

    def read(self) -> int:
        out = self._cmd(["-nvxL", "INPUT"]).stdout
        self._cmd(["-D", *self.rule], check=False)
        for line in out.splitlines():
            if self.source.split("/")[0] in line:
                m = re.match(r"\s*(\d+)", line)
                if m:
                    return int(m.group(1))
        return 0


def diagnostics(dep: Deployment, hosts=None) -> str:
    """What a person would look at when something does not pass: per host, the live
    WireGuard state, addresses, routes, failed units and the wg-quick journal."""
    out = []
    for name in hosts or dep.hosts:
        h = dep.hosts[name]
        if isinstance(h, Container):
            cmd = (
                "wg show; ip -br addr; ip route; ip rule; systemctl --failed --no-legend; "
                "journalctl -u 'wg-quick@*' --no-pager -n 15 -o cat"
            )
        else:
            cmd = "ip -br addr; ip route"
        try:
            text = h.out(cmd, check=False, timeout=30)
        except LabError as exc:
            text = f"(could not ask: {exc})"
        out.append(f"===== {name}\n{text.strip()}")
    return "\n".join(out)
