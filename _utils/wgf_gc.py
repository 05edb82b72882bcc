"""Python's cyclic garbage collector paused while the formula builds its data (issue 24).

A minion's job process holds hundreds of thousands of objects the collector tracks (a
10,000-client pillar, its validated copy, the clients record). The pillar pipeline and
the states make dicts and lists by the ten thousand, and that many allocations start
the collector again and again; every few rounds it walks every tracked object of the
process (a full collection: 40-80 ms on the lab's 10,000-client hub, six of them in a
no-op run). What the formula builds holds no reference cycle, so nothing is lost by
waiting: paused, the collector runs once afterwards, over what is new, and a no-op
run makes as many full collections as a one-state one.

The collector is one for the whole process: a pause counts its holders (a threaded
minion runs jobs side by side) and the last one to leave turns it back on, if it was on
when the first came.
"""

import contextlib
import gc
import threading

_LOCK = threading.Lock()
#: The pauses under way, and whether the collector was on when the first began.
_HELD = {"count": 0, "was_on": False}


@contextlib.contextmanager
def paused():
    """The collector off for the ``with`` block (nested and concurrent blocks share one
    pause), on again afterwards if it was before."""
    with _LOCK:
        if _HELD["count"] == 0:
            _HELD["was_on"] = gc.isenabled()
            gc.disable()
        _HELD["count"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _HELD["count"] -= 1
            if _HELD["count"] == 0 and _HELD["was_on"]:
                gc.enable()
