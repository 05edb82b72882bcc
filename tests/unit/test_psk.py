"""Per-pair preshared keys of networks: the pairs, the master's store, the minion's
side (the peers take their pair's key from ``wireguard:network_psks``)."""

import json
import os
import stat

import pytest
from salt.exceptions import SaltInvocationError

import wgf_checks_files
import wgf_conf
import wgf_keys
import wgf_psk
import wgf_schema
from tests.support import pipeline


def network(topology="mesh", nodes=("a", "b", "c"), hubs=(), **extra):
    net = {
        "interface": "wg1",
        "topology": topology,
        "preshared_keys": True,
        "nodes": {n: {"address": f"10.9.0.{i}/24"} for i, n in enumerate(nodes, 1)},
        **extra,
    }
    if hubs:
        net["hubs"] = list(hubs)
    return net


def test_mesh_pairs_are_every_pair():
    assert wgf_psk.network_pairs("corp", network()) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_hub_pairs_are_spoke_hub_and_hub_hub():
    net = network("hub", nodes=("h1", "h2", "s1", "s2"), hubs=("h1", "h2"))
    assert wgf_psk.network_pairs("corp", net) == [
        ("h1", "h2"),
        ("h1", "s1"),
        ("h1", "s2"),
        ("h2", "s1"),
        ("h2", "s2"),
    ]


def test_without_preshared_keys_no_pair():
    assert wgf_psk.network_pairs("corp", network(preshared_keys=False)) == []


def test_preshared_keys_must_be_a_boolean():
    with pytest.raises(SaltInvocationError, match=r"network 'corp', key 'preshared_keys'"):
        wgf_psk.network_pairs("corp", network(preshared_keys="yes"))


def test_new_keys_are_random_32_byte_keys():
    keys = {wgf_psk.new_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(len(wgf_keys.decode(k)) == 32 for k in keys)


def ensured(tmp_path, nets):
    """What the runner does for each network (salt-run wireguard.ensure_psks)."""
    for netname, net in nets.items():
        wgf_psk.ensure_network(str(tmp_path), netname, wgf_psk.network_pairs(netname, net))


def test_each_minion_gets_only_its_own_pairs_and_both_ends_the_same(tmp_path):
    nets = {"corp": network()}
    ensured(tmp_path, nets)
    got = {m: wgf_psk.keys_of(str(tmp_path), m) for m in "abc"}
    assert set(got["a"]["corp"]) == {"b", "c"}
    assert set(got["c"]["corp"]) == {"a", "b"}
    assert got["a"]["corp"]["b"] == got["b"]["corp"]["a"]
    assert got["a"]["corp"]["c"] == got["c"]["corp"]["a"]
    assert got["b"]["corp"]["c"] == got["c"]["corp"]["b"]
    distinct = {got["a"]["corp"]["b"], got["a"]["corp"]["c"], got["b"]["corp"]["c"]}
    assert len(distinct) == 3
    assert wgf_psk.keys_of(str(tmp_path), "stranger") == {}
    ensured(tmp_path, {"corp": network(preshared_keys=False)})  # turned off: forgotten
    assert wgf_psk.keys_of(str(tmp_path), "a") == {}


def test_asking_never_makes_a_key(tmp_path):
    """The ext_pillar's read: an empty store stays empty, no file appears."""
    assert wgf_psk.keys_of(str(tmp_path), "a") == {}
    assert not os.path.exists(os.path.dirname(wgf_psk.store_path(str(tmp_path))))
    ensured(tmp_path, {"corp": network(nodes=("a", "b"))})
    before = os.stat(wgf_psk.store_path(str(tmp_path)))
    assert set(wgf_psk.keys_of(str(tmp_path), "c")) == set()
    after = os.stat(wgf_psk.store_path(str(tmp_path)))
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_the_store_is_private_and_keeps_keys(tmp_path):
    nets = {"corp": network()}
    ensured(tmp_path, nets)
    first = wgf_psk.keys_of(str(tmp_path), "a")
    path = wgf_psk.store_path(str(tmp_path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert (
        wgf_psk.ensure_network(str(tmp_path), "corp", wgf_psk.network_pairs("corp", nets["corp"]))
        == 0
    )
    assert wgf_psk.keys_of(str(tmp_path), "a") == first
    assert [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".psks.")] == []


def test_ensure_makes_the_missing_keys_and_forgets_old_pairs(tmp_path):
    ensured(tmp_path, {"corp": network(nodes=("a", "b"))})
    ab = wgf_psk.keys_of(str(tmp_path), "a")["corp"]["b"]
    made = wgf_psk.ensure_network(str(tmp_path), "corp", [("a", "b"), ("a", "c")])
    assert made == 1
    assert wgf_psk.keys_of(str(tmp_path), "a")["corp"] == {
        "b": ab,
        "c": wgf_psk.keys_of(str(tmp_path), "c")["corp"]["a"],
    }
    wgf_psk.ensure_network(str(tmp_path), "corp", [("a", "c")])
    assert wgf_psk.keys_of(str(tmp_path), "b") == {}


def test_replacing_a_network_renews_every_pair_and_forgets_old_ones(tmp_path):
    nets = {"corp": network(), "other": network(nodes=("a", "x"))}
    ensured(tmp_path, nets)
    before = {m: wgf_psk.keys_of(str(tmp_path), m) for m in "abc"}
    other = wgf_psk.keys_of(str(tmp_path), "x")
    made = wgf_psk.replace_network(str(tmp_path), "corp", [("a", "b"), ("b", "c")])
    assert made == 2
    with open(wgf_psk.store_path(str(tmp_path)), encoding="ascii") as handle:
        stored = json.load(handle)
    assert set(stored["corp"]) == {"a", "b"} and "c" not in stored["corp"]["a"]
    after_b = wgf_psk.keys_of(str(tmp_path), "b")["corp"]
    assert after_b["a"] != before["b"]["corp"]["a"]
    assert after_b["c"] != before["b"]["corp"]["c"]
    assert wgf_psk.keys_of(str(tmp_path), "x") == other


def test_an_unreadable_store_is_refused_without_its_content(tmp_path):
    path = wgf_psk.store_path(str(tmp_path))
    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="ascii") as handle:
        handle.write("{not json")
    with pytest.raises(SaltInvocationError, match="unreadable") as exc:
        wgf_psk.keys_of(str(tmp_path), "a")
    assert "not json" not in str(exc.value)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ({"corp": []}, r"network 'corp' does not hold a mapping"),
        ({"corp": {"m": "x"}}, r"network 'corp', minion 'm' does not hold a mapping"),
        (
            {"corp": {"a": {"b": "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeop"}}},
            r"network 'corp', pair 'a' - 'b': the key is not valid base64",
        ),
        ({"corp": {"a": {"b": 5}}}, r"network 'corp', pair 'a' - 'b': the key must be"),
        ([1, 2], r"is not a mapping"),
    ],
)
def test_a_damaged_store_is_refused_naming_the_place_and_never_written(tmp_path, content, where):
    path = wgf_psk.store_path(str(tmp_path))
    os.makedirs(os.path.dirname(path))
    text = json.dumps(content)
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)
    for call in (
        lambda: wgf_psk.keys_of(str(tmp_path), "a"),
        lambda: wgf_psk.ensure_network(str(tmp_path), "corp", [("a", "b")]),
        lambda: wgf_psk.replace_network(str(tmp_path), "corp", [("a", "b")]),
    ):
        with pytest.raises(SaltInvocationError, match=where) as exc:
            call()
        assert "FpCyhws9cxwWoV4x" not in str(exc.value)
    with open(path, encoding="ascii") as handle:
        assert handle.read() == text


def test_a_lock_path_that_is_a_directory_is_refused(tmp_path):
    path = wgf_psk.store_path(str(tmp_path))
    os.makedirs(path + ".lock")
    for call in (
        lambda: wgf_psk.ensure_network(str(tmp_path), "corp", [("a", "b")]),
        lambda: wgf_psk.replace_network(str(tmp_path), "corp", [("a", "b")]),
    ):
        with pytest.raises(SaltInvocationError, match=r"psks.json.lock cannot be opened"):
            call()
    assert not os.path.exists(path)


def _validated(pillar, minion="a"):
    keys = {m: wgf_keys.pubkey(wgf_keys.genkey()) for m in "abc"}
    return pipeline.interfaces(pillar, minion, lambda ms: {m: {"wg1": keys[m]} for m in ms})


def test_network_peers_take_their_pairs_key_from_network_psks():
    psks = {"corp": {"b": wgf_psk.new_key(), "c": wgf_psk.new_key()}}
    pillar = {"networks": {"corp": network()}, "network_psks": psks}
    iface = _validated(pillar)["wg1"]
    for partner in ("b", "c"):
        peer = iface["peers"][partner]
        assert peer["has_preshared_key"]
        assert peer["preshared_key_pillar"] == f"wireguard:network_psks:corp:{partner}"
    secrets = wgf_schema.secrets_of(pillar, iface)
    assert secrets["preshared_keys"] == psks["corp"]
    conf = wgf_conf.render(iface, wgf_keys.genkey(), secrets["preshared_keys"])
    assert conf.count("PresharedKey") == 2
    assert all(key in conf for key in psks["corp"].values())
    assert psks["corp"]["b"] not in repr(iface)


def test_missing_psk_names_the_network_and_partner():
    pillar = {"networks": {"corp": network()}, "network_psks": {"corp": {"b": wgf_psk.new_key()}}}
    with pytest.raises(
        SaltInvocationError,
        match=r"network 'corp', node 'c': sets "
        r"preshared_keys.*ext_pillar",
    ):
        _validated(pillar)


def test_bad_psk_is_refused_without_showing_it():
    bad = "not-a-key-but-secret-looking-text"
    pillar = {
        "networks": {"corp": network()},
        "network_psks": {"corp": {"b": bad, "c": wgf_psk.new_key()}},
    }
    with pytest.raises(SaltInvocationError, match=r"network 'corp', node 'b'") as exc:
        _validated(pillar)
    assert bad not in str(exc.value)


def test_a_network_without_preshared_keys_ignores_network_psks():
    pillar = {"networks": {"corp": network(preshared_keys=False)}}
    iface = _validated(pillar)["wg1"]
    assert not any(p["has_preshared_key"] for p in iface["peers"].values())


def test_max_key_age_of_a_network_reaches_its_interface():
    pillar = {"networks": {"corp": network(preshared_keys=False, max_key_age=90)}}
    assert _validated(pillar)["wg1"]["max_key_age"] == 90


def test_max_key_age_must_be_a_number_of_days():
    pillar = {"interfaces": {"wg0": {"address": "10.0.0.1/24", "max_key_age": "soon"}}}
    with pytest.raises(SaltInvocationError, match=r"interface 'wg0', key 'max_key_age'"):
        pipeline.interfaces(pillar, "a")


def test_key_age_comes_from_the_key_files_time():
    data = {
        "modes": {
            "key": {"path": "/etc/wireguard/wg0.key", "mode": 0o600, "uid": 0, "mtime": 1000.0}
        },
        "now": 1000.0 + 3 * 86400 + 8640,
    }
    assert wgf_checks_files.key_age_days(data) == 3.1
    assert wgf_checks_files.key_age_days({"modes": {"key": None}, "now": 1.0}) is None
