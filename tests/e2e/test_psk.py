"""Per-pair preshared keys and private key rotation of a mine-driven network through a
real master (issue 15): preshared keys made by the master, given by the formula's
ext_pillar to the two ends of each pair only, rotated by `salt-run
wireguard.rotate_psks` without a lost packet; private keys rotated by `salt-run
wireguard.rotate_keys` with at most a second lost; key age in the audit.

Keys are compared by SHA-256 digest inside the containers; a key the test must hold
(to look for it in the job cache and the logs) is read from a container's file system,
handed to grep in a file, and never printed."""

from __future__ import annotations

import copy
import hashlib
import json
import time

import pytest

from tests.e2e.deployments import containers_on_internet, orchestrate
from tests.e2e.traffic import steady_ping
from tests.lab.topologies import load_examples

INET = "198.18.7"
NODES = {"psk1": 1, "psk2": 2, "psk3": 3}
PAIRS = [("psk1", "psk2"), ("psk1", "psk3"), ("psk2", "psk3")]
# prints "<peer public key> <sha256 of its preshared key>" per peer; the key stays inside
DIGESTS = (
    "wg show wg1 preshared-keys | while read -r peer psk; do "
    "printf '%s %s\\n' \"$peer\" \"$(printf '%s' \"$psk\" | sha256sum | cut -d' ' -f1)\"; "
    "done"
)
NONE_DIGEST = hashlib.sha256(b"(none)").hexdigest()


def psk_pillar():
    """examples/mine-mesh with these three nodes and `preshared_keys: true`."""
    pillar = copy.deepcopy(load_examples()["mine-mesh"]["node1"])
    corp = pillar["wireguard"]["networks"]["corp"]
    corp["nodes"] = {
        n: {"address": f"10.2.0.{i}/24", "endpoint": f"{INET}.{i}"} for n, i in NODES.items()
    }
    corp["preshared_keys"] = True
    return pillar


@pytest.fixture(scope="module")
def psk_mesh(lab):
    with lab.section():
        _, hosts = containers_on_internet(lab, "psk-inet", NODES, INET)
        lab.master.write_pillar({m: psk_pillar() for m in NODES})
        ret = orchestrate(lab.master)
        yield lab, hosts, json.dumps(ret)


def public_keys(hosts):
    return {
        n: h.out(["sh", "-c", "wg pubkey < /etc/wireguard/wg1.key"]).strip()
        for n, h in hosts.items()
    }


def pair_digests(hosts):
    """{(a, b): (digest a holds for b, digest b holds for a)} for each pair."""
    pub = public_keys(hosts)
    held = {}
    for name, host in hosts.items():
        for line in host.out(["sh", "-c", DIGESTS]).splitlines():
            peer, digest = line.split()
            held[(name, next(n for n, k in pub.items() if k == peer))] = digest
    return {(a, b): (held[(a, b)], held[(b, a)]) for a, b in PAIRS}


def assert_pairs_hold_equal_distinct_keys(digests):
    for pair, (one, other) in digests.items():
        assert one == other, f"{pair}: the two ends hold different preshared keys"
        assert one != NONE_DIGEST, f"{pair}: no preshared key"
    assert len({one for one, _ in digests.values()}) == len(PAIRS), (
        "two pairs share a preshared key"
    )


def live_psks(hosts):
    """Every preshared key the nodes hold now (kept in memory, never printed)."""
    keys = set()
    for host in hosts.values():
        for line in host.out(["wg", "show", "wg1", "preshared-keys"]).splitlines():
            keys.add(line.split()[1])
    return keys


def leaked_into(host, keys, paths):
    """Whether any of `keys` is in a file under `paths` of `host` (grep inside it)."""
    host.write("/root/.psk-patterns", "".join(f"{k}\n" for k in keys), mode=0o600)
    try:
        proc = host.run(
            ["sh", "-c", "grep -rlFf /root/.psk-patterns " + " ".join(paths)], check=False
        )
    finally:
        host.run(["rm", "-f", "/root/.psk-patterns"], check=False)
    assert proc.returncode in (0, 1), f"grep failed on {host.name}: {proc.stderr[-500:]}"
    return proc.stdout.split()  # file names only


def assert_no_key_anywhere(lab, hosts, keys, *outputs):
    assert len(keys) == len(PAIRS)
    for text in outputs:
        assert not any(k in text for k in keys), "a preshared key is in a command's output"
    files = leaked_into(lab.master, keys, ["/var/cache/salt/master/jobs", "/var/log/salt"])
    assert files == [], f"a preshared key is in the master's files: {files}"
    for name, host in hosts.items():
        files = leaked_into(host, keys, ["/var/log/salt", "/var/cache/salt/minion"])
        assert files == [], f"a preshared key is in {name}'s Salt logs or cache: {files}"


def test_each_pair_shares_a_key_of_its_own(psk_mesh):
    lab, hosts, _ = psk_mesh
    assert_pairs_hold_equal_distinct_keys(pair_digests(hosts))
    for src in NODES:
        for dst, j in NODES.items():
            if src != dst:
                assert hosts[src].ping_until(f"10.2.0.{j}", within=20).received, (src, dst)
    again = lab.master.state_apply(sorted(NODES))
    changed = {
        m: [sid for sid, r in states.items() if r.get("changes")] for m, states in again.items()
    }
    assert changed == {m: [] for m in NODES}, changed


def test_no_key_in_the_job_cache_logs_or_output(psk_mesh):
    lab, hosts, orchestrated = psk_mesh
    assert_no_key_anywhere(lab, hosts, live_psks(hosts), orchestrated)


def test_rotate_psks_renews_every_pair_without_a_lost_packet(psk_mesh):
    lab, hosts, _ = psk_mesh
    before = pair_digests(hosts)
    old_keys = live_psks(hosts)
    # 20 pps throughout (a request still in flight when ping stops is no loss)
    with steady_ping(hosts["psk1"], "10.2.0.2") as pings:
        ret = lab.master.salt_run("wireguard.rotate_psks", network="corp", timeout=600)
    text = json.dumps(ret)
    new_keys = live_psks(hosts)
    assert not any(k in text for k in old_keys | new_keys), "a key in the runner's return"
    assert isinstance(ret, dict) and ret.get("ok") is True, text[:3000]
    assert ret["pairs"] == [list(p) for p in PAIRS] and ret["minions"] == sorted(NODES)
    pings.check("every pair's PSK rotated")
    after = pair_digests(hosts)
    assert_pairs_hold_equal_distinct_keys(after)
    assert all(after[p][0] != before[p][0] for p in PAIRS), "a pair kept its old key"
    assert_no_key_anywhere(lab, hosts, new_keys, text)
    for dst, j in NODES.items():
        if dst != "psk3":
            assert hosts["psk3"].ping_until(f"10.2.0.{j}", within=20).received, dst


EXT_PILLAR_DIGESTS = r"""
import hashlib, json, yaml
import salt.config, salt.loader
opts = salt.config.master_config("/etc/salt/master")
pillar = yaml.safe_load(open("/srv/pillar/minions/psk3.sls"))
utils = salt.loader.utils(opts)
pillars = salt.loader.pillars(opts, salt.loader.minion_mods(opts, utils=utils))
ret = pillars["wireguard"]("psk3", pillar)
print(json.dumps({net: {p: hashlib.sha256(k.encode()).hexdigest() for p, k in keys.items()}
                  for net, keys in ret["wireguard"]["network_psks"].items()}))
"""


def test_the_third_node_holds_no_key_of_the_other_pair(psk_mesh):
    lab, hosts, _ = psk_mesh
    digests = pair_digests(hosts)
    other = digests[("psk1", "psk2")][0]
    own = {digests[("psk1", "psk3")][0], digests[("psk2", "psk3")][0]}
    # the ext_pillar function itself, called on the master for psk3
    lab.master.write("/root/ext_pillar_digests.py", EXT_PILLAR_DIGESTS)
    answer = json.loads(lab.master.out(["/opt/salt/bin/python", "/root/ext_pillar_digests.py"]))
    assert answer == {
        "corp": {"psk1": digests[("psk1", "psk3")][0], "psk2": digests[("psk2", "psk3")][0]}
    }
    # psk3's whole pillar through the master (unmasked: Salt 3008 masks pillar.items,
    # which would hide every key): its own pairs' keys, not the other pair's. This puts
    # psk3's keys into the job cache, so it runs after the secrecy checks.
    pillar = lab.master.salt("psk3", "pillar.items", unmask=True)["psk3"]
    values = set()

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            values.add(hashlib.sha256(node.encode()).hexdigest())

    walk(pillar)
    assert own <= values, "psk3's pillar lacks its own pairs' keys"
    assert other not in values, "psk3's pillar holds the key of the pair psk1-psk2"


STORE = "/var/cache/salt/master/wireguard/psks.json"


def test_a_pillar_override_makes_no_key_and_costs_nothing(psk_mesh):
    """Issue 19: a minion's pillar request with a 3,000-node fake network (Salt merges
    a pillar_override before ext_pillars run) took the master about 3 minutes and
    stored 600 keys. Now the ext_pillar answers psk3's stored pairs, only."""
    lab, _, _ = psk_mesh
    before = lab.master.out(["sh", "-c", f"stat -c %i {STORE}; sha256sum < {STORE}"])
    fake = {
        "interface": "wg7",
        "preshared_keys": True,
        "nodes": {f"fake{i}": {"address": f"10.{i // 250}.{i % 250}.1/8"} for i in range(3000)},
    }
    fake["nodes"]["psk3"] = {"address": "10.250.0.1/8"}
    started = time.monotonic()
    got = lab.master.salt(
        "psk3",
        "pillar.items",
        unmask=True,
        timeout=120,
        pillar={"wireguard": {"networks": {"fake": fake}}},
    )["psk3"]
    took = time.monotonic() - started
    assert isinstance(got, dict), got
    assert set(got["wireguard"]["network_psks"]) == {"corp"}
    assert set(got["wireguard"]["network_psks"]["corp"]) == {"psk1", "psk2"}
    assert lab.master.out(["sh", "-c", f"stat -c %i {STORE}; sha256sum < {STORE}"]) == before
    assert took < 30, took


def test_the_audit_reports_key_age_and_warns_past_max_key_age(psk_mesh):
    lab, hosts, _ = psk_mesh
    ret = lab.master.salt_run("wireguard.audit", report="data", timeout=120)
    ages = {m: ret["minions"][m]["key_age_days"]["wg1"] for m in NODES}
    assert all(age is not None and 0 <= age < 1 for age in ages.values()), ages
    hosts["psk1"].run(["touch", "-d", "40 days ago", "/etc/wireguard/wg1.key"])
    aged = psk_pillar()
    aged["wireguard"]["networks"]["corp"]["max_key_age"] = 30
    lab.master.write_pillar({m: copy.deepcopy(aged) for m in NODES})
    ret = lab.master.salt_run("wireguard.audit", report="data", timeout=120)
    assert 39.9 <= ret["minions"]["psk1"]["key_age_days"]["wg1"] <= 40.1
    warned = {m: [p for p in items if p["check"] == "key_age"] for m, items in ret["local"].items()}
    assert [p["severity"] for p in warned.get("psk1", [])] == ["warning"], ret["local"]
    assert not warned.get("psk2") and not warned.get("psk3"), ret["local"]
    assert ret["ok"] is False


# ---------------------------------------------------------- private key rotation


def private_keys(hosts):
    return {n: h.read("/etc/wireguard/wg1.key").strip() for n, h in hosts.items()}


def test_rotate_keys_switches_a_node_with_at_most_a_second_lost(psk_mesh):
    lab, hosts, _ = psk_mesh
    old_public = public_keys(hosts)
    old_private = private_keys(hosts)
    with steady_ping(hosts["psk2"], "10.2.0.1") as pings:
        ret = lab.master.salt_run("wireguard.rotate_keys", tgt="psk1", timeout=600)
    text = json.dumps(ret)
    new_private = private_keys(hosts)
    assert not any(k in text for k in set(old_private.values()) | set(new_private.values())), (
        "a private key in the runner's return"
    )
    assert isinstance(ret, dict) and ret.get("ok") is True, text[:3000]
    assert ret["rotated"] == {"psk1": ["wg1"]} and ret["partners"] == ["psk2", "psk3"]
    pings.check("psk1's private key rotated", may_lose=20)
    print(f"rotate_keys psk1 under a 20 pps ping: {len(pings.lost)} of {pings.sent} lost")
    new_public = public_keys(hosts)
    assert new_public["psk1"] != old_public["psk1"]
    assert {n: new_public[n] for n in ("psk2", "psk3")} == {
        n: old_public[n] for n in ("psk2", "psk3")
    }
    for name in ("psk2", "psk3"):
        peers = hosts[name].out(["wg", "show", "wg1", "peers"]).split()
        assert new_public["psk1"] in peers and old_public["psk1"] not in peers, name
        assert not hosts[name].file_exists("/etc/wireguard/wg1.key.next")
        assert old_public["psk1"] not in hosts[name].read("/etc/wireguard/wg1.conf")
    mine = lab.master.salt("psk2", "mine.get", "psk1", "wireguard.public_keys")["psk2"]
    assert mine == {"psk1": {"wg1": new_public["psk1"]}}
    assert_pairs_hold_equal_distinct_keys(pair_digests(hosts))
    again = lab.master.state_apply(sorted(NODES))
    changed = {
        m: [sid for sid, r in states.items() if r.get("changes")] for m, states in again.items()
    }
    assert changed == {m: [] for m in NODES}, changed
    audit = lab.master.salt_run("wireguard.audit", report="data", timeout=120)
    assert audit["ok"] is True, json.dumps(audit)[:3000]
    assert audit["minions"]["psk1"]["key_age_days"]["wg1"] < 1
    keys = {new_private["psk1"], old_private["psk1"]}
    assert leaked_into(lab.master, keys, ["/var/cache/salt/master/jobs", "/var/log/salt"]) == []
    for name, host in hosts.items():
        assert leaked_into(host, keys, ["/var/log/salt", "/var/cache/salt/minion"]) == [], name


def test_rotate_keys_refuses_a_target_that_is_no_node(psk_mesh):
    lab, hosts, _ = psk_mesh
    before = public_keys(hosts)
    ret = lab.master.salt_run("wireguard.rotate_keys", tgt="psk1", interface="wg9")
    assert isinstance(ret, str) and "not a node of any network" in ret and "'psk1'" in ret, ret
    assert public_keys(hosts) == before


def test_a_silent_minion_keeps_its_old_key_and_a_second_run_finishes(psk_mesh):
    lab, hosts, _ = psk_mesh
    before = public_keys(hosts)
    # every process of the unit: salt-minion.service stops with KillMode=process, and
    # its process manager's children could go on answering jobs
    hosts["psk3"].systemctl("kill", "--signal=SIGKILL", "salt-minion")
    hosts["psk3"].systemctl("stop", "salt-minion", check=False)
    try:
        # timeout=10: each step waits that long for the silent minion, not salt-run's -t
        # (300 here; a timeout Salt took for none waited all of it: 5 minutes)
        started = time.monotonic()
        ret = lab.master.salt_run("wireguard.rotate_keys", "timeout=10", tgt="psk3", timeout=300)
        assert time.monotonic() - started < 150, "the runner waited salt-run's -t"
        assert isinstance(ret, dict) and ret["ok"] is False, ret
        assert "psk3" in ret["failed"], ret
        assert lab.master.last_exit == 1, "salt-run exited 0 on a failed rotation"
        assert public_keys(hosts) == before
        for name in ("psk1", "psk2"):
            assert hosts[name].ping_until("10.2.0.3", within=20).received, name
    finally:
        hosts["psk3"].systemctl("start", "salt-minion")
    lab.master.wait_minions(["psk3"], hosts=hosts)
    ret = lab.master.salt_run("wireguard.rotate_keys", tgt="psk3", timeout=600)
    assert isinstance(ret, dict) and ret.get("ok") is True, json.dumps(ret)[:3000]
    assert lab.master.last_exit == 0
    after = public_keys(hosts)
    assert after["psk3"] != before["psk3"]
    for name in ("psk1", "psk2"):
        assert hosts[name].ping_until("10.2.0.3", within=20).received, name
        assert before["psk3"] not in hosts[name].out(["wg", "show", "wg1", "peers"])
