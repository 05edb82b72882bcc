"""Python's cyclic garbage collector paused while the formula builds its data (issue 24).

A minion's job process holds hundreds of thousands of objects the collector tracks (a
10,000-client pillar, its validated copy, the clients record). The pillar pipeline and
the states make dicts and lists by the ten thousand, and that many allocations start
the collector again and again; every few rounds it walks every tracked object of the
process (a full collection: 40-80 ms on the lab's 10,000-client hub, six of them in a
no-op run). What the formula builds holds no reference cycle, so nothing is lost by
waiting: paused, the collector runs once afterwards, over what is new, and a no-op
run makes as many full collections as a one-state one.

The collector is one for the whole process: a pause turns it back on only if it was on
when the pause began. A pause inside another (or beside it, in a threaded minion's other
job) found it off and leaves it to the first; should the first end before it, the rest
of it runs with the collector on, and nothing is lost either way. No state is kept, so
a reload of this file (``wgf_reload``) in the middle of a pause changes nothing.
"""

import contextlib
import gc


@contextlib.contextmanager
def paused():
    """The collector off for the ``with`` block, on again afterwards if it was before."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
