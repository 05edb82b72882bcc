"""The namespaces tests and benchmarks create are removed also when their process is
stopped: SIGTERM runs the tear-down, and what a SIGKILL leaves the next run removes."""

import pathlib
import signal
import subprocess
import sys

from tests.support.netns import Netns

REPO = pathlib.Path(__file__).resolve().parents[2]
CHILD = """
import sys, time
from tests.support.netns import Netns
ns = Netns("stopped").create()
try:
    print(ns.netns, flush=True)
    time.sleep(60)
finally:
    ns.delete()
"""


def start_child():
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=REPO, text=True, stdout=subprocess.PIPE
    )
    name = child.stdout.readline().strip()
    assert pathlib.Path(f"/run/netns/{name}").exists(), name
    return child, name


def test_sigterm_runs_the_tear_down():
    child, name = start_child()
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=30)
    assert not pathlib.Path(f"/run/netns/{name}").exists()


def test_what_a_killed_run_left_the_next_one_removes():
    child, name = start_child()
    child.kill()
    child.wait(timeout=30)
    assert pathlib.Path(f"/run/netns/{name}").exists(), "SIGKILL ran no tear-down"
    ns = Netns("next").create()
    try:
        assert not pathlib.Path(f"/run/netns/{name}").exists()
        assert pathlib.Path(f"/run/netns/{ns.netns}").exists(), "a live one is kept"
    finally:
        ns.delete()
