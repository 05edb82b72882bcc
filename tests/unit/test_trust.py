"""Trust between minions and master (issue 19, items 7 and 8): the runner takes the
network definitions from the pillar the master compiles itself, never from a minion's
answer, and checks what the minions say about themselves; the ext_pillar makes no key,
reads nothing a minion's ``pillar_override`` can shape, and answers in the minion's
own pairs.

The master side is real Salt: master opts in a temporary directory, its pillar_roots,
the formula's ext_pillar through Salt's pillar compiler, accepted minion keys in its
pki directory. Only the minions are stand-ins (a fake ``LocalClient``)."""

import json
import os
import time

import pytest
import salt.cache
import salt.client
import salt.config
import salt.loader
import salt.pillar
import yaml
from salt.exceptions import SaltInvocationError

import wgf_keys
import wgf_psk
from tests.support.minion import master_opts
from tests.unit.conftest import REPO, runner_with_stand_ins

NODES = ("a", "b", "c")
CORP = {
    "interface": "wg1",
    "preshared_keys": True,
    "nodes": {
        n: {"address": f"10.9.0.{i}/24", "endpoint": f"198.18.9.{i}"}
        for i, n in enumerate(NODES, 1)
    },
}
#: What a hostile minion "evil" answers to pillar.get: a network that makes b rotate
#: wg9 and orders c to send everything (0.0.0.0/0) to it.
ROGUE = {
    "interface": "wg9",
    "nodes": {
        "b": {"address": "10.66.0.2/24", "endpoint": "198.18.66.2"},
        "c": {"address": "10.66.0.3/24"},
        "evil": {
            "address": "10.66.0.1/24",
            "endpoint": "198.18.66.1",
            "allowed_ips": ["0.0.0.0/0"],
        },
    },
}


def public(seed):
    return wgf_keys.pubkey(wgf_keys.genkey()) if seed is None else seed


@pytest.fixture
def master(tmp_path):
    """Master opts with pillar_roots (every minion: network corp), the formula's
    ext_pillar, and accepted keys for a, b, c and evil."""
    root = tmp_path
    opts = master_opts(
        root,
        extension_modules=str(root / "extmods"),
        file_roots={"base": [str(root / "srv")]},
        pillar_roots={"base": [str(root / "pillar")]},
        ext_pillar=[{"wireguard": {}}],
        minion_data_cache=False,
    )
    (root / "pillar").mkdir()
    (root / "srv").mkdir()
    (root / "pillar" / "top.sls").write_text("base:\n  '*':\n    - wg\n")
    write_networks(opts, {"corp": CORP})
    (root / "pki" / "minions").mkdir(parents=True)
    for minion in (*NODES, "evil"):
        (root / "pki" / "minions" / minion).write_text("key")
    return opts


def write_networks(opts, networks):
    path = os.path.join(opts["pillar_roots"]["base"][0], "wg.sls")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"wireguard": {"networks": networks}}, handle)


@pytest.fixture
def runner(master, monkeypatch):
    return runner_with_stand_ins("wireguard_runner_under_test", master, monkeypatch)


RUNNER_FUNCTIONS = (
    "audit",
    "graph",
    "rotate_psks",
    "ensure_psks",
    "prepare",
    "rotate_keys",
    "rollout",
    "alert_rules",
    "verify",
)


def test_salt_loads_the_runner_files_as_one_runner(master, runner):
    """``_runners/wireguard.py``, ``wireguard_keys.py``, ``wireguard_rollout.py``,
    ``wireguard_metrics.py`` and ``wireguard_verify.py`` share the virtual name
    ``wireguard``: Salt's own runner loader merges them, so ``salt-run
    wireguard.rotate_keys`` is found as ``salt-run wireguard.audit`` is (and the tests'
    ``Runner`` sees the same functions)."""
    loaded = salt.loader.runner({**master, "runner_dirs": [str(REPO / "_runners")]})
    loaded._load_all()
    names = {name for name in loaded if name.startswith("wireguard.")}
    assert names == {f"wireguard.{function}" for function in RUNNER_FUNCTIONS}
    for function in RUNNER_FUNCTIONS:
        assert loaded[f"wireguard.{function}"].__doc__ == getattr(runner, function).__doc__
    assert len(runner.modules) == len(list((REPO / "_runners").glob("wireguard*.py"))) == 5


def rotation_answers(keys, stage=None):
    """Healthy minions: a stage answer from the key table ``keys[(minion, if)]``."""

    def staged(tgt, arg):
        return {
            m: {i: {"old": keys[(m, i)], "next": keys[(m, i, "next")]} for i in arg[0][m]}
            for m in tgt
        }

    def ok(tgt, _):
        return {m: {"state": {"result": True}} for m in tgt}

    return {
        "pillar.get": {"evil": {"corp": CORP, "rogue": ROGUE}},
        "wireguard_rotate.stage": stage or staged,
        "wireguard_rotate.announce": ok,
        "wireguard_rotate.switch": ok,
        "mine.update": ok,
        "state.apply": ok,
    }


def key_table():
    keys = {}
    for minion in (*NODES, "evil"):
        for ifname in ("wg1", "wg9"):
            keys[(minion, ifname)] = public(None)
            keys[(minion, ifname, "next")] = public(None)
    return keys


def sent(minions, fun):
    return [(tgt, arg) for f, tgt, arg in minions.jobs if f == fun]


def test_a_minions_extra_network_is_never_rotated(runner):
    """evil answers pillar.get with network rogue: b is no node of a wg9 network in the
    master's pillar, so nothing happens, and no minion is asked for its pillar."""
    minions = runner.use(rotation_answers(key_table()))
    with pytest.raises(SaltInvocationError, match=r"not a node of any network .*'wg9'.*'b'"):
        runner.rotate_keys("b", interface="wg9")
    assert [f for f, _, _ in minions.jobs] == []


def test_rotation_orders_come_from_the_masters_pillar_only(runner):
    keys = key_table()
    minions = runner.use(rotation_answers(keys))
    ret = runner.rotate_keys("b")
    assert ret["ok"] is True, ret
    assert ret["rotated"] == {"b": ["wg1"]} and ret["partners"] == ["a", "c"]
    ((tgt, arg),) = sent(minions, "wireguard_rotate.stage")
    assert tgt == ["b"] and arg == [{"b": ["wg1"]}]
    ((tgt, arg),) = sent(minions, "wireguard_rotate.switch")
    assert sorted(tgt) == ["a", "b", "c"] and "evil" not in json.dumps(arg)
    assert "0.0.0.0/0" not in json.dumps(arg) and "wg9" not in json.dumps(arg)
    assert arg[0]["c"]["peers"] == [
        {
            "interface": "wg1",
            "old": keys[("b", "wg1")],
            "new": keys[("b", "wg1", "next")],
            "allowed_ips": ["10.9.0.2/32"],
        }
    ]
    assert sent(minions, "pillar.get") == []


def test_a_pillar_override_cannot_add_a_network_to_the_runner(runner, master):
    """The runner compiles without any pillar_override: what evil could send with
    its own pillar requests never reaches it."""
    runner.use(rotation_answers(key_table()))
    networks = runner._rotation_networks(["b"])
    assert networks == {"corp": CORP}


def test_two_definitions_in_the_masters_pillar_are_refused(runner, master, tmp_path):
    (tmp_path / "pillar" / "top.sls").write_text("base:\n  '*':\n    - wg\n  'c':\n    - other\n")
    other = {**CORP, "listen_port": 4000}
    (tmp_path / "pillar" / "other.sls").write_text(
        yaml.safe_dump({"wireguard": {"networks": {"corp": other}}})
    )
    minions = runner.use(rotation_answers(key_table()))
    with pytest.raises(SaltInvocationError, match=r"network 'corp' differently"):
        runner.rotate_keys("b")
    assert minions.jobs == []


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"wg1": {}},
        {"wg1": {"old": "x"}},
        {"wg1": None},
        "wg1",
        ["wg1"],
        {"wg1": {"old": None, "next": None}},
        {"wg1": {"old": 5, "next": [1]}},
        {"wg9": {"old": "K", "next": "N"}},
    ],
)
def test_a_malformed_stage_answer_fails_that_node_only(runner, answer):
    keys = key_table()
    base = rotation_answers(keys)["wireguard_rotate.stage"]

    def stage(tgt, arg):
        got = base(tgt, arg)
        got["b"] = answer
        return got

    minions = runner.use(rotation_answers(keys, stage))
    ret = runner.rotate_keys("a,b", tgt_type="list")
    assert ret["ok"] is False
    assert set(ret["failed"]) == {"b"} and "stage answer" in ret["failed"]["b"]
    assert ret["rotated"] == {"a": ["wg1"]}
    ((_, arg),) = sent(minions, "wireguard_rotate.switch")
    assert arg[0]["b"]["private_key"] == [] and keys[("b", "wg1")] not in json.dumps(arg)


def test_a_stage_answer_about_another_nodes_key_is_refused(runner, master):
    """b says its next key is a's, or that its current key is c's: partners would
    move AllowedIPs to a's entry or drop c's. The mine (master side) says otherwise."""
    keys = key_table()
    cache = salt.cache.factory(master)
    for minion in NODES:
        cache.store("mine", minion, {"wireguard.public_keys": {"wg1": keys[(minion, "wg1")]}})
    for lie in (
        {"old": keys[("b", "wg1")], "next": keys[("a", "wg1")]},
        {"old": keys[("c", "wg1")], "next": keys[("b", "wg1", "next")]},
        {"old": keys[("b", "wg1")], "next": keys[("b", "wg1")]},
    ):
        minions = runner.use(
            rotation_answers(keys, lambda tgt, arg, lie=lie: {m: {"wg1": lie} for m in tgt})
        )
        ret = runner.rotate_keys("b")
        assert ret["ok"] is False and set(ret["failed"]) == {"b"}, ret
        assert sent(minions, "wireguard_rotate.announce") == []
        assert sent(minions, "wireguard_rotate.switch") == []


def test_answers_from_other_minion_ids_are_ignored(runner):
    keys = key_table()
    base = rotation_answers(keys)["wireguard_rotate.stage"]

    def stage(tgt, arg):
        return {
            **base(tgt, arg),
            "evil": {"wg1": {"old": keys[("a", "wg1")], "next": keys[("evil", "wg1")]}},
        }

    minions = runner.use(rotation_answers(keys, stage))
    assert runner.rotate_keys("b")["ok"] is True
    assert keys[("evil", "wg1")] not in json.dumps(minions.jobs)


# ------------------------------------------------------------------ preshared keys


def compile_for(master, minion, override=None):
    pillar = salt.pillar.Pillar(master, {}, minion, "base", pillar_override=override)
    return pillar.compile_pillar()


def test_ensure_psks_reads_the_masters_pillar_and_keeps_keys(runner, master):
    minions = runner.use(
        {
            "pillar.get": {
                "evil": {
                    "corp": {**CORP, "nodes": {"evil": {"address": "10.9.0.9/24"}, **CORP["nodes"]}}
                }
            }
        }
    )
    ret = runner.ensure_psks()
    assert ret == {
        "ok": True,
        "networks": {"corp": {"pairs": 3, "made": 3}},
        "pillar_errors": [],
        "refreshed": ["a", "b", "c"],  # their own pillar holds the new keys at once
    }
    assert ("saltutil.refresh_pillar", ["a", "b", "c"], []) in minions.jobs
    # the job ends when the minions have the new pillar (and modules) loaded, so the
    # orchestration's state run next does not race a threaded minion's module reload
    assert minions.kwargs[-1]["wait"] is True
    first = wgf_psk.keys_of(master["cachedir"], "a")
    assert set(first["corp"]) == {"b", "c"} and wgf_psk.keys_of(master["cachedir"], "evil") == {}
    minions.jobs.clear()
    again = runner.ensure_psks()
    assert again["networks"]["corp"]["made"] == 0 and again["refreshed"] == []
    assert not any(job[0] == "saltutil.refresh_pillar" for job in minions.jobs)
    assert wgf_psk.keys_of(master["cachedir"], "a") == first
    with pytest.raises(SaltInvocationError, match=r"no targeted minion has network 'x'"):
        runner.ensure_psks(network="x")


def test_rotate_psks_applies_after_the_minions_have_loaded_the_new_pillar(runner):
    applied = {"x": {"result": True, "changes": {"diff": "new"}}}
    minions = runner.use(
        {
            ("saltutil.refresh_pillar", "state.apply"): lambda tgt, _: {
                m: {"saltutil.refresh_pillar": True, "state.apply": applied} for m in tgt
            }
        }
    )
    ret = runner.rotate_psks(network="corp", tgt="a,b,c", tgt_type="list")
    assert ret["ok"] is True and ret["minions"] == ["a", "b", "c"]
    assert ret["results"]["a"] == {"result": True, "failed": [], "changed": ["x"]}
    [(fun, tgt, arg)] = minions.jobs
    assert fun == ["saltutil.refresh_pillar", "state.apply"] and tgt == ["a", "b", "c"]
    # one job; its refresh returns only when the minion has reloaded pillar and modules
    refresh, apply = arg
    assert refresh == [{"__kwarg__": True, "wait": True, "timeout": refresh[0]["timeout"]}]
    assert refresh[0]["timeout"] >= 30 and apply == ["wireguard"]


def test_the_ext_pillar_makes_no_key(master):
    pillar = compile_for(master, "a")
    assert "network_psks" not in pillar["wireguard"]
    assert not os.path.exists(wgf_psk.store_path(master["cachedir"]))


def test_the_ext_pillar_ignores_a_pillar_override_and_answers_fast(runner, master):
    runner.use({})
    runner.ensure_psks()
    path = wgf_psk.store_path(master["cachedir"])
    before = os.stat(path)
    fake = {
        "interface": "wg7",
        "preshared_keys": True,
        "nodes": {f"n{i}": {"address": f"10.{i // 250}.{i % 250}.1/8"} for i in range(400)},
    }
    fake["nodes"]["a"] = {"address": "10.200.0.1/8"}
    override = {
        "wireguard": {
            "networks": {
                "fake": fake,
                "corp": {**CORP, "nodes": {**CORP["nodes"], "x": {"address": "10.9.0.99/24"}}},
            }
        }
    }
    started = time.perf_counter()
    pillar = compile_for(master, "a", override)
    took = time.perf_counter() - started
    psks = pillar["wireguard"]["network_psks"]
    assert psks == wgf_psk.keys_of(master["cachedir"], "a")
    assert set(psks) == {"corp"} and set(psks["corp"]) == {"b", "c"}
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert took < 5, took


@pytest.mark.parametrize(
    ("function", "args", "where"),
    [
        ("rotate_keys", {"tgt": ["b"]}, r"tgt is a target"),
        ("rotate_keys", {"tgt": "b", "tgt_type": "regex"}, r"tgt_type is one of"),
        ("rotate_keys", {"tgt": "b", "interface": ["wg1"]}, r"interface is a name"),
        ("rotate_keys", {"tgt": "b", "timeout": "soon"}, r"timeout is a number of seconds"),
        ("rotate_keys", {"tgt": "b", "timeout": 10**5000}, r"timeout is a number of seconds"),
        ("rotate_psks", {"network": ["corp"]}, r"network is a name"),
        ("rotate_psks", {"network": {"corp": 1}}, r"network is a name"),
        ("ensure_psks", {"network": 5}, r"network is a name"),
        ("audit", {"stale_after": 10**5000}, r"stale_after is a number of seconds"),
        ("audit", {"stale_after": "x"}, r"stale_after is a number of seconds"),
        ("graph", {"tgt": None}, r"tgt is a target"),
    ],
)
def test_bad_runner_arguments_are_refused_before_any_job(runner, function, args, where):
    minions = runner.use(rotation_answers(key_table()))
    with pytest.raises(SaltInvocationError, match=where):
        getattr(runner, function)(**args)
    assert minions.jobs == []


def test_ensure_psks_skips_a_pillar_that_does_not_compile(runner, master, tmp_path):
    (tmp_path / "pillar" / "top.sls").write_text("base:\n  '*':\n    - wg\n  'c':\n    - broken\n")
    (tmp_path / "pillar" / "broken.sls").write_text("{{ nope(\n")
    runner.use({})
    ret = runner.ensure_psks()
    assert ret["pillar_errors"] == ["c"] and ret["networks"]["corp"]["pairs"] == 3
    with pytest.raises(SaltInvocationError, match=r"cannot compile the pillar of minion 'c'"):
        runner.rotate_keys("c")
