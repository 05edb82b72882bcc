"""The garbage collector's pause (``wgf_gc.paused``): off inside, back as it was after,
whatever the nesting, the threads and the exceptions."""

import gc
import importlib
import threading

import pytest

import wgf_gc
import wgf_state


@pytest.fixture(autouse=True)
def collector_on():
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_off_inside_and_on_again_after():
    with wgf_gc.paused():
        assert not gc.isenabled()
        with wgf_gc.paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the outer pause still holds"
    assert gc.isenabled()


def test_an_exception_inside_turns_it_back_on():
    with pytest.raises(ValueError), wgf_gc.paused():
        raise ValueError("a state failed")
    assert gc.isenabled()


def test_a_collector_off_before_stays_off():
    gc.disable()
    with wgf_gc.paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_of_two_threads_leave_it_on():
    """A threaded minion: one job's pause begins inside another's and ends after it."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with wgf_gc.paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with wgf_gc.paused():
            second_in.set()
            first_out.wait(5)

    threads = [threading.Thread(target=f) for f in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert first_out.is_set() and gc.isenabled()


def test_a_reload_in_the_middle_of_a_pause_leaves_it_on():
    """``saltutil.sync_all`` brought a new copy while a state ran (``wgf_reload``)."""
    with wgf_gc.paused():
        importlib.reload(wgf_gc)
    assert gc.isenabled()


def test_a_state_runs_with_the_collector_paused_unless_it_waits():
    seen = {}

    def state(ret, label):
        seen[label] = gc.isenabled()
        return ret

    wgf_state.guarded({"name": "wg0"}, state, "builds")
    wgf_state.guarded({"name": "wg0"}, state, "waits", waits=True)
    assert seen == {"builds": False, "waits": True}
    assert gc.isenabled()
