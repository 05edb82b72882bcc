"""Property-based fuzz of what crosses between minions and master (issue 19): the
runner's minion answers (key rotation and the audit), the master's preshared key store
and the ext_pillar's inputs, and the orders ``wireguard_rotate.*`` takes. Whatever comes
in, only Salt's own errors come out, and no planted private or preshared key appears in
a message or a return. Derandomized, like tests/unit/test_fuzz.py, whose strategies
this reuses."""

import copy
import json
import os

import pytest
import salt.config
import salt.loader
from hypothesis import event, given
from hypothesis import strategies as st

import wgf_keys
import wgf_psk
import wgf_rotate
from tests.support.fuzz import (
    KEY_A,
    KEY_B,
    KEY_C,
    PRIV,
    PSK,
    PSK2,
    SALTS_OWN,
    YAMLISH,
    answers,
    assert_no_secret,
    fuzz,
    mutate,
)
from tests.support.minion import master_opts
from tests.unit.conftest import Minions, Runner, load

NODES = ("a", "b", "c")
CORP = {
    "interface": "wg1",
    "nodes": {
        n: {"address": f"10.9.0.{i}/24", "endpoint": f"198.18.9.{i}"}
        for i, n in enumerate(NODES, 1)
    },
}
KEYS = {"a": KEY_A, "b": KEY_B, "c": KEY_C}
NEXT = {m: wgf_keys.pubkey(wgf_keys.genkey()) for m in NODES}


def mutated(draw, value, most=3):
    value = copy.deepcopy(value)
    for _ in range(draw(st.integers(1, most))):
        value = mutate(draw, value)
    return value


def planted(draw, value):
    """``value`` with a secret put somewhere a value was."""
    secret = draw(st.sampled_from([PRIV, PSK, PSK2]))
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(list(value)))
        return {**value, key: planted(draw, value[key]) if draw(st.booleans()) else secret}
    if isinstance(value, list) and value:
        return [planted(draw, value[0]), *value[1:]]
    return secret


# ------------------------------------------------------------ the runner's minion answers


@pytest.fixture(scope="module")
def runner():
    module = Runner("wireguard_runner_under_fuzz")
    module.__opts__ = {"cachedir": "/nonexistent", "timeout": 1}
    module.__context__ = {}
    return module


def healthy_rotation():
    ok = {m: {"state": {"result": True}} for m in NODES}
    return {
        "wireguard_rotate.stage": {m: {"wg1": {"old": KEYS[m], "next": NEXT[m]}} for m in NODES},
        "wireguard_rotate.announce": ok,
        "wireguard_rotate.switch": ok,
        "mine.update": ok,
        "state.apply": ok,
    }


@st.composite
def rotation_answers(draw):
    got = healthy_rotation()
    fun = draw(st.sampled_from(sorted(got)))
    minion = draw(st.sampled_from(NODES))
    if draw(st.integers(0, 5)) == 0:
        del got[fun][minion]  # did not answer
    else:
        got[fun][minion] = mutated(draw, got[fun][minion])
        if draw(st.booleans()):
            got[fun][minion] = planted(draw, got[fun][minion])
    published = {m: {"wg1": KEYS[m]} for m in NODES}
    if draw(st.integers(0, 3)) == 0:
        published = mutated(draw, published, 2)
    return got, published if isinstance(published, dict) else {}


@fuzz(150)
@given(case=rotation_answers(), tgt=st.sampled_from(["a", "b", "a,b,c"]))
def test_any_minion_answer_to_a_rotation_gives_a_return_or_a_refusal(
    runner, monkeypatch_module, case, tgt
):
    got, published = case
    monkeypatch_module.setattr(
        runner.salt.client, "get_local_client", Minions(got).get_local_client
    )
    monkeypatch_module.setattr(runner, "_rotation_networks", lambda _: {"corp": CORP})
    monkeypatch_module.setattr(
        runner, "_published", lambda minions: {m: published.get(m) for m in minions}
    )
    monkeypatch_module.setattr(runner, "_targets", lambda t, _: t.split(","))
    monkeypatch_module.setattr(
        runner.salt.utils.minions,
        "CkMinions",
        lambda _: type("C", (), {"check_minions": lambda self, t, _: {"minions": t.split(",")}})(),
    )
    try:
        ret = runner.rotate_keys(tgt, tgt_type="list")
    except SALTS_OWN as exc:
        assert_no_secret(str(exc))
        return
    assert_no_secret(json.dumps(ret, default=repr))
    event("ok" if ret["ok"] else "failed")
    assert set(ret["failed"]) <= set(NODES)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@fuzz(100)
@given(staged=YAMLISH.map(lambda v: {"a": v}) | st.builds(dict), published=YAMLISH)
def test_stage_answers_are_checked_or_refused(staged, published):
    published = published if isinstance(published, dict) else {}
    good, refused = wgf_rotate.checked_staged({"a": {"wg1": "corp"}}, staged, published)
    assert set(good) | set(refused) == {"a"}
    for entry in good.get("a", {}).values():
        wgf_keys.decode(entry["old"]) and wgf_keys.decode(entry["next"])
    assert_no_secret(json.dumps(refused))


def audit_answers():
    """The audit's healthy answers with each interface's key age, as wireguard.check
    reports it."""
    returned = answers()
    for funs in returned.values():
        funs["wireguard.check"]["interfaces"]["wg0"]["facts"]["key_age_days"] = 3.5
    return returned


@fuzz(120)
@given(data=st.data())
def test_any_audit_answer_gives_a_report_and_a_graph(runner, monkeypatch_module, data):
    returned = audit_answers()
    minion = data.draw(st.sampled_from(sorted(returned)))
    if data.draw(st.booleans()):
        returned[minion]["wireguard.check"]["interfaces"]["wg0"]["facts"]["key_age_days"] = (
            data.draw(YAMLISH)
        )
    if data.draw(st.booleans()):  # an answer that quotes a key, as an error text can
        fun = data.draw(st.sampled_from(sorted(returned[minion])))
        returned[minion][fun] = data.draw(
            st.sampled_from([f"error reading {PRIV}", {"wg0": PSK}, [PRIV], {PSK2: {"peers": {}}}])
        )
    returned = mutated(data.draw, returned, 2)
    if not isinstance(returned, dict):
        returned = {"mesh1": returned}
    returned = {str(m): f for m, f in returned.items()}  # Salt: {minion id: answer}
    if returned and data.draw(st.booleans()):
        minion = data.draw(st.sampled_from(sorted(returned)))
        returned[minion] = planted(data.draw, returned[minion])
    monkeypatch_module.setattr(runner, "_ask_minions", lambda *_: (returned, []))
    for call in (
        lambda: runner.audit(report="text"),
        lambda: runner.audit(report="data"),
        lambda: runner.graph(format="mermaid"),
    ):
        try:
            call()
        except SALTS_OWN as exc:
            assert_no_secret(str(exc))


def test_a_key_age_that_is_no_number_names_the_minion(runner, monkeypatch_module):
    """Found by the fuzz above: text_report formatted it as a number and crashed."""
    for age in ("x", [1], float("nan"), 10**5000, True):
        returned = audit_answers()
        returned["mesh2"]["wireguard.check"]["interfaces"]["wg0"]["facts"]["key_age_days"] = age
        monkeypatch_module.setattr(runner, "_ask_minions", lambda *_, r=returned: (r, []))
        text = runner.audit(report="text")["data"]
        (line,) = [t for t in text.splitlines() if t.startswith("mesh2: could not be audited")]
        assert "the facts of 'wg0' are malformed" in line
        assert runner.graph()["data"].startswith("graph") or "--" in runner.graph()["data"]


# ------------------------------------------------------------ the store and the ext_pillar


def healthy_store():
    return {"corp": {"a": {"b": PSK, "c": PSK2}, "b": {"c": wgf_keys.genpsk()}}}


@fuzz(150)
@given(data=st.data())
def test_any_store_is_read_or_refused_and_never_shown(tmp_path_factory, data):
    cachedir = str(tmp_path_factory.mktemp("store"))
    content = mutated(data.draw, healthy_store())
    path = wgf_psk.store_path(cachedir)
    os.makedirs(os.path.dirname(path))
    text = (
        json.dumps(content)
        if data.draw(st.integers(0, 5))
        else json.dumps(content)[: data.draw(st.integers(0, 40))]
    )
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)
    for call in (
        lambda: wgf_psk.keys_of(cachedir, data.draw(st.sampled_from(NODES))),
        lambda: wgf_psk.ensure_network(cachedir, "corp", [("a", "b")]),
        lambda: wgf_psk.replace_network(cachedir, "other", [("a", "b")]),
    ):
        try:
            call()
        except SALTS_OWN as exc:
            assert_no_secret(str(exc))
            with open(path, encoding="ascii") as handle:
                assert handle.read() == text  # a damaged store is never written through


@pytest.fixture(scope="module")
def ext_pillar(tmp_path_factory):
    """The formula's ext_pillar as Salt's loader gives it to the master, with a store
    that holds the pairs of network corp."""
    root = tmp_path_factory.mktemp("master")
    opts = master_opts(root, extension_modules=str(root / "ext"))
    wgf_psk.ensure_network(opts["cachedir"], "corp", [("a", "b"), ("a", "c"), ("b", "c")])
    utils = salt.loader.utils(opts)
    pillars = salt.loader.pillars(opts, salt.loader.minion_mods(opts, utils=utils))
    return pillars["wireguard"], opts["cachedir"]


PSK_PILLAR = {
    "wireguard": {
        "networks": {"corp": {**CORP, "preshared_keys": True}},
        "network_psks": {"corp": {"b": PSK, "c": PSK2}},
    }
}


@fuzz(150)
@given(data=st.data(), minion=st.one_of(st.sampled_from([*NODES, "evil", ""]), YAMLISH))
def test_the_ext_pillar_answers_only_the_stored_pairs_whatever_it_is_handed(
    ext_pillar, data, minion
):
    function, cachedir = ext_pillar
    pillar = mutated(data.draw, PSK_PILLAR, 4)
    path = wgf_psk.store_path(cachedir)
    before = os.stat(path)
    try:
        answer = function(minion, pillar)
    except SALTS_OWN as exc:
        assert_no_secret(str(exc))
        return
    assert answer == (
        {"wireguard": {"network_psks": wgf_psk.keys_of(cachedir, str(minion))}}
        if str(minion) in NODES
        else {}
    )
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


# ------------------------------------------------------------ the orders wireguard_rotate takes


#: The secrets the minion itself holds: its key file and a live preshared key. No order
#: can make them reach ``wg``'s argv, a message or a return.
OWN_PRIVATE = wgf_keys.genkey()
LIVE_PSK = wgf_keys.genpsk()


def assert_not_in(text, *secrets):
    for secret in secrets:
        assert secret[:16] not in text and secret[-16:] not in text, text[:2000]


class FakeWg:
    """``wg`` as the rotate module runs it: a live wg1 with peers of known keys."""

    def __init__(self):
        self.calls = []

    def __call__(self, args):
        self.calls.append(args)
        if args[:1] == ["show"] and args[2:] == ["public-key"]:
            return KEY_A + "\n"
        if args[:1] == ["show"] and args[2:] == ["preshared-keys"]:
            return f"{KEY_B}\t{LIVE_PSK}\n{KEY_C}\t(none)\n"
        return ""


@pytest.fixture(scope="module")
def rotate(tmp_path_factory):
    module = load("_modules/wireguard_rotate.py", "wireguard_rotate_under_fuzz")
    config_dir = str(tmp_path_factory.mktemp("etc-wireguard"))
    module.__opts__ = {"id": "a"}
    module.__salt__ = {"pillar.get": lambda *a, **k: {"config_dir": config_dir}}
    module._config_dir = lambda: config_dir
    module._wake = lambda address: None
    return module, config_dir


ORDERS = {
    "stage": {"a": ["wg1"], "b": ["wg1"]},
    "announce": {
        "a": [
            {
                "interface": "wg1",
                "public_key": NEXT["b"],
                "replaces": KEY_B,
                "endpoint": "198.18.9.2:51820",
                "persistent_keepalive": 25,
            }
        ]
    },
    "switch": {
        "a": {
            "private_key": ["wg1"],
            "wake": ["10.9.0.2"],
            "peers": [
                {"interface": "wg1", "old": KEY_B, "new": NEXT["b"], "allowed_ips": ["10.9.0.2/32"]}
            ],
        }
    },
}


@fuzz(200)
@given(data=st.data(), step=st.sampled_from(sorted(ORDERS)))
def test_any_order_is_carried_out_or_refused_and_no_key_is_shown(
    rotate, monkeypatch_module, data, step
):
    module, config_dir = rotate
    orders = mutated(data.draw, ORDERS[step], 3)
    if data.draw(st.booleans()):
        orders = planted(data.draw, orders)
    wg = FakeWg()
    monkeypatch_module.setattr(module, "_wg", wg)
    key = os.path.join(config_dir, "wg1.key")
    with open(key, "w", encoding="ascii") as handle:
        handle.write(OWN_PRIVATE + "\n")
    try:
        ret = getattr(module, step)(orders)
    except SALTS_OWN as exc:
        event("refused")
        assert_no_secret(str(exc))
        assert_not_in(str(exc), OWN_PRIVATE, LIVE_PSK)
        return
    event("done")
    assert_no_secret(json.dumps(ret))
    assert_not_in(json.dumps(ret), OWN_PRIVATE, LIVE_PSK)
    for args in wg.calls:  # the minion's own secrets reach wg only through files
        assert_not_in(" ".join(args), OWN_PRIVATE, LIVE_PSK)


def test_the_healthy_orders_are_carried_out(rotate, monkeypatch_module):
    module, _ = rotate
    wg = FakeWg()
    monkeypatch_module.setattr(module, "_wg", wg)
    staged = module.stage(ORDERS["stage"])
    assert staged["wg1"]["old"] == KEY_A
    assert module.announce(ORDERS["announce"]) == 1
    assert module.switch(ORDERS["switch"]) == {"moved": 1, "switched": ["wg1"]}
    assert [
        "set",
        "wg1",
        "peer",
        NEXT["b"],
        "allowed-ips",
        "10.9.0.2/32",
        "peer",
        KEY_B,
        "remove",
    ] in wg.calls


@pytest.mark.parametrize(
    ("step", "orders", "where"),
    [
        ("stage", {"a": "wg1"}, r"stage: orders for 'a': not a list"),
        ("stage", {"a": [["wg1"]]}, r"stage: interface #1: not an interface name"),
        ("stage", [], r"stage: orders: a mapping"),
        ("announce", {"a": [{"interface": "wg1"}]}, r"announce: order #1, public_key: not a"),
        ("announce", {"a": [None]}, r"announce: order #1: not a mapping"),
        (
            "announce",
            {"a": [{**ORDERS["announce"]["a"][0], "persistent_keepalive": "x"}]},
            r"announce: order #1, persistent_keepalive",
        ),
        (
            "announce",
            {"a": [{**ORDERS["announce"]["a"][0], "endpoint": PRIV}]},
            r"announce: order #1, endpoint: not host:port",
        ),
        ("switch", {"a": []}, r"switch: orders for 'a': not a mapping"),
        (
            "switch",
            {
                "a": {
                    "peers": [
                        {"interface": "wg1", "old": KEY_B, "new": PSK, "allowed_ips": "10.0.0.0/8"}
                    ]
                }
            },
            r"switch: peer move #1, allowed_ips: not a list",
        ),
        ("switch", {"a": {"wake": [5]}}, r"switch: wake: not a list of IP addresses"),
        ("switch", {"a": {"private_key": [PRIV]}}, r"switch: private_key #1: not an interface"),
    ],
)
def test_malformed_orders_are_refused_naming_the_place(
    rotate, monkeypatch_module, step, orders, where
):
    module, _ = rotate
    wg = FakeWg()
    monkeypatch_module.setattr(module, "_wg", wg)
    with pytest.raises(SALTS_OWN, match=where) as exc:
        getattr(module, step)(orders)
    assert_no_secret(str(exc.value))
    assert [c for c in wg.calls if c[:1] == ["set"]] == []


# ------------------------------------------------------------ the runner's arguments

RUNNER_CALLS = {
    "audit": ("tgt", "tgt_type", "timeout", "stale_after", "graph", "svg", "report"),
    "graph": ("tgt", "tgt_type", "format", "timeout", "stale_after"),
    "rotate_keys": ("tgt", "interface", "tgt_type", "timeout"),
    "rotate_psks": ("network", "tgt", "tgt_type", "timeout"),
    "ensure_psks": ("network", "tgt", "tgt_type"),
    "prepare": ("tgt", "tgt_type", "sls", "saltenv", "timeout"),
    "rollout": ("tgt", "tgt_type", "batch", "canary", "hold", "timeout"),
}


@fuzz(200)
@given(data=st.data(), function=st.sampled_from(sorted(RUNNER_CALLS)))
def test_any_runner_argument_is_taken_or_refused(runner, monkeypatch_module, data, function):
    """As the command line can deliver them (YAML: lists, mappings, numbers, None...)."""
    args = {
        name: data.draw(st.one_of(YAMLISH, st.just(PRIV)), label=name)
        for name in data.draw(st.sets(st.sampled_from(RUNNER_CALLS[function]), min_size=1))
    }
    if function == "rotate_psks":
        args.setdefault("network", "corp")
    if function in ("rotate_keys", "rollout"):
        args.setdefault("tgt", "a")
    monkeypatch_module.setattr(runner, "_ask_minions", lambda *_: (audit_answers(), []))
    monkeypatch_module.setattr(runner, "_master_networks", lambda *_, **__: ({}, {}))
    monkeypatch_module.setattr(runner, "_master_pillar", lambda _: {})
    monkeypatch_module.setattr(runner, "_targets", lambda t, _: ["a"])
    monkeypatch_module.setattr(runner, "_job", lambda *_, **__: {})
    monkeypatch_module.setattr(runner, "_master_digest", lambda _: (None, "sha256"))
    monkeypatch_module.setattr(runner, "_each", lambda *_, **__: ({}, []))
    monkeypatch_module.setattr(
        runner.salt.utils.minions,
        "CkMinions",
        lambda _: type("C", (), {"check_minions": lambda self, t, _: {"minions": []}})(),
    )
    monkeypatch_module.setattr(runner.wgf_host, "render_svg", lambda *_: (None, "no dot here"))
    try:
        getattr(runner, function)(**args)
    except SALTS_OWN as exc:
        assert_no_secret(str(exc))


def test_a_next_key_path_that_is_a_directory_is_refused(rotate, monkeypatch_module):
    module, config_dir = rotate
    monkeypatch_module.setattr(module, "_wg", FakeWg())
    os.makedirs(os.path.join(config_dir, "wg2.key.next"))
    with pytest.raises(
        SALTS_OWN,
        match=r"wg2.key.next is a directory, where the formula "
        r"keeps a file",
    ):
        module.stage({"a": ["wg2"]})
