"""What happens to a running tunnel over time: reboots, live peer changes, interface
changes, disabling and removing. Uses the `mesh` topology of examples/; every test
puts the example's pillar back when it ends."""

from __future__ import annotations

import copy

from tests.e2e.deployments import MESH_IP
from tests.e2e.traffic import steady_ping
from tests.lab.saltmaster import summarize
from tests.lab.topologies import diagnostics


def wg0(pillar: dict, minion: str) -> dict:
    return pillar[minion]["wireguard"]["interfaces"]["wg0"]


def active_since(host, unit: str) -> str:
    return host.out(["systemctl", "show", "-P", "ActiveEnterTimestampMonotonic", unit]).strip()


def peer_keys(host, ifname: str = "wg0") -> set[str]:
    return set(host.out(["wg", "show", ifname, "peers"], check=False).split())


def test_reboot_brings_tunnel_back_with_all_peers(restore):
    dep = restore
    pillar = copy.deepcopy(dep.base)
    wg0(pillar, "mesh2")["forwarding"] = True
    dep.apply(pillar, ["mesh2"])
    m2 = dep["mesh2"]
    peers_before = peer_keys(m2)
    assert len(peers_before) == 2
    # a reboot keeps the network namespace: zero the live value so that only what the
    # formula persisted can turn forwarding back on
    m2.run(["sysctl", "-w", "net.ipv4.ip_forward=0"])
    took = m2.reboot()
    assert m2.unit_state("wg-quick@wg0") == ("active", "enabled")
    assert peer_keys(m2) == peers_before
    for dst in ("mesh1", "mesh3"):
        res = m2.ping_until(MESH_IP[dst], within=30)
        assert res.received, f"mesh2 -> {dst} after a {took:.1f}s reboot\n" + diagnostics(
            dep, ["mesh2", dst]
        )
    assert m2.out(["sysctl", "-n", "net.ipv4.ip_forward"]).strip() == "1", (
        "forwarding was not persisted"
    )
    # the minion is back too
    dep.lab.master.wait_minions(["mesh2"], timeout=60)


def test_peer_change_during_ping_loses_nothing_and_keeps_ifindex(restore):
    dep = restore
    m1 = dep["mesh1"]
    ifindex = m1.ifindex("wg0")
    since = active_since(m1, "wg-quick@wg0")
    pillar = copy.deepcopy(dep.base)
    peer = wg0(pillar, "mesh1")["peers"]["mesh3"]
    peer["allowed_ips"] = ["10.10.0.3/32", "10.10.3.0/24"]
    peer["persistent_keepalive"] = 15
    # 20 packets a second to the unchanged peer mesh2 while mesh3 changes
    with steady_ping(m1, MESH_IP["mesh2"]) as pings:
        s = summarize(dep.apply(pillar, ["mesh1"]))
    assert s["mesh1"]["changed"] > 0, "the peer change was applied"
    pings.check("mesh1 -> mesh2 while mesh3 changes")
    assert m1.ifindex("wg0") == ifindex, "the interface was recreated"
    assert active_since(m1, "wg-quick@wg0") == since, "wg-quick@wg0 was restarted"
    allowed = m1.out(["wg", "show", "wg0", "allowed-ips"])
    assert "10.10.3.0/24" in allowed, allowed
    assert "15" in m1.out(["wg", "show", "wg0", "persistent-keepalive"]).split()
    # what runs is what the file says (a restart or reboot keeps it)
    conf = m1.read("/etc/wireguard/wg0.conf")
    assert "10.10.3.0/24" in conf and "PersistentKeepalive = 15" in conf


def test_peer_absent_removes_only_that_peer(restore):
    dep = restore
    m1 = dep["mesh1"]
    pillar = copy.deepcopy(dep.base)
    gone = wg0(pillar, "mesh1")["peers"]["mesh3"]
    gone["absent"] = True
    dep.apply(pillar, ["mesh1"])
    assert gone["public_key"] not in peer_keys(m1)
    assert gone["public_key"] not in m1.read("/etc/wireguard/wg0.conf")
    assert m1.ping(MESH_IP["mesh2"]).ok
    assert not m1.ping(MESH_IP["mesh3"], count=2).received


def test_interface_change_is_applied_live_and_a_hook_change_by_a_restart(restore):
    dep = restore
    m1 = dep["mesh1"]
    ifindex = m1.ifindex("wg0")
    pillar = copy.deepcopy(dep.base)
    wg0(pillar, "mesh1").update(mtu=1380, address=["10.10.0.1/24", "10.10.1.1/24"])
    dep.apply(pillar, ["mesh1"])
    assert m1.ifindex("wg0") == ifindex, "address and MTU change in place, no restart"
    assert m1.unit_state("wg-quick@wg0") == ("active", "enabled")
    assert "mtu 1380" in m1.out(["ip", "link", "show", "wg0"])
    assert "10.10.1.1/24" in m1.out(["ip", "-br", "addr", "show", "wg0"])
    conf = m1.read("/etc/wireguard/wg0.conf")
    assert "MTU = 1380" in conf and "10.10.1.1/24" in conf
    assert len(peer_keys(m1)) == 2
    wg0(pillar, "mesh1")["post_up"] = ["touch /run/wg0-hook-ran"]
    dep.apply(pillar, ["mesh1"])
    assert m1.ifindex("wg0") != ifindex, "a hook change restarts wg-quick@wg0"
    assert m1.run(["test", "-e", "/run/wg0-hook-ran"], check=False).returncode == 0
    assert "mtu 1380" in m1.out(["ip", "link", "show", "wg0"])
    assert m1.ping_until(MESH_IP["mesh2"]).received
    # and a second apply leaves it alone
    again = summarize(dep.apply(pillar, ["mesh1"]))
    assert again["mesh1"]["changed"] == 0, again


def test_enabled_false_stops_and_disables_but_keeps_config(restore):
    dep = restore
    m3 = dep["mesh3"]
    pillar = copy.deepcopy(dep.base)
    wg0(pillar, "mesh3")["enabled"] = False
    dep.apply(pillar, ["mesh3"])
    assert m3.unit_state("wg-quick@wg0") == ("inactive", "disabled")
    assert m3.file_exists("/etc/wireguard/wg0.conf")
    assert "wg0" not in m3.links()
    assert not dep["mesh1"].ping(MESH_IP["mesh3"], count=2).received
    again = summarize(dep.apply(pillar, ["mesh3"]))
    assert again["mesh3"]["changed"] == 0, again
    # and back
    dep.apply(copy.deepcopy(dep.base), ["mesh3"])
    assert m3.unit_state("wg-quick@wg0") == ("active", "enabled")
    assert m3.ping_until(MESH_IP["mesh1"]).received


def test_absent_removes_interface_config_and_key(restore):
    dep = restore
    m3 = dep["mesh3"]
    assert m3.file_exists("/etc/wireguard/wg0.key") or "PrivateKey" in m3.read(
        "/etc/wireguard/wg0.conf"
    )
    pillar = copy.deepcopy(dep.base)
    wg0(pillar, "mesh3")["absent"] = True
    dep.apply(pillar, ["mesh3"])
    active, enabled = m3.unit_state("wg-quick@wg0")
    assert active in ("inactive", "unknown") and enabled in ("disabled", "not-found", "")
    assert not m3.file_exists("/etc/wireguard/wg0.conf")
    assert not m3.file_exists("/etc/wireguard/wg0.key")
    assert "wg0" not in m3.links()
    assert not dep["mesh1"].ping(MESH_IP["mesh3"], count=2).received
    again = summarize(dep.apply(pillar, ["mesh3"]))
    assert again["mesh3"]["changed"] == 0, again


def resolves(host, name: str) -> str | None:
    """The address `getent hosts NAME` answers with on `host` (glibc's resolver, as any
    program would use it), or None."""
    proc = host.run(["getent", "hosts", name], check=False)
    return proc.stdout.split()[0] if proc.returncode == 0 else None


def test_peers_by_name_answer_on_every_node_and_a_rename_is_live(restore):
    """Issue 22 part 3: `hosts: {domain}` names every node of the mesh on every node, a
    renamed peer is renamed by the next apply, and the option's removal gives back the
    file as it was, byte for byte."""
    dep = restore
    nodes = sorted(MESH_IP)
    before = {m: dep[m].read("/etc/hosts") for m in nodes}
    pillar = copy.deepcopy(dep.base)
    for m in nodes:
        wg0(pillar, m)["hosts"] = {"domain": "wg.example"}
    dep.apply(pillar, nodes)
    for m in nodes:
        for other in nodes:
            assert resolves(dep[m], f"{other}.wg.example") == MESH_IP[other], (m, other)
        assert dep[m].read("/etc/hosts").startswith(before[m]), m
    assert dep["mesh1"].ping_until("mesh2.wg.example").received  # a name works as an address

    # mesh3 is "db" to the others from now on
    for m in ("mesh1", "mesh2"):
        peers = wg0(pillar, m)["peers"]
        peers["db"] = peers.pop("mesh3")
    ret = summarize(dep.apply(pillar, ["mesh1", "mesh2"]))
    for m in ("mesh1", "mesh2"):
        assert resolves(dep[m], "db.wg.example") == MESH_IP["mesh3"], m
        assert resolves(dep[m], "mesh3.wg.example") is None, m
    assert dep["mesh1"].ping_until("db.wg.example").received
    assert ret["mesh1"]["failed"] == ret["mesh2"]["failed"] == [], ret

    # the option removed: the file is as it was
    dep.apply(copy.deepcopy(dep.base), nodes)
    for m in nodes:
        assert dep[m].read("/etc/hosts") == before[m], m
        assert resolves(dep[m], "mesh1.wg.example") is None, m
