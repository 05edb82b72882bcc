"""A config dir that is not /etc/wireguard, end to end (issue 19, items 1-3): a
mine-driven mesh converges with `wireguard.orchestrate`, the unit runs the file in
`lookup:config_dir` (a drop-in names it), a key rotation (`salt-run
wireguard.rotate_keys`) works there, check and the audit read it, and clean removes
only the formula's files, and the directory it made once nothing else is left."""

from __future__ import annotations

import copy
import json

import pytest

from tests.e2e.deployments import containers_on_internet, orchestrate
from tests.lab.topologies import load_examples

INET = "198.18.19"
NODES = {"lay1": 1, "lay2": 2}
CONFIG_DIR = "/etc/wireguard-rot"
UNIT = "wg-quick@wg1"
DROPIN = f"/etc/systemd/system/{UNIT}.service.d/50-wireguard-formula-config-dir.conf"


def layout_pillar():
    """examples/mine-mesh with these two nodes and `lookup:config_dir` of its own."""
    pillar = copy.deepcopy(load_examples()["mine-mesh"]["node1"])
    corp = pillar["wireguard"]["networks"]["corp"]
    corp["nodes"] = {
        n: {"address": f"10.2.0.{i}/24", "endpoint": f"{INET}.{i}"} for n, i in NODES.items()
    }
    pillar["wireguard"]["lookup"] = {"config_dir": CONFIG_DIR}
    return pillar


@pytest.fixture(scope="module")
def layout_mesh(lab):
    with lab.section():
        _, hosts = containers_on_internet(lab, "layout-inet", NODES, INET)
        lab.master.write_pillar({m: layout_pillar() for m in NODES})
        orchestrate(lab.master)
        yield lab, hosts


def pings_both_ways(hosts):
    return [
        f"{a} -> {b}"
        for a in NODES
        for b, i in NODES.items()
        if a != b and not hosts[a].ping_until(f"10.2.0.{i}", within=20).received
    ]


def public_key(host):
    return host.out(["sh", "-c", f"wg pubkey < {CONFIG_DIR}/wg1.key"]).strip()


def test_the_unit_runs_the_file_in_the_config_dir(layout_mesh):
    lab, hosts = layout_mesh
    for name, host in hosts.items():
        assert host.unit_state(UNIT) == ("active", "enabled"), name
        start = host.out(["systemctl", "show", "-p", "ExecStart", "--value", UNIT])
        assert f"wg-quick up {CONFIG_DIR}/wg1.conf" in start, start
        assert host.file_exists(DROPIN), name
        assert host.file_exists(f"{CONFIG_DIR}/wg1.conf"), name
        assert not host.file_exists("/etc/wireguard/wg1.conf"), name
        assert not host.file_exists("/etc/wireguard/wg1.key"), name
        assert host.out(["stat", "-c", "%a", CONFIG_DIR]).strip() == "700"
        assert host.out(["wg", "show", "wg1", "public-key"]).strip() == public_key(host)
    assert pings_both_ways(hosts) == []
    # reload (wg syncconf) and restart go through the drop-in's file too
    host = hosts["lay1"]
    host.systemctl("reload", UNIT)
    host.systemctl("restart", UNIT)
    assert host.unit_state(UNIT) == ("active", "enabled")
    assert pings_both_ways(hosts) == []
    # a second apply changes nothing: the drop-in is in place, no daemon-reload
    again = lab.master.state_apply(sorted(NODES))
    changed = {
        m: [sid for sid, r in states.items() if r.get("changes")] for m, states in again.items()
    }
    assert changed == {m: [] for m in NODES}, changed
    # back to the default dir: the drop-in (and its .d directory) would go
    ret = lab.master.salt(
        "lay1",
        "state.apply",
        "wireguard",
        test=True,
        timeout=120,
        pillar={"wireguard": {"lookup": {"config_dir": "/etc/wireguard"}}},
    )
    dropin = [r for sid, r in ret["lay1"].items() if "file-dropin-wg1" in sid]
    assert len(dropin) == 1 and dropin[0]["result"] is None, json.dumps(ret)[:3000]
    assert dropin[0]["name"] == DROPIN.rsplit("/", 1)[0]
    assert host.file_exists(DROPIN)


def test_rotate_keys_check_and_audit_use_the_config_dir(layout_mesh):
    lab, hosts = layout_mesh
    old = {n: public_key(h) for n, h in hosts.items()}
    ret = lab.master.salt_run("wireguard.rotate_keys", tgt="lay1", timeout=600)
    text = json.dumps(ret)
    assert "**********" not in text and "FileNotFoundError" not in text, text[:3000]
    assert isinstance(ret, dict) and ret.get("ok") is True, text[:3000]
    assert ret["rotated"] == {"lay1": ["wg1"]}
    new = {n: public_key(h) for n, h in hosts.items()}
    assert new["lay1"] != old["lay1"] and new["lay2"] == old["lay2"]
    assert hosts["lay1"].out(["wg", "show", "wg1", "public-key"]).strip() == new["lay1"]
    assert not hosts["lay1"].file_exists(f"{CONFIG_DIR}/wg1.key.next")
    assert hosts["lay2"].out(["wg", "show", "wg1", "peers"]).split() == [new["lay1"]]
    assert pings_both_ways(hosts) == []
    # the unit still starts from the file after the rotation, with the new key
    hosts["lay1"].systemctl("restart", UNIT)
    assert hosts["lay1"].out(["wg", "show", "wg1", "public-key"]).strip() == new["lay1"]
    assert pings_both_ways(hosts) == []
    checks = lab.master.salt(sorted(NODES), "wireguard.check", timeout=60)
    for name in NODES:
        assert isinstance(checks[name], dict) and checks[name].get("ok") is True, json.dumps(
            checks[name]
        )[:2000]
    audit = lab.master.salt_run("wireguard.audit", report="data", timeout=120)
    assert audit["ok"] is True, json.dumps(audit)[:3000]


def test_clean_removes_the_formulas_files_and_keeps_a_foreign_one(layout_mesh):
    lab, hosts = layout_mesh
    hosts["lay1"].write(f"{CONFIG_DIR}/notes.txt", "mine, not the formula's\n")
    ret = lab.master.salt(sorted(NODES), "state.apply", "wireguard.clean", timeout=300)
    for name in NODES:
        failed = [sid for sid, r in ret[name].items() if not r.get("result")]
        assert failed == [], (name, failed)
    for name, host in hosts.items():
        assert host.unit_state(UNIT)[0] != "active", name
        assert not host.file_exists(DROPIN.rsplit("/", 1)[0]), name  # its .d directory too
        assert "wg1" not in host.out(["ip", "-o", "link"]), name
    # lay1: the foreign file and the directory stay, only it is left
    assert hosts["lay1"].out(["ls", "-A", CONFIG_DIR]).split() == [
        ".wireguard-formula",
        "notes.txt",
    ]
    # lay2: the formula made the directory and nothing else is in it: gone
    assert not hosts["lay2"].file_exists(CONFIG_DIR)
