"""Mine-driven networks through a real master (issue 6): no key in pillar, one
declaration for every minion, public keys through the Salt mine."""

from __future__ import annotations

import copy
import subprocess

import pytest

from tests.e2e.deployments import containers_on_internet, orchestrate
from tests.lab.host import parse_ping
from tests.lab.topologies import load_examples

INET = "198.18.3"  # examples/mine-mesh's endpoints


def mesh_pillar(nodes):
    """examples/mine-mesh, with exactly these nodes."""
    pillar = copy.deepcopy(load_examples()["mine-mesh"]["node1"])
    pillar["wireguard"]["networks"]["corp"]["nodes"] = {
        n: {"address": f"10.2.0.{i}/24", "endpoint": f"{INET}.{i}"} for n, i in nodes.items()
    }
    return pillar


def test_mesh_pillar_is_the_example():
    example = load_examples()["mine-mesh"]
    nodes = {"node1": 1, "node2": 2, "node3": 3, "node4": 4}
    assert all(example[n] == mesh_pillar(nodes) for n in nodes)


def give_all(master, minions, pillar):
    master.write_pillar({m: copy.deepcopy(pillar) for m in minions})


@pytest.fixture(scope="module")
def mine_mesh(lab):
    with lab.section():
        nodes = {"node1": 1, "node2": 2, "node3": 3, "node4": 4}
        inet, hosts = containers_on_internet(lab, "mesh-inet", nodes, INET)
        yield lab, inet, hosts, nodes


def pings_all(hosts, nodes):
    failures = []
    for src in nodes:
        for dst, i in nodes.items():
            if src != dst and not hosts[src].ping_until(f"10.2.0.{i}", within=20).received:
                failures.append(f"{src} -> {dst}")
    return failures


def test_fresh_mesh_converges_with_one_command_and_every_pair_pings(mine_mesh):
    lab, _, hosts, nodes = mine_mesh
    give_all(lab.master, nodes, mesh_pillar(nodes))
    orchestrate(lab.master)
    for name in nodes:
        assert hosts[name].unit_state("wg-quick@wg1") == ("active", "enabled"), name
        assert len(hosts[name].out(["wg", "show", "wg1", "peers"]).split()) == 3, name
        assert hosts[name].file_exists("/etc/wireguard/wg1.key")
    assert pings_all(hosts, nodes) == []


def test_a_converged_mesh_is_prepared_with_nothing_to_do_but_a_stale_copy_is_synced(mine_mesh):
    """Issue 24: after the orchestration, `salt-run wireguard.prepare` finds every node
    current (no sync, no key state, no mine update); a node whose synced copy of the
    formula's modules lost a file is synced again, alone."""
    lab, _, hosts, nodes = mine_mesh
    ret = lab.master.salt_run("wireguard.prepare", timeout=120)
    assert ret == {
        "synced": [],
        "keyed": [],
        "published": [],
        "current": sorted(nodes),
        "preshared_keys": {},
        "pillar_errors": [],
    }, ret
    synced = "/var/cache/salt/minion/extmods/utils/wgf_modules.py"
    hosts["node2"].run(["rm", synced])
    ret = lab.master.salt_run("wireguard.prepare", timeout=120)
    assert ret["synced"] == ["node2"], ret
    assert ret["current"] == sorted(set(nodes) - {"node2"}), ret
    assert hosts["node2"].file_exists(synced)


def test_a_network_with_hosts_names_every_node_on_every_node(mine_mesh):
    """Issue 22 part 3, one declaration for the whole network: `hosts` on the network
    names every node at its tunnel address in the /etc/hosts of every node."""
    lab, _, hosts, nodes = mine_mesh
    pillar = mesh_pillar(nodes)
    pillar["wireguard"]["networks"]["corp"]["hosts"] = {"domain": "corp.example"}
    give_all(lab.master, nodes, pillar)
    lab.master.state_apply(sorted(nodes))
    for name in nodes:
        for other, i in nodes.items():
            proc = hosts[name].run(["getent", "hosts", f"{other}.corp.example"], check=False)
            assert proc.stdout.split()[:1] == [f"10.2.0.{i}"], (name, other, proc.stdout)
    assert hosts["node1"].ping_until("node4.corp.example").received


def test_a_fifth_node_joins_without_a_lost_packet(mine_mesh):
    lab, inet, hosts, nodes = mine_mesh
    hosts["node5"] = lab.container("node5")
    inet.attach(hosts["node5"], "eth0", [f"{INET}.5/24"])
    lab.wait_ready()
    bigger = {**nodes, "node5": 5}
    give_all(lab.master, bigger, mesh_pillar(bigger))
    ping = subprocess.Popen(
        hosts["node1"]._argv(["ping", "-i", "0.05", "-c", "200", "-W", "1", "10.2.0.2"]),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # the newcomer makes its key and publishes it; a partial run on it alone
        # must leave every other node's peers in place
        lab.master.state_apply("node5")
        lab.master.salt("node5", "mine.update")
        lab.master.state_apply(sorted(bigger))
        out, _ = ping.communicate(timeout=60)
    finally:
        if ping.poll() is None:
            ping.kill()
    stats = parse_ping("node1", "10.2.0.2", out)
    assert stats.sent == 200 and stats.lost == 0, out
    for name in bigger:
        assert len(hosts[name].out(["wg", "show", "wg1", "peers"]).split()) == 4, name
    assert pings_all(hosts, bigger) == []


def test_missing_key_warns_naming_the_node(mine_mesh):
    lab, _, hosts, nodes = mine_mesh
    with_ghost = {**nodes, "ghost": 9}
    give_all(lab.master, nodes, mesh_pillar(with_ghost))
    ret = lab.master.state_apply("node1")["node1"]
    warned = [w for r in ret.values() for w in r.get("warnings", [])]
    assert any("'ghost'" in w for w in warned), warned
    assert len(hosts["node1"].out(["wg", "show", "wg1", "peers"]).split()) == 3


def test_poisoned_mine_value_is_refused_and_the_rest_keeps_working(mine_mesh):
    lab, _, hosts, nodes = mine_mesh
    give_all(lab.master, nodes, mesh_pillar(nodes))
    real = hosts["node4"].out(["sh", "-c", "wg pubkey < /etc/wireguard/wg1.key"]).strip()
    poison = {"wg1": f"{real}\n[Peer]\nPublicKey = {real}\nPostUp = touch /pwned"}
    lab.master.salt("node4", "grains.setval", "wgpoison", poison)
    lab.master.salt(
        "node4", "mine.send", "wireguard.public_keys", "wgpoison", mine_function="grains.get"
    )
    try:
        ret = lab.master.state_apply(["node1", "node2", "node3"])
        for name in ("node1", "node2", "node3"):
            warned = [w for r in ret[name].values() for w in r.get("warnings", [])]
            assert any("refused" in w and "'node4'" in w for w in warned), (name, warned)
            conf = hosts[name].out(["cat", "/etc/wireguard/wg1.conf"])
            assert "PostUp" not in conf and real not in conf
            assert not hosts[name].file_exists("/pwned")
        assert pings_all(hosts, {n: nodes[n] for n in ("node1", "node2", "node3")}) == []
    finally:
        lab.master.salt("node4", "mine.update")
        lab.master.salt("node4", "grains.delkey", "wgpoison")


@pytest.fixture(scope="module")
def hub(lab):
    """A public hub and two spokes, each behind its own NAT router."""
    with lab.section():
        inet = lab.bridge("hub-inet")
        hub = lab.container("hub")
        inet.attach(hub, "eth0", ["198.18.4.1/24"])
        spokes = {}
        for n, site in ((1, "spoke1"), (2, "spoke2")):
            router = lab.namespace(f"nat{n}")
            inet.attach(router, "wan", [f"198.18.4.{100 + n}/24"])
            lan = lab.bridge(f"lan{n}")
            lan.attach(router, "lan", [f"192.168.6{n}.1/24"])
            spokes[site] = lab.container(site)
            lan.attach(spokes[site], "eth0", [f"192.168.6{n}.2/24"])
            spokes[site].route(f"default via 192.168.6{n}.1")
            lab.nat(router, "wan")
        lab.wait_ready()
        lab.master.write_pillar(load_examples()["mine-hub"])
        orchestrate(lab.master)
        yield hub, spokes


def test_spokes_behind_nat_reach_each_other_through_the_hub(hub):
    center, spokes = hub
    assert spokes["spoke1"].ping_until("10.3.0.12", within=30).received
    assert spokes["spoke2"].ping_until("10.3.0.11", within=30).received
    hub_key = center.out(["sh", "-c", "wg pubkey < /etc/wireguard/wg2.key"]).strip()
    for spoke in spokes.values():
        assert spoke.out(["wg", "show", "wg2", "peers"]).split() == [hub_key]
    assert center.out(["sysctl", "-n", "net.ipv4.ip_forward"]).strip() == "1"
    assert len(center.out(["wg", "show", "wg2", "peers"]).split()) == 2
