"""``salt-run wireguard.prepare`` (issue 24): the orchestration syncs, makes keys and
updates the mine only where that is missing. The digest of the formula's modules is the
same from the master's file server and from a minion's synced copy; the runner runs
against a real file server (roots) with stand-in minions behind Salt's LocalClient."""

import hashlib
import json
import os
import shutil

import pytest
import salt.cache
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_modules
import wgf_networks
from tests.support.minion import master_opts
from tests.unit.conftest import REPO, runner_with_stand_ins

FORMULA = {
    "_modules": ["wireguard.py", "wireguard_config.py"],
    "_states": ["wireguard.py"],
    "_utils": ["wgf_addr.py", "wgf_modules.py"],
}
KEY_A = "A" * 43 + "="
KEY_B = "B" * 43 + "="


def test_only_the_formulas_synced_files_count():
    assert wgf_modules.formula_file("_modules/wireguard_config.py") == "modules/wireguard_config.py"
    assert wgf_modules.formula_file("utils/wgf_addr.py") == "utils/wgf_addr.py"
    for other in (
        "_modules/other.py",
        "_utils/helpers.py",
        "_runners/wireguard.py",  # the master's, never synced to a minion
        "_modules/wireguard.pyc",
        "wireguard/init.sls",
        "_modules/sub/wireguard.py",
    ):
        assert wgf_modules.formula_file(other) is None, other


def test_the_digest_changes_with_any_file_and_not_with_order():
    hashes = {"modules/wireguard.py": "1", "utils/wgf_addr.py": "2"}
    assert wgf_modules.digest(hashes) == wgf_modules.digest(dict(reversed(hashes.items())))
    assert wgf_modules.digest(hashes) != wgf_modules.digest({**hashes, "utils/wgf_addr.py": "3"})
    assert wgf_modules.digest(hashes) != wgf_modules.digest({"modules/wireguard.py": "1"})
    assert wgf_modules.digest({}) is None


def extmods(root, files=FORMULA):
    """A minion's synced copy of ``files`` (plus another formula's module)."""
    for kind, names in files.items():
        (root / kind.lstrip("_")).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(REPO / kind / name, root / kind.lstrip("_") / name)
    (root / "modules" / "other.py").write_text("x = 1\n")
    return root


def test_a_minions_copy_hashes_its_own_files(tmp_path):
    root = extmods(tmp_path)
    hashes = wgf_modules.local_hashes(str(root))
    assert sorted(hashes) == [
        "modules/wireguard.py",
        "modules/wireguard_config.py",
        "states/wireguard.py",
        "utils/wgf_addr.py",
        "utils/wgf_modules.py",
    ]
    expected = hashlib.sha256((REPO / "_utils" / "wgf_addr.py").read_bytes()).hexdigest()
    assert hashes["utils/wgf_addr.py"] == expected
    assert wgf_modules.local_hashes(str(tmp_path / "none")) == {}
    with pytest.raises(ValueError, match="name of a hash"):
        wgf_modules.local_hashes(str(root), ["sha256"])


def test_the_interfaces_a_pillar_gives_a_minion():
    pillar = {
        "wireguard": {
            "interfaces": {"wg0": {}},
            "networks": {
                "corp": {"interface": "wg1", "nodes": {"a": {"address": "10.1.0.1/24"}}},
                "lab": {"interface": "wg2", "nodes": {"b": {"address": "10.2.0.1/24"}}},
                "broken": {"nodes": {"a": {}}},
            },
        }
    }
    assert wgf_modules.interfaces(pillar, "a", wgf_networks.member_networks) == ["wg0", "wg1"]
    assert wgf_modules.interfaces({}, "a", wgf_networks.member_networks) == []


def test_the_plan_does_only_what_is_missing():
    current = {"modules": "D", "public_keys": {"wg0": KEY_A}}
    answers = {
        "ok": current,
        "old": {**current, "modules": "C"},
        "silent": None,
        "keyless": current,
        "unpublished": {**current, "public_keys": {"wg0": KEY_B}},
        "nothing": {**current, "public_keys": {}},
    }
    interfaces = {name: ["wg0"] for name in answers} | {"keyless": ["wg0", "wg1"], "nothing": []}
    published = {"ok": {"wg0": KEY_A}, "keyless": {"wg0": KEY_A}, "unpublished": {"wg0": KEY_A}}
    assert wgf_modules.plan("D", answers, published, interfaces) == {
        "sync": ["old", "silent"],
        "keys": ["keyless"],
        "publish": ["unpublished"],
    }
    # just synced (from another saltenv its copy may differ): not synced again
    after = {"old": answers["old"], "silent": None}
    assert wgf_modules.plan("D", after, {"old": {"wg0": KEY_A}}, interfaces, synced=True) == {
        "sync": ["silent"],
        "keys": [],
        "publish": [],
    }


@pytest.fixture
def master(tmp_path):
    """Master opts serving FORMULA, with a pillar giving every minion wg0."""
    opts = master_opts(
        tmp_path,
        file_roots={"base": [str(tmp_path / "srv")]},
        pillar_roots={"base": [str(tmp_path / "pillar")]},
        minion_data_cache=False,
    )
    give(opts, {})
    for kind, names in FORMULA.items():
        (tmp_path / "srv" / kind).mkdir(parents=True)
        for name in names:
            shutil.copy(REPO / kind / name, tmp_path / "srv" / kind / name)
    (tmp_path / "pki" / "minions").mkdir(parents=True)
    for minion in ("a", "b", "c"):
        (tmp_path / "pki" / "minions" / minion).write_text("key")
    return opts


@pytest.fixture
def runner(master, monkeypatch):
    return runner_with_stand_ins("wireguard_prepare_under_test", master, monkeypatch)


def give(opts, more):
    """The master's pillar: wg0 for every minion, and for each of ``more`` {minion:
    [interface]} those interfaces too (the interfaces come from here, never from a
    minion's answer)."""
    root = opts["pillar_roots"]["base"][0]
    os.makedirs(root, exist_ok=True)
    top = ["base:", "  '*':", "    - wg"]
    sls = {"wg": ["wg0"], **{f"wg_{m}": names for m, names in more.items()}}
    for minion in more:
        top += [f"  '{minion}':", f"    - wg_{minion}"]
    for name, interfaces in sls.items():
        with open(os.path.join(root, f"{name}.sls"), "w", encoding="utf-8") as handle:
            handle.write("wireguard:\n  interfaces:\n")
            handle.writelines(f"    {i}: {{address: 10.0.0.1/24}}\n" for i in interfaces)
    with open(os.path.join(root, "top.sls"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(top) + "\n")


def facts(tmp_path, keys=None, files=FORMULA):
    copy = extmods(tmp_path / f"copy{len(list(tmp_path.glob('copy*')))}", files)
    return {
        "modules": wgf_modules.digest(wgf_modules.local_hashes(str(copy))),
        "public_keys": keys if keys is not None else {"wg0": KEY_A},
    }


def publish(opts, minion, keys):
    salt.cache.factory(opts).store("mine", minion, {"wireguard.public_keys": keys})


def test_a_fleet_that_is_ready_gets_one_small_job(runner, master, tmp_path):
    current = facts(tmp_path)
    for minion in ("a", "b", "c"):
        publish(master, minion, {"wg0": KEY_A})
    minions = runner.use({"wireguard.orchestration_facts": dict.fromkeys("abc", current)})
    assert runner.prepare() == {
        "synced": [],
        "keyed": [],
        "published": [],
        "current": ["a", "b", "c"],
        "preshared_keys": {},
        "pillar_errors": [],
    }
    assert [fun for fun, _, _ in minions.jobs] == ["wireguard.orchestration_facts"]
    assert minions.jobs[0][2] == ["sha256"]


def test_only_what_is_missing_is_done_each_where_it_is_missing(runner, master, tmp_path):
    current = facts(tmp_path)
    old = facts(tmp_path, files={"_modules": ["wireguard.py"]})
    after_sync = {"a": current}
    for minion in ("a", "b", "c"):
        publish(master, minion, {"wg0": KEY_A})

    def answer(tgt, _):
        if tgt == ["a"]:  # asked again after its sync
            return after_sync
        return {"a": old, "b": current, "c": current}

    give(master, {"b": ["wg1"]})  # b's pillar gives it an interface without a key

    minions = runner.use(
        {
            "wireguard.orchestration_facts": answer,
            "saltutil.sync_all": {"a": {"modules": []}},
            "saltutil.refresh_modules": {"a": True},
            "state.sls": {"b": {"key": {"result": True}}},
            "mine.update": {"b": True},
        }
    )
    assert runner.prepare(tgt="*", sls="custom.key") == {
        "synced": ["a"],
        "keyed": ["b"],
        "published": ["b"],
        "current": ["c"],
        "preshared_keys": {},
        "pillar_errors": [],
    }
    assert [(fun, tgt, arg) for fun, tgt, arg in minions.jobs[1:]] == [
        ("saltutil.sync_all", ["a"], []),
        ("saltutil.refresh_modules", ["a"], []),
        ("wireguard.orchestration_facts", ["a"], ["sha256"]),
        ("state.sls", ["b"], ["custom.key"]),
        ("mine.update", ["b"], []),
    ]
    # synced without the asynchronous refresh, then loaded again before the next job
    assert minions.kwargs[1:3] == [{"refresh": False}, {"async": False}]


def test_the_preshared_keys_are_made_from_the_same_pillars(runner, master, tmp_path, monkeypatch):
    """A network with preshared keys gets them (as ``ensure_psks``), each minion's pillar
    compiled on the master once for that and for its interfaces; a minion whose pillar
    does not compile is named and gets nothing done."""
    nodes = {m: {"address": f"10.9.0.{i}/24"} for i, m in enumerate("ab", 1)}
    net = {"interface": "wg5", "preshared_keys": True, "topology": "mesh", "nodes": nodes}
    root = tmp_path / "pillar"
    (root / "net.sls").write_text(json.dumps({"wireguard": {"networks": {"corp": net}}}))
    (root / "broken.sls").write_text("{{ nope(\n")
    (root / "top.sls").write_text(
        "base:\n  'a or b':\n    - match: compound\n    - net\n  c:\n    - broken\n"
    )
    compiled = []
    real = runner._master_pillar
    monkeypatch.setattr(runner, "_master_pillar", lambda m: compiled.append(m) or real(m))
    current = facts(tmp_path, keys={"wg5": KEY_A})
    for minion in ("a", "b"):
        publish(master, minion, {"wg5": KEY_A})
    minions = runner.use(
        {
            "wireguard.orchestration_facts": {
                "a": current,
                "b": current,
                "c": {**current, "public_keys": {}},
            },
            "saltutil.refresh_pillar": {"a": True, "b": True},
        }
    )
    ret = runner.prepare()
    assert ret["preshared_keys"] == {"corp": {"pairs": 1, "made": 1}}
    assert ret["pillar_errors"] == ["c"]
    assert ret["current"] == ["a", "b", "c"]
    assert sorted(compiled) == ["a", "b", "c"]
    assert ("saltutil.refresh_pillar", ["a", "b"], []) in minions.jobs
    assert runner.prepare()["preshared_keys"] == {"corp": {"pairs": 1, "made": 0}}


def test_a_minion_where_a_step_fails_is_named(runner, master, tmp_path):
    current = facts(tmp_path)
    publish(master, "b", {"wg0": KEY_A})
    give(master, {"b": ["wg9"]})
    runner.use(
        {
            "wireguard.orchestration_facts": {"b": current},
            "state.sls": {},  # b does not answer
        }
    )
    with pytest.raises(CommandExecutionError, match=r"failed on a \(saltutil.sync_all\), b"):
        runner.prepare(tgt="a,b", tgt_type="list")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"tgt": ""}, "tgt is a target"),
        ({"tgt_type": "nope"}, "tgt_type is one of"),
        ({"sls": ["x"]}, "sls is a name"),
        ({"saltenv": "a\nb"}, "saltenv is a name"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_bad_arguments_are_refused_before_any_job(runner, args, message):
    minions = runner.use({})
    with pytest.raises(SaltInvocationError, match=message):
        runner.prepare(**args)
    assert minions.jobs == []
