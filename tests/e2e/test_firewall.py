"""The formula's own firewall (issue 14) with real traffic: a jumpbox into a VLAN of two
hosts (one serving TCP), two peers with different `access` rules, `open_port` limited to
the peers' addresses, masquerade into the VLAN; under nftables and under iptables.

Only the jumpbox is a minion; the peers and the VLAN hosts are plain containers whose
WireGuard the test configures itself.
"""

from __future__ import annotations

import copy
import json
import time

import pytest

from tests.e2e.traffic import steady_ping
from tests.lab.saltmaster import describe_failures, summarize
from tests.support.keys import keypair

JUMP_IP = "10.9.0.1"
NAS1, NAS2 = "172.16.50.10", "172.16.50.20"
PEER_ADDR = {"laptop": ("198.18.0.10", "10.9.0.2"), "admin": ("198.18.0.11", "10.9.0.3")}
ROGUE_ADDR = "198.18.0.12"
TCP_PORTS = (8022, 8443)
CONNECT = (
    "import socket, sys\n"
    "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
)

ACCESS = {
    "default": "drop",
    "rules": [
        {"from": ["laptop"], "to": [f"{NAS1}/32"], "proto": "tcp", "ports": [8022]},
        {"from": ["laptop"], "to": [f"{JUMP_IP}/32"], "proto": "icmp"},
        {"from": ["admin"], "to": ["172.16.50.0/24"]},
    ],
}
# (peer, destination, ICMP or TCP port, allowed): every allow and deny of ACCESS
MATRIX = [
    ("laptop", NAS1, 8022, True),  # rule 1
    ("laptop", NAS1, 8443, False),  # rule 1 names port 8022 only
    ("laptop", NAS1, "icmp", False),  # rule 1 is tcp only
    ("laptop", NAS2, "icmp", False),  # no rule for the other host
    ("laptop", JUMP_IP, "icmp", True),  # rule 2: the minion itself
    ("admin", NAS1, "icmp", True),  # rule 3: the whole VLAN
    ("admin", NAS1, 8022, True),
    ("admin", NAS1, 8443, True),
    ("admin", NAS2, "icmp", True),
    ("admin", JUMP_IP, "icmp", False),  # no rule to the minion: default drop
]


class Site:
    """The jumpbox, its peers and the VLAN; `pillar()` is the jumpbox's pillar."""

    def __init__(self, lab):
        self.lab = lab
        self.keys = {name: keypair() for name in PEER_ADDR}
        self.applied: dict | None = None  # the pillar the last successful apply ran
        self.jumpbox = lab.container("jumpbox")
        self.peers = {name: lab.container(name, minion=False) for name in PEER_ADDR}
        self.nas = {
            ip: lab.container(f"nas{n}", minion=False) for n, ip in enumerate((NAS1, NAS2), 1)
        }
        inet, vlan = lab.bridge("inet"), lab.bridge("vlan50")
        inet.attach(self.jumpbox, "eth0", "198.18.0.1/24")
        vlan.attach(self.jumpbox, "vlan50", "172.16.50.1/24")
        for name, (outer, _) in PEER_ADDR.items():
            inet.attach(self.peers[name], "eth0", f"{outer}/24")
        for ip, host in self.nas.items():
            vlan.attach(host, "eth0", f"{ip}/24")
        lab.wait_ready()
        for port in TCP_PORTS:
            self.nas[NAS1].systemd_run(
                ["python3", "-m", "http.server", str(port), "--bind", NAS1], "lab-tcp"
            )

    def pillar(self, firewall="nftables", **changes) -> dict:
        jump0 = {
            "address": f"{JUMP_IP}/24",
            "listen_port": 51821,
            "forwarding": True,
            "masquerade": ["vlan50"],
            "open_port": [f"{PEER_ADDR[n][0]}/32" for n in PEER_ADDR],
            "access": copy.deepcopy(ACCESS),
            "peers": {
                name: {"public_key": self.keys[name][1], "allowed_ips": [f"{inner}/32"]}
                for name, (_, inner) in PEER_ADDR.items()
            },
        }
        jump0.update(changes)
        return {"wireguard": {"lookup": {"firewall": firewall}, "interfaces": {"jump0": jump0}}}

    def apply(self, pillar: dict, sls: str = "wireguard", ok: bool = True) -> dict:
        self.applied = None
        ret = self.lab.master.state_apply("jumpbox", {"jumpbox": pillar}, check=ok, sls=sls)
        if sls == "wireguard" and not describe_failures(ret):
            self.applied = copy.deepcopy(pillar)
        return ret

    def ensure(self, pillar: dict) -> None:
        """The jumpbox runs `pillar`: applied unless it is what the last successful
        apply of the whole formula left (a refused or partial run leaves nothing known)."""
        if self.applied != pillar:
            self.apply(pillar)

    def start_peers(self) -> None:
        jump_key = self.jumpbox.out(["wg", "show", "jump0", "public-key"]).strip()
        for name, (_, inner) in PEER_ADDR.items():
            self.peers[name].write(
                "/etc/wireguard/wg0.conf",
                "\n".join(
                    [
                        "[Interface]",
                        f"PrivateKey = {self.keys[name][0]}",
                        f"Address = {inner}/32",
                        "",
                        "[Peer]",
                        f"PublicKey = {jump_key}",
                        "Endpoint = 198.18.0.1:51821",
                        f"AllowedIPs = {JUMP_IP}/32, 172.16.50.0/24",
                        "",
                    ]
                ),
                mode=0o600,
            )
            self.peers[name].systemctl("restart", "wg-quick@wg0")
            assert (
                self.peers[name]
                .ping_until(JUMP_IP if name == "laptop" else NAS2, within=20)
                .received
            ), f"{name} handshakes"

    def reaches(self, peer: str, dst: str, what) -> bool:
        host = self.peers[peer]
        if what == "icmp":
            return bool(host.ping(dst, count=2, interval=0.2).received)
        return host.run(["python3", "-c", CONNECT, dst, str(what)], check=False).returncode == 0

    def matrix_problems(self) -> list[str]:
        return [
            f"{peer} -> {dst} {what}: {'allowed' if allowed else 'denied'} by the rules, "
            f"but {'denied' if allowed else 'allowed'}"
            for peer, dst, what, allowed in MATRIX
            if self.reaches(peer, dst, what) != allowed
        ]

    def ruleset(self) -> str:
        return self.jumpbox.out(["nft", "list", "ruleset"])

    def iptables_ours(self) -> str:
        saved = self.jumpbox.out("iptables-save; ip6tables-save")
        return "\n".join(
            line
            for line in saved.splitlines()
            if "WIREGUARD" in line or "jump0" in line or "vlan50" in line
        )


def tables(ruleset: str) -> dict[str, str]:
    """`nft list ruleset` split into {"family name": text of that table}."""
    found, current = {}, None
    for line in ruleset.splitlines():
        if line.startswith("table "):
            current = " ".join(line.split()[1:3])
            found[current] = ""
        if current:
            found[current] += line + "\n"
    return found


@pytest.fixture(scope="module")
def site(lab):
    with lab.section():
        s = Site(lab)
        s.apply(s.pillar())
        s.start_peers()
        yield s


def test_access_rules_allow_and_deny_real_traffic(site):
    site.ensure(site.pillar())
    problems = site.matrix_problems()
    assert not problems, "\n".join(problems) + "\n" + site.ruleset()
    # masquerade into the VLAN, from the formula's table
    seen = site.nas[NAS2].popen(
        ["timeout", "5", "tcpdump", "-n", "-c", "1", "-i", "eth0", "icmp[icmptype] == icmp-echo"]
    )
    time.sleep(1)
    site.peers["admin"].ping(NAS2, count=2)
    out, _ = seen.communicate(timeout=10)
    assert "172.16.50.1 > 172.16.50.20" in out, out


def test_the_formula_keeps_one_nft_table_and_nothing_elsewhere(site):
    site.ensure(site.pillar())
    found = tables(site.ruleset())
    assert "inet wireguard" in found, found
    for name, text in found.items():
        if name != "inet wireguard":
            assert "jump0" not in text and "vlan50" not in text, f"{name}:\n{text}"
    assert site.iptables_ours() == "", "no iptables rule of the formula's under nftables"
    conf = site.jumpbox.read("/etc/wireguard/jump0.conf")
    assert "iptables" not in conf and "PostUp" not in conf, conf
    again = summarize(site.apply(site.pillar()))["jumpbox"]
    assert again["changed"] == 0, again


def test_rule_change_under_ping_loses_nothing_and_keeps_the_interface(site):
    site.ensure(site.pillar())
    ifindex = site.jumpbox.ifindex("jump0")
    since = site.jumpbox.out(
        ["systemctl", "show", "-P", "ActiveEnterTimestampMonotonic", "wg-quick@jump0"]
    )
    changed = copy.deepcopy(ACCESS)
    changed["rules"][0]["ports"] = [8022, 8443]  # laptop may now use 8443 as well
    changed["rules"].append({"from": ["laptop"], "to": [f"{NAS2}/32"], "proto": "icmp"})
    # 20 packets a second from admin to NAS2, an established flow both rule sets allow
    with steady_ping(site.peers["admin"], NAS2) as pings:
        ret = summarize(site.apply(site.pillar(access=changed)))["jumpbox"]
    assert [i.split("_|-")[1] for i in ret["changed_ids"]] == [
        "wireguard-firewall-rules-wireguard-firewall"
    ], ret
    pings.check("admin -> NAS2 while the rules change")
    assert site.jumpbox.ifindex("jump0") == ifindex, "the interface was recreated"
    assert (
        site.jumpbox.out(
            ["systemctl", "show", "-P", "ActiveEnterTimestampMonotonic", "wg-quick@jump0"]
        )
        == since
    ), "wg-quick@jump0 restarted"
    assert site.reaches("laptop", NAS1, 8443) and site.reaches("laptop", NAS2, "icmp")
    site.apply(site.pillar())
    assert not site.reaches("laptop", NAS1, 8443), "the rule change back is live too"


def test_test_mode_predicts_the_change_and_touches_nothing(site):
    site.ensure(site.pillar())
    before = site.ruleset()
    changed = copy.deepcopy(ACCESS)
    changed["default"] = "accept"
    ret = site.lab.master.state_apply(
        "jumpbox", {"jumpbox": site.pillar(access=changed)}, check=False, test=True
    )
    state = ret["jumpbox"][
        "wireguard_|-wireguard-firewall-rules-wireguard-firewall_|-table inet wireguard_|-firewall"
    ]
    assert state["result"] is None, state
    assert 'drop comment "jump0 default drop"' in state["changes"]["nftables"]["old"]
    assert 'accept comment "jump0 default accept"' in state["changes"]["nftables"]["new"]
    assert site.ruleset() == before
    site.lab.master.write_pillar({"jumpbox": site.pillar()})  # nothing to apply


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"from": ["nobody"], "to": [f"{NAS1}/32"]}, ["rule 4, from", "'nobody' names no peer"]),
        ({"from": ["laptop"], "to": ["172.16.50.0/33"]}, ["rule 4, to", "not a valid CIDR"]),
        ({"from": ["laptop"], "proto": "tcp", "ports": [0]}, ["rule 4, ports"]),
        ({"from": ["laptop"], "proto": "sctp"}, ["rule 4, proto"]),
        ({"from": ["laptop"], "proto": "icmp", "ports": [22]}, ["rule 4, ports", "tcp or udp"]),
    ],
)
def test_a_bad_rule_is_refused_and_changes_nothing(site, rule, words):
    site.ensure(site.pillar())
    before = site.ruleset()
    bad = copy.deepcopy(ACCESS)
    bad["rules"].append(rule)
    message = _failure(site.apply(site.pillar(access=bad), ok=False))
    for word in ["interface 'jump0'", *words]:
        assert word in message, message
    assert site.ruleset() == before


def test_masquerade_must_name_an_interface(site):
    before = site.ruleset()
    message = _failure(site.apply(site.pillar(masquerade=["vlan50 -j ACCEPT"]), ok=False))
    assert "interface 'jump0', key 'masquerade'" in message, message
    assert site.ruleset() == before


def _failure(ret: dict) -> str:
    """What a refused state.apply on the jumpbox said (its render error)."""
    got = ret["jumpbox"]
    assert not isinstance(got, dict) or describe_failures(ret), f"the apply did not fail: {got}"
    return "\n".join(got) if isinstance(got, list) else str(got) + describe_failures(ret)


def _moves_to_rogue_address(site) -> bool:
    """The laptop, with its valid key, from an address open_port does not list: True
    when it handshakes anyway."""
    laptop = site.peers["laptop"]
    # one address at a time: deleting a primary address takes its secondaries along
    laptop.run(["ip", "addr", "flush", "dev", "eth0"])
    laptop.run(["ip", "addr", "add", f"{ROGUE_ADDR}/24", "dev", "eth0"])
    try:
        laptop.systemctl("restart", "wg-quick@wg0")  # a fresh handshake is needed
        got = laptop.ping_until(JUMP_IP, within=8).received
        endpoints = site.jumpbox.out(["wg", "show", "jump0", "endpoints"])
        return bool(got) or ROGUE_ADDR in endpoints
    finally:
        laptop.run(["ip", "addr", "flush", "dev", "eth0"])
        laptop.run(["ip", "addr", "add", f"{PEER_ADDR['laptop'][0]}/24", "dev", "eth0"])
        laptop.systemctl("restart", "wg-quick@wg0")
        assert laptop.ping_until(JUMP_IP, within=20).received, "laptop is back"


def test_open_port_lets_only_the_listed_endpoints_handshake(site):
    site.ensure(site.pillar())
    assert site.peers["laptop"].ping_until(JUMP_IP, within=10).received
    assert not _moves_to_rogue_address(site), "a peer from another address handshook"


def test_iptables_backend_same_scenario(site):
    ifindex = site.jumpbox.ifindex("jump0")
    try:
        site.apply(site.pillar("iptables"))
        assert "inet wireguard" not in tables(site.ruleset()), "the nft table is gone"
        ours = site.iptables_ours()
        for chain in ("WIREGUARD-INPUT", "WIREGUARD-FORWARD", "WIREGUARD-POSTROUTING"):
            assert f"-j {chain}" in ours, ours
        assert site.jumpbox.ifindex("jump0") == ifindex, "switching backends is live"
        problems = site.matrix_problems()
        assert not problems, "\n".join(problems) + "\n" + ours
        assert not _moves_to_rogue_address(site), "a peer from another address handshook"
        again = summarize(site.apply(site.pillar("iptables")))["jumpbox"]
        assert again["changed"] == 0, again
    finally:
        site.apply(site.pillar())
    assert site.iptables_ours() == "", "back on nftables, the iptables chains are gone"


# (from, to, proto, port, allow): assertions of the jumpbox's pillar (issue 22)
EXPECT = [
    {"from": "laptop", "to": NAS1, "proto": "tcp", "port": 8022},  # rule 1: holds
    {"from": "laptop", "to": NAS1, "proto": "tcp", "port": 8443, "allow": False},  # holds
    {"from": "laptop", "to": NAS2},  # no rule lets laptop ping NAS2: fails
    {"from": "jumpbox", "to": "admin"},  # the jumpbox pings admin's tunnel address: holds
    {"from": "jumpbox", "to": "laptop"},  # holds, until laptop's own firewall drops it
]


def _verify(site) -> tuple[int, dict, str]:
    """`salt-run wireguard.verify tgt=jumpbox` as JSON and as the table: exit codes,
    the JSON's answer, the table."""
    master = site.lab.master
    master.sync_all()
    argv = ["salt-run", "--no-color", "-t", "60", "wireguard.verify", "tgt=jumpbox"]
    data = master.run([*argv[:1], "--out=json", *argv[1:]], check=False, timeout=120)
    text = master.run(argv, check=False, timeout=120)
    assert data.returncode == text.returncode, (data.stdout, text.stdout)
    return data.returncode, json.loads(data.stdout), text.stdout


def test_reachability_assertions_hold_fail_and_find_a_firewall_outside_the_formula(site):
    """Static and live verdicts in the lab (issue 22): an access rule that blocks is named
    at the jumpbox; a drop rule in a table the formula does not own (on the laptop) makes
    static allow and live block, reported as something outside the formula's model."""
    pillar = site.pillar()
    pillar["wireguard"]["expect"] = copy.deepcopy(EXPECT)
    site.ensure(pillar)
    site.start_peers()
    laptop = site.peers["laptop"]
    try:
        code, data, table = _verify(site)
        rows = [(r["from"], r["to"], r["port"], r) for r in data["assertions"]]
        got = {(f, t, p): r for f, t, p, r in rows}
        assert code == 1 and (data["passed"], data["failed"]) == (4, 1), data
        blocked = got[("laptop", NAS2, None)]
        assert blocked["static"] == "block" and blocked["pass"] is False
        assert blocked["reason"].startswith(
            f"jumpbox: access default drop, no rule matches laptop->{NAS2} icmp"
        ), blocked
        assert got[("laptop", NAS1, 8022)]["path"] == ["laptop", "jumpbox", "172.16.50.0/24"]
        assert "static check only" in got[("laptop", NAS1, 8022)]["reason"]
        for target in ("admin", "laptop"):
            row = got[("jumpbox", target, None)]
            assert (row["static"], row["live"], row["pass"]) == ("allow", "allow", True), row[
                "reason"
            ]
        assert table.startswith("WireGuard verify: 4 passed, 1 failed"), table
        assert f"laptop -> {NAS2} icmp" in table
        # a drop rule the formula does not own: on the laptop, in a table of its own
        laptop.run(
            "nft add table inet rogue && nft add chain inet rogue input "
            "'{ type filter hook input priority 0; policy accept; }' && "
            "nft add rule inet rogue input icmp type echo-request drop"
        )
        code, data, table = _verify(site)
        row = {(r["from"], r["to"]): r for r in data["assertions"]}[("jumpbox", "laptop")]
        assert (row["static"], row["live"], row["pass"]) == ("allow", "block", False), row
        assert "outside the formula's model" in row["reason"]
        assert code == 1 and data["failed"] == 2
        last = json.loads(site.jumpbox.read("/var/lib/wireguard-formula/verify/last.json"))
        assert (last["passed"], last["failed"]) == (1, 1) and last["time"] > 0
    finally:
        laptop.run("nft delete table inet rogue", check=False)


def test_verify_names_the_hop_without_masquerade_or_forwarding(site):
    """The jumpbox without its masquerade, then with forwarding off (live: the facts
    are what runs): laptop's path to the NAS is blocked at the jumpbox, and the reason
    says which it is."""
    expect = [copy.deepcopy(EXPECT[0])]
    pillar = site.pillar(masquerade=[])
    pillar["wireguard"]["expect"] = expect
    site.ensure(pillar)
    code, data, _ = _verify(site)
    row = data["assertions"][0]
    assert code == 1 and row["static"] == "block", row
    assert row["reason"].startswith("jumpbox: no masquerade of jump0 on vlan50"), row
    assert "(masquerade missing)" in row["reason"], row
    pillar = site.pillar()
    pillar["wireguard"]["expect"] = expect
    site.ensure(pillar)
    assert _verify(site)[1]["assertions"][0]["static"] == "allow"
    site.jumpbox.run(["sysctl", "-qw", "net.ipv4.ip_forward=0"])
    try:
        code, data, _ = _verify(site)
        row = data["assertions"][0]
        assert code == 1 and row["static"] == "block", row
        assert row["reason"].startswith("jumpbox: IPv4 forwarding off"), row
    finally:
        site.jumpbox.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])


DOWNLOAD = (
    "import sys, time, urllib.request\n"
    "start = time.monotonic()\n"
    "body = urllib.request.urlopen(sys.argv[1], timeout=60).read()\n"
    "print(len(body), time.monotonic() - start)\n"
)
MEGABYTE = 1_000_000


def _download(site) -> float:
    """Seconds laptop takes to fetch 1 MB from the VLAN host, through the jumpbox, once
    it connects there (after a change of backend the first SYNs may be lost)."""
    deadline = time.monotonic() + 30
    while not site.reaches("laptop", NAS1, TCP_PORTS[0]):
        assert time.monotonic() < deadline, "laptop reaches the VLAN host"
        time.sleep(0.5)
    out = site.peers["laptop"].out(
        ["python3", "-c", DOWNLOAD, f"http://{NAS1}:{TCP_PORTS[0]}/megabyte.bin"]
    )
    size, seconds = out.split()
    assert int(size) == MEGABYTE
    return float(seconds)


def _laptop_as_client(site, firewall, limits=None) -> dict:
    """The pillar with laptop a client (its own key and address) instead of a peer."""
    client = {"public_key": site.keys["laptop"][1], "address": [PEER_ADDR["laptop"][1]]}
    if limits:
        client["limits"] = limits
    peers = dict(site.pillar()["wireguard"]["interfaces"]["jump0"]["peers"])
    peers.pop("laptop")
    return site.pillar(firewall, peers=peers, clients={"laptop": client}, endpoint="198.18.0.1")


@pytest.mark.parametrize("firewall", ["nftables", "iptables"])
def test_a_client_rate_holds_its_download_through_the_jumpbox(site, firewall):
    """Issue 23: laptop, a client limited to 2 mbit/s, downloads 1 MB from the VLAN host
    (forwarded to it through jump0) at that rate, whatever the firewall backend (tc
    shapes it on jump0, not the firewall); unlimited, the same download over the same
    path, measured in the same run, is several times faster. Setting the rate on the
    running interface costs another peer's steady ping nothing."""
    site.nas[NAS1].write("/megabyte.bin", "x" * MEGABYTE)
    try:
        site.apply(_laptop_as_client(site, firewall))
        free = _download(site)
        # the rate is set live: admin's 20 pings a second through jump0 lose nothing
        with steady_ping(site.peers["admin"], NAS2) as pings:
            site.apply(_laptop_as_client(site, firewall, {"rate": "2mbit"}))
        pings.check(f"admin while laptop's rate is set ({firewall})")
        limited = _download(site)
        shown = site.jumpbox.out(["tc", "class", "show", "dev", "jump0"])
        assert "rate 2Mbit ceil 2Mbit" in shown, shown
        firewall_rules = site.ruleset() if firewall == "nftables" else site.iptables_ours()
        assert "laptop rate" not in firewall_rules, firewall_rules
        # 15,000 bytes pass at once (the burst), the rest at 250,000 bytes/s
        assert limited >= 3.5, (limited, free)
        assert limited >= 5 * free, (limited, free)
        again = summarize(site.apply(_laptop_as_client(site, firewall, {"rate": "2mbit"})))[
            "jumpbox"
        ]
        assert again["changed"] == 0, again
    finally:
        site.apply(site.pillar())


def test_the_last_interface_that_needs_it_takes_the_table_away(site):
    try:
        site.apply(site.pillar(masquerade=[], open_port=False, access=None))
        assert "inet wireguard" not in tables(site.ruleset())
    finally:
        site.apply(site.pillar())


def test_the_firewall_clean_removes_the_nft_table(site):
    """wireguard.firewall.clean is the part of wireguard.clean that removes the firewall
    (wireguard.clean itself removes the packages, which this offline lab cannot put
    back, so it runs once, last)."""
    site.ensure(site.pillar())
    try:
        site.apply(site.pillar(), sls="wireguard.firewall.clean")
        assert "inet wireguard" not in tables(site.ruleset())
        assert site.iptables_ours() == ""
    finally:
        site.apply(site.pillar())


def test_clean_leaves_no_rule(site):
    """Last: wireguard.clean, from the iptables backend."""
    site.apply(site.pillar("iptables"))
    assert site.iptables_ours() != ""
    site.apply(site.pillar("iptables"), sls="wireguard.clean")
    assert "inet wireguard" not in tables(site.ruleset())
    assert site.iptables_ours() == ""
