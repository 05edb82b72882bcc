"""The fleet rollout (issue 21): the waves, what a wave's returns say, its health
(``_utils/wgf_rollout.py``), and ``salt-run wireguard.rollout`` against stand-in
minions (a fake ``LocalClient``): canary first, each wave applied with the hold
override, accepted when healthy, undone and stopped when not, the exit code."""

import fnmatch
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

import wgf_keys
import wgf_rollout as r
from tests.support.minion import master_opts
from tests.unit.conftest import Minions, runner_with_stand_ins

KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
HUB, S1, S2, S3 = (wgf_keys.pubkey(wgf_keys.genkey()) for _ in range(4))

# ------------------------------------------------------------------------- waves


@pytest.mark.parametrize(
    ("batch", "want"),
    [(1, (1, None)), ("3", (3, None)), ("25%", (None, 25)), (" 100% ", (None, 100))],
)
def test_a_batch_is_a_count_or_a_share(batch, want):
    assert r.checked_batch(batch) == want


@pytest.mark.parametrize(
    "batch", [0, -1, "0", "0%", "101%", "1.5", 1.5, True, None, "", "%", [1], "x%", "\uff11"]
)
def test_a_batch_that_is_neither_is_refused(batch):
    with pytest.raises(SaltInvocationError, match=r"^batch is a number of minions"):
        r.checked_batch(batch)


def test_a_key_given_as_batch_is_not_shown():
    with pytest.raises(SaltInvocationError) as info:
        r.checked_batch(KEY)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("hold", [4, 3601, "x", 1.5, True, None, -5])
def test_a_hold_out_of_range_is_refused(hold):
    with pytest.raises(SaltInvocationError, match=r"^hold is a whole number of seconds"):
        r.checked_hold(hold)


def test_a_hold_is_whole_seconds_from_5_to_3600():
    assert [r.checked_hold(h) for h in (5, "60", 3600)] == [5, 60, 3600]


def test_the_canary_goes_first_then_batches_in_order():
    minions = ["s3", "hub", "s1", "s2"]
    assert r.plan(minions, 1, "hub") == [["hub"], ["s1"], ["s2"], ["s3"]]
    assert r.plan(minions, 2, "s2") == [["s2"], ["hub", "s1"], ["s3"]]
    assert r.plan(minions, "25%") == [["hub"], ["s1"], ["s2"], ["s3"]]
    assert r.plan(minions, "50%", "hub") == [["hub"], ["s1", "s2"], ["s3"]]
    assert r.plan(minions, "100%") == [["hub", "s1", "s2", "s3"]]


def test_a_canary_that_is_not_targeted_is_refused():
    with pytest.raises(SaltInvocationError, match=r"canary 'x' is not one of the targeted"):
        r.plan(["a", "b"], 1, "x")


@given(
    st.sets(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), max_size=30),
    st.one_of(st.integers(1, 40), st.integers(1, 100).map(lambda p: f"{p}%")),
    st.booleans(),
)
def test_every_minion_is_in_exactly_one_wave_of_the_batch_size(minions, batch, with_canary):
    canary = sorted(minions)[0] if minions and with_canary else None
    waves = r.plan(minions, batch, canary)
    flat = [m for w in waves for m in w]
    assert sorted(flat) == sorted(minions) and len(flat) == len(set(flat))
    size = r.batch_size(len(minions), batch)
    rest = waves[1:] if canary else waves
    if canary:
        assert waves[0] == [canary]
    assert all(1 <= len(w) <= size for w in rest)
    assert all(len(w) == size for w in rest[:-1])


# ------------------------------------------------------------------- state returns


def state(result=True, changes=None, comment="", sid="s", run=0):
    return {
        f"mod_|-{sid}_|-{sid}_|-fun": {
            "result": result,
            "changes": changes or {},
            "comment": comment,
            "__id__": sid,
            "__run_num__": run,
        }
    }


def test_a_state_return_with_changes_changed():
    assert r.changed({**state(sid="a"), **state(changes={"x": 1}, sid="b")})
    assert not r.changed(state())
    assert not r.changed(None) and not r.changed(["error"]) and not r.changed({})


def test_failures_name_the_state_and_its_comment_in_run_order():
    ret = {
        **state(False, comment=f"wg0: change undone: peers {KEY} did not", sid="b", run=2),
        **state(sid="ok", run=0),
        **state(False, comment="first", sid="a", run=1),
    }
    got = r.failures(ret)
    assert got[0] == "a: first"
    assert got[1].startswith("b: wg0: change undone: peers ") and KEY not in got[1]
    assert r.failures(state()) == []


@pytest.mark.parametrize(
    ("ret", "want"),
    [
        (None, "no answer"),
        (["Rendering SLS 'base:wireguard' failed"], "Rendering SLS"),
        ("Minion did not return. [No response]", "not a state return"),
        ({"x": "y"}, "not a state return"),
    ],
)
def test_a_return_that_is_no_state_run_is_a_failure(ret, want):
    (got,) = r.failures(ret)
    assert want in got


# ------------------------------------------------------------------------ partners


def check(key=None, peers=(), errors=(), ok=True):
    problems = [
        {"severity": "error", "check": chk, "peer": peer, "message": msg, "fix": "f"}
        for chk, peer, msg in errors
    ]
    facts = {"public_key": key, "peers": {p: {"name": None} for p in peers}}
    return {
        "interfaces": {"wg0": {"problems": problems, "ok": not problems, "facts": facts}},
        "problems": [],
        "ok": ok and not problems,
        "summary": "",
    }


FLEET_CHECKS = {
    "hub": check(HUB, [S1, S2, S3]),
    "s1": check(S1, [HUB]),
    "s2": check(S2, [HUB]),
    "s3": check(S3, [HUB]),
    "lone": check(None),
    "weird": ["not", "a", "check"],
}


def test_the_partners_of_a_hub_are_its_spokes_and_of_a_spoke_its_hub():
    fleet = r.peering(FLEET_CHECKS)
    assert r.partners(["hub"], fleet) == ["s1", "s2", "s3"]
    assert r.partners(["s2"], fleet) == ["hub"]
    assert r.partners(["s1", "hub"], fleet) == ["s2", "s3"]
    assert r.partners([], fleet) == []
    assert fleet["weird"] == {"keys": set(), "peers": set()}


def test_a_one_sided_peering_still_makes_partners():
    """The hub lost s3 from its peers (the change to check), s3 still holds the hub."""
    fleet = r.peering({"hub": check(HUB, [S1]), "s3": check(S3, [HUB])})
    assert r.partners(["hub"], fleet) == ["s3"]
    assert r.partners(["s3"], fleet) == ["hub"]


# -------------------------------------------------------------------------- health


def test_an_error_already_there_before_the_wave_does_not_count():
    before = check(HUB, errors=[("handshake", S1, "never")])
    after = check(HUB, errors=[("handshake", S1, "never, still")])
    assert r.judge(after, before, state()) == {"ok": True, "problems": []}


def test_a_new_error_a_failed_state_or_no_answer_is_unhealthy():
    before = check(HUB)
    after = check(HUB, errors=[("handshake", S2, f"no handshake with {S2}")])
    got = r.judge(after, before, state())
    assert got["ok"] is False
    assert got["problems"][0].startswith("wireguard.check: no handshake with ")
    assert S2 not in json.dumps(got)
    got = r.judge(before, before, state(False, comment="wg0: change undone"))
    assert got == {"ok": False, "problems": ["state: s: wg0: change undone"]}
    assert r.judge(None, before, state())["problems"] == ["wireguard.check: no answer"]
    assert r.judge(before, before, None)["problems"] == ["state: no answer"]


def test_a_partner_is_judged_by_its_check_alone():
    assert r.judge(check(S1), check(S1), None, in_wave=False)["ok"] is True
    assert r.judge("Minion did not return", check(S1), None, in_wave=False)["ok"] is False


def test_the_wave_report_and_its_text():
    health = {"hub": {"ok": False, "problems": ["state: s: undone"]}}
    wave = r.wave_report(["hub"], ["hub"], health, undone=True)
    assert wave == {"minions": ["hub"], "changed": ["hub"], "health": health, "undone": True}
    text = r.text_report([wave], 0, ["s1", "s2"])
    assert text.splitlines() == [
        "wave 1: hub: undone (changed: hub)",
        "  hub: state: s: undone",
        "stopped at wave 1; not applied: s1, s2",
    ]


# -------------------------------------------------------------------------- runner


@pytest.fixture
def runner(tmp_path, monkeypatch):
    return runner_with_stand_ins("wireguard_rollout_under_test", master_opts(tmp_path), monkeypatch)


def fleet_answers(apply):
    """hub + s1..s3 answering; ``apply(minion)`` is each one's state.apply return."""
    everyone = ["hub", "s1", "s2", "s3"]
    return {
        "test.ping": lambda tgt, _: {m: True for m in everyone if fnmatch.fnmatch(m, tgt)},
        "wireguard.check": lambda tgt, _: {
            m: FLEET_CHECKS[m] for m in (everyone if tgt == "*" else tgt)
        },
        "state.apply": lambda tgt, _: {m: apply(m) for m in tgt},
        "wireguard.confirm_accept": lambda tgt, _: {m: {"wg0": "confirmed"} for m in tgt},
        "wireguard.confirm_undo": lambda tgt, _: {m: {"wg0": "undone"} for m in tgt},
    }


def jobs(minions, fun):
    return [tgt for f, tgt, _ in minions.jobs if f == fun]


def test_a_breaking_canary_stops_the_rollout_undone_and_exits_non_zero(runner):
    def apply(m):
        return state(False, comment="wg0: change undone: peers did not answer within 10 s")

    minions = runner.use(fleet_answers(apply))
    ret = runner.rollout("*", canary="hub")
    assert ret["ok"] is False and ret["stopped"] == 0
    assert ret["untouched"] == ["s1", "s2", "s3"]
    (wave,) = ret["waves"]
    assert wave["minions"] == ["hub"] and wave["undone"] is True
    assert wave["health"]["hub"]["ok"] is False
    assert "change undone" in wave["health"]["hub"]["problems"][0]
    assert jobs(minions, "state.apply") == [["hub"]]
    assert jobs(minions, "wireguard.confirm_undo") == [["hub"]]
    assert jobs(minions, "wireguard.confirm_accept") == []
    # salt-run exits with the return's retcode, orchestrate reads the context's
    assert ret["retcode"] == 1 and runner.__context__["retcode"] == 1


def test_healthy_waves_are_accepted_with_the_hold_override(runner):
    minions = runner.use(fleet_answers(lambda m: state(changes={"x": 1})))
    ret = runner.rollout("*", batch="50%", canary="hub", hold=60)
    assert ret == {
        "ok": True,
        "waves": ret["waves"],
        "stopped": None,
        "untouched": [],
        "retcode": 0,
    }
    assert [w["minions"] for w in ret["waves"]] == [["hub"], ["s1", "s2"], ["s3"]]
    assert all(w["undone"] is False for w in ret["waves"])
    assert jobs(minions, "wireguard.confirm_accept") == [["hub"], ["s1", "s2"], ["s3"]]
    # each wave's partners were checked: the hub's spokes, the spokes' hub
    checks = jobs(minions, "wireguard.check")
    assert checks == ["*", ["hub", "s1", "s2", "s3"], ["hub", "s1", "s2"], ["hub", "s3"]]
    assert set(ret["waves"][0]["health"]) == {"hub", "s1", "s2", "s3"}
    for f, _, arg in minions.jobs:
        if f == "state.apply":
            assert arg == ["wireguard"]
    assert "retcode" not in runner.__context__


def test_a_partner_that_stops_hearing_the_wave_stops_the_rollout(runner):
    answers = fleet_answers(lambda m: state(changes={"x": 1}))
    after = {"hub": check(HUB, [S1, S2, S3], errors=[("handshake", S1, "no handshake")])}
    calls = []

    def checks(tgt, _):
        calls.append(tgt)
        base = {m: FLEET_CHECKS[m] for m in (["hub", "s1", "s2", "s3"] if tgt == "*" else tgt)}
        return base if len(calls) == 1 else {**base, **{m: after[m] for m in tgt if m in after}}

    answers["wireguard.check"] = checks
    minions = runner.use(answers)
    ret = runner.rollout("s*")
    assert ret["stopped"] == 0 and ret["waves"][0]["minions"] == ["s1"]
    assert ret["waves"][0]["health"]["hub"]["ok"] is False
    assert ret["untouched"] == ["s2", "s3"]
    assert jobs(minions, "wireguard.confirm_undo") == [["s1"]]


def test_the_hold_goes_to_the_minions_as_a_pillar_override(runner, monkeypatch):
    sent = []

    class Client(Minions):
        def cmd(self, tgt, fun, arg=(), tgt_type="glob", timeout=None, **kw):
            sent.append((fun, kw.get("kwarg"), timeout))
            return super().cmd(tgt, fun, arg, tgt_type, timeout, kw.get("full_return", False))

    client = Client(fleet_answers(lambda m: state()))
    import salt.client

    monkeypatch.setattr(salt.client, "get_local_client", lambda **_: client)
    runner.rollout("hub", hold="45", timeout=20)
    (applied,) = [s for s in sent if s[0] == "state.apply"]
    assert applied == ("state.apply", {"pillar": {"wireguard_rollout": {"hold": 45}}}, 20)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tgt": ""}, "tgt is a target"),
        ({"tgt": "*", "batch": "0"}, "batch is a number"),
        ({"tgt": "*", "hold": 2}, "hold is a whole number"),
        ({"tgt": "*", "canary": ["a"]}, "canary is a minion id"),
        ({"tgt": "*", "canary": "nobody"}, "canary 'nobody' is not one"),
        ({"tgt": "*", "timeout": 0}, "timeout is a number"),
    ],
)
def test_bad_arguments_are_refused_before_any_state_run(runner, kwargs, match):
    minions = runner.use(fleet_answers(lambda m: state()))
    with pytest.raises(SaltInvocationError, match=match):
        runner.rollout(**kwargs)
    assert jobs(minions, "state.apply") == []
