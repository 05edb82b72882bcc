"""One job from a runner to its minions (``_utils/wgf_jobs.py``): the rollout's and
verify's jobs go through it, Salt's envelope is taken off each return, and the client is
destroyed also when the job raises."""

import pytest
import salt.client

import wgf_jobs
from tests.unit.conftest import REPO


class Client:
    def __init__(self, answer=None, error=None):
        self.answer, self.error, self.calls, self.destroyed = answer, error, [], False

    def cmd(self, tgt, fun, arg, **kwargs):
        self.calls.append((tgt, fun, arg, kwargs))
        if self.error:
            raise self.error
        return self.answer

    def destroy(self):
        self.destroyed = True


@pytest.fixture
def client(monkeypatch):
    made = Client({"a": {"ret": {"ok": 1}, "retcode": 0}, "b": "Minion did not return"})
    monkeypatch.setattr(salt.client, "get_local_client", lambda mopts: made)
    return made


def test_each_return_comes_out_of_salts_envelope(client):
    got = wgf_jobs.ask({"timeout": 7}, ["a", "b"], "wireguard.check", kwarg={"sample": 0})
    assert got == {"a": {"ok": 1}, "b": None}
    ((tgt, fun, arg, kwargs),) = client.calls
    assert (tgt, fun, arg) == (["a", "b"], "wireguard.check", [])
    assert kwargs["full_return"] is True and kwargs["tgt_type"] == "list"
    assert kwargs["timeout"] == 7 and kwargs["kwarg"] == {"sample": 0}
    assert client.destroyed


def test_a_timeout_given_wins_and_more_goes_to_the_client(client):
    wgf_jobs.ask({}, "*", "test.ping", tgt_type="glob", timeout=3, gather_job_timeout=5)
    kwargs = client.calls[0][3]
    assert (kwargs["timeout"], kwargs["gather_job_timeout"]) == (3, 5)


def test_no_answer_is_an_empty_answer_and_a_failed_job_still_destroys(monkeypatch):
    quiet = Client(None)
    monkeypatch.setattr(salt.client, "get_local_client", lambda mopts: quiet)
    assert wgf_jobs.ask({}, ["a"], "test.ping") == {}
    broken = Client(error=RuntimeError("master gone"))
    monkeypatch.setattr(salt.client, "get_local_client", lambda mopts: broken)
    with pytest.raises(RuntimeError):
        wgf_jobs.ask({}, ["a"], "test.ping")
    assert broken.destroyed


def test_succeeded_keeps_only_the_minions_whose_job_ended_well(monkeypatch):
    made = Client(
        {
            "a": {"ret": True, "retcode": 0},
            "b": {"ret": "Module function x is not available", "retcode": 1},
            "c": "Minion did not return",
        }
    )
    monkeypatch.setattr(salt.client, "get_local_client", lambda mopts: made)
    assert wgf_jobs.ask({}, ["a", "b", "c"], "mine.update", succeeded=True) == {"a": True}


@pytest.mark.parametrize(
    "runner", ["wireguard_rollout.py", "wireguard_verify.py", "wireguard_keys.py"]
)
def test_the_rollout_and_verify_ask_through_the_one_helper(runner):
    text = (REPO / "_runners" / runner).read_text()
    assert "wgf_jobs.ask(" in text
    assert "get_local_client" not in text and "full_return" not in text
