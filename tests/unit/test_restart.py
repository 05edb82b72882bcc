"""The config state's restart (wgf_state.restarted / restart_with_fallback) against a
fake systemd unit with systemd's default start limit: a restart systemd refuses for
the limit is reset and retried, a failing new config is put back, and an interface
that was up before is up afterwards, whatever restarts came before."""

import pathlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salt.exceptions import CommandExecutionError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "_utils"))
import wgf_state  # the formula's utils

UNIT = "wg-quick@wg0"
TOO_OFTEN = f"Job for {UNIT}.service failed because start of the service was attempted too often."
HOOK_FAILED = f"Job for {UNIT}.service failed because the control process exited with error code."


class FakeUnit:
    """A oneshot wg-quick unit as systemd 252 runs it (measured in the lab): a restart
    stops it (the interface goes) and starts it; more than ``burst`` starts within
    ``interval`` seconds are refused (Result ``start-limit-hit``, the interface stays
    down) until ``reset-failed``. A config holding "bad" fails to start (a hook)."""

    def __init__(self, config="old", starts=(), burst=5, interval=10.0):
        self.now = 100.0
        self.config = config
        self.starts = list(starts)  # times of earlier starts
        self.burst, self.interval = burst, interval
        self.up = config  # the config the running interface was built from, or None
        self.result = "success"
        self.calls = []

    def restart(self):
        """Salt's systemd service.restart: True, or CommandExecutionError."""
        self.calls.append("restart")
        self.now += 0.2
        self.up = None
        self.starts = [t for t in self.starts if self.now - t < self.interval]
        if len(self.starts) >= self.burst:
            self.result = "start-limit-hit"
            raise CommandExecutionError(TOO_OFTEN)
        self.starts.append(self.now)
        if "bad" in self.config:
            self.result = "exit-code"
            raise CommandExecutionError(HOOK_FAILED)
        self.result, self.up = "success", self.config
        return True

    def show_result(self):
        self.calls.append("show")
        return self.result

    def reset_failed(self):
        self.calls.append("reset-failed")
        self.starts.clear()
        self.result = "success"

    def systemd(self):
        return {"result": self.show_result, "reset_failed": self.reset_failed}

    def write(self, config):
        return lambda: setattr(self, "config", config)


def apply(unit, new, systemd=True):
    """What the config state does: write ``new``, restart, put the old one back."""
    old = unit.config
    unit.config = new
    return wgf_state.restart_with_fallback(
        UNIT,
        "/etc/wireguard/wg0.conf",
        unit.restart,
        unit.write(old),
        lambda: "the service's log",
        **(unit.systemd() if systemd else {}),
    )


def rate_limited():
    """The unit as after `systemctl enable --now` and four restarts within 2 s."""
    return FakeUnit(starts=[99.0, 99.5, 99.6, 99.7, 99.8])


def test_a_restart_refused_for_the_start_limit_is_reset_and_retried():
    unit = rate_limited()
    assert apply(unit, "new") is True
    assert unit.up == "new" and unit.result == "success"
    assert unit.calls == ["restart", "show", "reset-failed", "restart"]


def test_a_restart_within_the_limit_touches_nothing_else():
    unit = FakeUnit(starts=[99.0])
    assert apply(unit, "new") is False
    assert unit.up == "new"
    assert unit.calls == ["restart"]


def test_a_failing_new_config_while_rate_limited_is_put_back_and_runs():
    unit = rate_limited()
    with pytest.raises(CommandExecutionError, match="put back and is running again") as exc:
        apply(unit, "new bad hook")
    assert "the service's log" in str(exc.value)
    assert unit.config == "old" and unit.up == "old"
    assert unit.calls.count("reset-failed") == 1


def test_the_put_back_restart_is_reset_too_when_it_hits_the_limit():
    """Four starts allowed: the new config's failed start is the fourth, so the put
    back restart is the one systemd refuses."""
    unit = FakeUnit(starts=[99.6, 99.7, 99.8], burst=4)
    with pytest.raises(CommandExecutionError, match="put back and is running again"):
        apply(unit, "new bad hook")
    assert unit.up == "old"
    assert unit.calls == ["restart", "show", "restart", "show", "reset-failed", "restart"]


def test_a_start_that_fails_on_its_own_is_not_retried():
    unit = FakeUnit()
    with pytest.raises(CommandExecutionError, match="put back and is running again"):
        apply(unit, "bad")
    assert unit.calls == ["restart", "show", "restart"]
    assert unit.up == "old"


def test_without_systemd_nothing_is_reset():
    """OpenRC: no systemctl; a failed restart is what it is."""
    unit = FakeUnit()
    with pytest.raises(CommandExecutionError, match="put back and is running again"):
        apply(unit, "bad", systemd=False)
    assert unit.calls == ["restart", "restart"] and unit.up == "old"


def test_the_refusal_is_recognised_from_the_message_when_show_fails():
    unit = rate_limited()

    def broken_show():
        raise CommandExecutionError("systemctl show: Failed to connect to bus")

    assert wgf_state.restarted(unit.restart, broken_show, unit.reset_failed) == (None, True)
    assert unit.up == "old"


def test_a_failing_reset_still_puts_the_old_file_back():
    unit = rate_limited()

    def refused_reset():
        raise CommandExecutionError("systemctl reset-failed: Access denied")

    unit.config = "new"
    with pytest.raises(CommandExecutionError, match=r"put back \(which failed too\)"):
        wgf_state.restart_with_fallback(
            UNIT,
            "/x",
            unit.restart,
            unit.write("old"),
            lambda: "log",
            unit.show_result,
            refused_reset,
        )
    assert unit.config == "old", "the old file was not put back"
    assert unit.calls == ["restart", "show", "restart", "show"]


def test_a_failure_with_no_config_before_says_so():
    unit = FakeUnit(config="bad")
    with pytest.raises(CommandExecutionError, match=f"{UNIT} failed to restart"):
        wgf_state.restart_with_fallback(
            UNIT, "/x", unit.restart, None, lambda: "log", **unit.systemd()
        )


@settings(max_examples=300, deadline=None)
@given(
    starts=st.lists(st.floats(min_value=90.0, max_value=100.0), max_size=12),
    burst=st.integers(min_value=1, max_value=6),
    good=st.booleans(),
)
def test_an_interface_up_before_is_up_after_whatever_restarts_came_before(starts, burst, good):
    unit = FakeUnit(starts=sorted(starts), burst=burst)
    if good:
        apply(unit, "new")
        assert unit.up == "new"
    else:
        with pytest.raises(CommandExecutionError, match="running again"):
            apply(unit, "new bad")
        assert unit.up == "old"
    assert unit.result == "success"


def test_start_limit_hit():
    assert wgf_state.start_limit_hit("start-limit-hit")
    assert wgf_state.start_limit_hit(None, TOO_OFTEN)
    assert not wgf_state.start_limit_hit("exit-code", HOOK_FAILED)
    assert not wgf_state.start_limit_hit(None)


def test_the_config_comment_says_what_was_reset():
    conf = "/etc/wireguard/wg0.conf"
    restarted = {
        "changes": {
            "diff": "x",
            "restarted": {
                "service": UNIT,
                "why": "its table mode changed",
                "start_limit_reset": True,
            },
        }
    }
    assert wgf_state.config_comment(conf, UNIT, "its table mode changed", restarted) == (
        f"{conf} updated; {UNIT} restarted because its table mode changed; systemd's start "
        f"limit of {UNIT} was reset (it had refused to start it again so soon)"
    )
    down = {"changes": {"start_limit_reset": {"service": UNIT}}}
    assert wgf_state.config_comment(conf, UNIT, None, down, test=True) == (
        f"{conf} is as pillar says; systemd's start limit of {UNIT} would be reset (it had "
        "refused to start it again so soon)"
    )
    plain = {"changes": {"diff": "x", "restarted": {"service": UNIT, "why": "hooks"}}}
    assert wgf_state.config_comment(conf, UNIT, "hooks", plain, test=True) == (
        f"{conf} would be updated and {UNIT} restarted"
    )
    assert wgf_state.config_comment(conf, UNIT, None, {"changes": {"diff": "x"}}) == (
        f"{conf} updated"
    )
