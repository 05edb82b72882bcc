"""Every topology of examples/, applied through the master with
`salt <its minions> state.apply wireguard`, checked the way a user would check it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from nacl.bindings import crypto_scalarmult_base

from tests.e2e.auditing import audit, local_serious, report, serious
from tests.e2e.deployments import first_apply, reset
from tests.lab.saltmaster import describe_failures, summarize
from tests.lab.topologies import TOPOLOGIES, diagnostics, interfaces_of, load_examples
from tests.lab.util import wait_for

DNS_RESPONDER = Path(__file__).with_name("dnsresponder.py")


def _public(private_b64: str) -> str:
    return base64.b64encode(crypto_scalarmult_base(base64.b64decode(private_b64))).decode()


# ---------------------------------------------------------------- the example files
def test_examples_and_lab_wiring_name_the_same_topologies():
    """Static topologies are wired here; mine-driven networks (no keys in pillar,
    converged by wireguard.orchestrate) are tested in test_networks.py."""
    static = {
        name
        for name, minions in load_examples().items()
        if not any("networks" in pillar["wireguard"] for pillar in minions.values())
    }
    assert sorted(static) == sorted(TOPOLOGIES)
    assert sorted(set(load_examples()) - static) == ["mine-hub", "mine-mesh"]


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_example_keys_match(topology):
    """Each peer named after a minion of the topology carries the public key of that
    minion's private key, and preshared keys are the same on both ends."""
    minions = load_examples()[topology]
    publics = {}
    for mid, pillar in minions.items():
        for ifname, iface in pillar["wireguard"]["interfaces"].items():
            publics[mid] = (ifname, _public(iface["private_key"]))
    for mid, pillar in minions.items():
        for ifname, iface in pillar["wireguard"]["interfaces"].items():
            for pname, peer in iface.get("peers", {}).items():
                assert pname in publics, f"{mid}/{ifname}: peer {pname} is no minion here"
                assert peer["public_key"] == publics[pname][1], f"{mid}/{ifname} -> {pname}"
                back = minions[pname]["wireguard"]["interfaces"][publics[pname][0]]["peers"]
                assert back[mid].get("preshared_key") == peer.get("preshared_key"), (
                    f"{mid} <-> {pname}: preshared keys differ"
                )


# ---------------------------------------------------------------- in the lab
# built already for other modules (conftest's E2E_ORDER runs them just before): first
SHARED = ("laptop-server", "mesh")


@pytest.fixture(scope="module", params=[*SHARED, *sorted(set(TOPOLOGIES) - set(SHARED))], ids=str)
def deployed(request, shared_deployments):
    """The topology built and applied once (`dep.first` is that first apply's return);
    a shared one as the modules before left it, the example's pillar applied again
    where they changed it. Taken down afterwards: nothing later needs it."""
    dep = shared_deployments.get(request.param)
    if not isinstance(dep.first, Exception) and not describe_failures(dep.first):
        reset(dep)
    try:
        yield dep
    finally:
        shared_deployments.release(request.param)


def test_first_apply_brings_every_interface_up(deployed):
    dep = deployed
    ret = first_apply(dep)
    assert sorted(ret) == sorted(dep.pillar), "every minion answers"
    failures = describe_failures(ret)
    assert not failures, f"{dep.name}: failed states\n{failures}"
    for mid, s in summarize(ret).items():
        assert s["changed"] > 0, f"{mid}: a first apply changes something"
    problems = []
    for mid, pillar in dep.pillar.items():
        host = dep[mid]
        for ifname in interfaces_of(pillar):
            unit = f"wg-quick@{ifname}"
            if host.unit_state(unit) != ("active", "enabled"):
                problems.append(f"{mid}: {unit} is {host.unit_state(unit)}")
            want = set(pillar["wireguard"]["interfaces"][ifname].get("peers", {}))
            peers = host.out(["wg", "show", ifname, "peers"], check=False).split()
            if len(peers) != len(want):
                problems.append(
                    f"{mid}: wg show {ifname} peers lists {len(peers)}, pillar has {len(want)}"
                )
            mode = host.out(
                ["stat", "-c", "%a", f"/etc/wireguard/{ifname}.conf"], check=False
            ).strip()
            if mode != "600":
                problems.append(f"{mid}: /etc/wireguard/{ifname}.conf mode {mode}")
        dir_mode = host.out(["stat", "-c", "%a", "/etc/wireguard"], check=False).strip()
        if dir_mode != "700":
            problems.append(f"{mid}: /etc/wireguard mode {dir_mode}")
    assert not problems, "\n".join(problems) + "\n" + diagnostics(dep)


def test_allowed_traffic_passes_and_the_rest_does_not(deployed):
    dep = deployed
    first_apply(dep)
    problems = []
    for p in dep.topo.passes:
        problems += dep.check_pass(p)
    for p in dep.topo.fails:
        problems += dep.check_fail(p)
    assert not problems, "\n".join(problems) + "\n" + diagnostics(dep)


def test_cryptokey_routing_drops_foreign_source_addresses(deployed):
    dep = deployed
    first_apply(dep)
    assert dep.topo.spoofs, f"{dep.name} has no cryptokey routing check"
    problems = []
    for s in dep.topo.spoofs:
        problems += dep.check_spoof(s)
    assert not problems, "\n".join(problems) + "\n" + diagnostics(dep)


def test_what_this_topology_is_for(deployed):
    """The point of each topology, as its user would verify it."""
    dep = deployed
    first_apply(dep)
    CHECKS[dep.name](dep)


def test_healthy_topology_audits_clean(deployed):
    """`salt-run wireguard.audit` finds nothing wrong with a topology that works (issue 7);
    the traffic tests before this one made every tunnel handshake both ways."""
    dep, lab = deployed, deployed.lab
    first_apply(dep)
    for ping in dep.topo.passes:
        assert dep.ping(ping).received, f"{ping}\n{diagnostics(dep)}"
    data = audit(lab, dep.minions)
    clean = (
        data["ok"]
        and serious(data) == set()
        and local_serious(data) == {}
        and data["unreachable"] == []
        and data["unknown_peers"] == []
        and bool(data["links"])
        and {link["state"] for link in data["links"]} == {"up"}
    )
    # the text report is asked for only to explain a failure (test_audit.py checks it
    # on a healthy mesh): each salt-run of the audit asks every minion again
    assert clean, report(lab, dep.minions)
    assert sorted(data["minions"]) == sorted(dep.minions)


def test_second_apply_changes_nothing(deployed):
    dep = deployed
    first_apply(dep)
    ret = dep.apply(check=False)
    failures = describe_failures(ret)
    assert not failures, failures
    changed = {m: s["changed_ids"] for m, s in summarize(ret).items() if s["changed"]}
    assert not changed, f"{dep.name}: a second apply changed {changed}"


# ---------------------------------------------------------------- per-topology checks
def _check_laptop_server(dep):
    # the laptop resolved the server's host name from /etc/hosts at interface up
    endpoint = dep["laptop"].out(["wg", "show", "wg0", "endpoints"]).split()
    assert endpoint[1] == "198.18.0.1:51820", endpoint
    # the preshared key is in use on both ends, and never printed
    for mid in ("laptop", "server"):
        assert "preshared key: (hidden)" in dep[mid].out(["wg", "show", "wg0"])


def _check_internet_gateway(dep):
    laptop, gw = dep["laptop"], dep["gateway"]
    # full tunnel through wg-quick's own table; the encrypted packets leave via eth0
    assert "default dev wg0" in laptop.out(["ip", "route", "show", "table", "51820"])
    assert "default dev wg0" in laptop.out(["ip", "-6", "route", "show", "table", "51820"])
    assert laptop.out(["ip", "route", "get", "198.18.0.1", "mark", "51820"]).find("dev eth0") > 0
    # forwarding on (v4 and, with an IPv6 address, v6) and persisted
    assert gw.out(["sysctl", "-n", "net.ipv4.ip_forward"]).strip() == "1"
    assert gw.out(["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).strip() == "1"
    assert "ip_forward" in gw.out("cat /etc/sysctl.d/*.conf")
    # masquerade (v4 and v6) in the formula's nftables table, nothing in iptables
    table = gw.out(["nft", "list", "table", "inet", "wireguard"])
    assert 'oifname "eth0" ip saddr 10.8.0.0/24 masquerade' in table, table
    assert 'oifname "eth0" ip6 saddr fd08::/64 masquerade' in table, table
    assert "MASQUERADE" not in gw.out(["iptables", "-t", "nat", "-S", "POSTROUTING"])


def _check_jumpbox_vlan(dep):
    jb, admin = dep["jumpbox"], dep["admin"]
    assert jb.unit_state("wg-quick@jump0") == ("active", "enabled")
    assert "51821" in jb.out(["wg", "show", "jump0", "listen-port"])
    # split tunnel: only the VLAN and the jumpbox go into the tunnel
    routes = admin.out(["ip", "route", "show", "dev", "jump0"])
    assert "172.16.50.0/24" in routes and "default" not in routes
    assert 'oifname "vlan50"' in jb.out(["nft", "list", "table", "inet", "wireguard"])


def _check_mesh(dep):
    for i in (1, 2, 3):
        handshakes = dep[f"mesh{i}"].out(["wg", "show", "wg0", "latest-handshakes"])
        stamps = [int(line.split()[1]) for line in handshakes.splitlines()]
        assert len(stamps) == 2 and all(stamps), f"mesh{i}: {handshakes}"


def _check_road_warriors(dep):
    server = dep["server"]
    endpoints = server.out(["wg", "show", "wg0", "endpoints"])
    # both warriors show up from their NAT routers' public addresses
    assert "198.18.0.101:" in endpoints and "198.18.0.102:" in endpoints, endpoints
    for w in ("warrior1", "warrior2"):
        assert dep[w].out(["wg", "show", "wg0", "persistent-keepalive"]).split()[1] == "25"
    assert "(none)" not in endpoints
    # the server itself was given no endpoint: its config has none
    assert "Endpoint" not in server.read("/etc/wireguard/wg0.conf")


def _check_two_sites(dep):
    for site, other in (("site-a", "192.168.2.0/24"), ("site-b", "192.168.1.0/24")):
        h = dep[site]
        conf = h.read("/etc/wireguard/wg0.conf")
        assert "Table = off" in conf
        # table off: no fwmark rules or extra table, just the listed routes on wg0
        assert "51820" not in h.out(["ip", "rule"])
        routes = h.out(["ip", "route", "show", "dev", "wg0"])
        assert other in routes and "10.30.0.0/24" in routes, routes
        assert h.out(["sysctl", "-n", "net.ipv4.ip_forward"]).strip() == "1"
    assert dep["hub"].out(["sysctl", "-n", "net.ipv4.ip_forward"]).strip() == "1"


def _check_dns_two_gateways(dep):
    client = dep["client"]
    resolv = client.read("/etc/resolv.conf")
    for line in ("nameserver 10.40.0.1", "nameserver 10.40.0.2", "corp.example"):
        assert line in resolv, f"/etc/resolv.conf lacks {line!r}:\n{resolv}"
    # a real lookup through the tunnel: a tiny DNS server on gateway 1
    gw1 = dep["gw1"]
    gw1.write("/usr/local/bin/lab-dns", DNS_RESPONDER.read_text(), mode=0o755)
    dns = gw1.systemd_run(
        [
            "/usr/bin/python3",
            "/usr/local/bin/lab-dns",
            "10.40.0.1",
            "intranet.corp.example=172.16.1.10",
        ],
        "lab-dns",
    )
    try:
        wait_for(lambda: "10.40.0.1:53" in gw1.out(["ss", "-uln"]), 10, "the DNS responder on gw1")
        # a short name: the search domain from the pillar completes it
        got = client.out(["getent", "ahostsv4", "intranet"], check=False)
        assert "172.16.1.10" in got, f"lookup of intranet via 10.40.0.1 gave {got!r}"
    finally:
        gw1.run(["systemctl", "stop", dns], check=False)
    # down takes the DNS settings back
    client.systemctl("stop", "wg-quick@corp0")
    try:
        assert "10.40.0.1" not in client.read("/etc/resolv.conf")
    finally:
        client.systemctl("start", "wg-quick@corp0")


CHECKS = {
    "laptop-server": _check_laptop_server,
    "internet-gateway": _check_internet_gateway,
    "jumpbox-vlan": _check_jumpbox_vlan,
    "mesh": _check_mesh,
    "road-warriors": _check_road_warriors,
    "two-sites-behind-nat": _check_two_sites,
    "dns-two-gateways": _check_dns_two_gateways,
}
