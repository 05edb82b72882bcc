"""wgf_reload: after a sync, a running minion uses the new utils, and those that import
them see the new code; what did not change is not executed again."""

import os
import sys
import time

import pytest

import wgf_reload

PREFIX = "wgfreloadtest_"


@pytest.fixture
def utils(tmp_path, monkeypatch):
    """Three utils on sys.path: ``zbase`` (a counter of its executions), ``user`` (takes a
    function from ``zbase`` by name) and ``other`` (imports nothing); a writer to change
    one on disk, as ``saltutil.sync_all`` does."""
    monkeypatch.syspath_prepend(str(tmp_path))
    runs = tmp_path / "runs"

    def write(name, body):
        path = tmp_path / f"{PREFIX}{name}.py"
        path.write_text(f"open({str(runs)!r}, 'a').write({name!r} + '\\n')\n{body}")
        stamp = time.time_ns() + 10**9 * len(list(tmp_path.iterdir()))
        os.utime(path, ns=(stamp, stamp))  # a sync within the same mtime tick is seen too

    write("zbase", "def version():\n    return 1\n")
    write("user", f"from {PREFIX}zbase import version\n\ndef answer():\n    return version()\n")
    write("other", "X = 1\n")
    for name in ("zbase", "user", "other"):
        __import__(PREFIX + name)
    yield write, lambda: runs.read_text().split()
    for name in list(sys.modules):
        if name.startswith(PREFIX):
            del sys.modules[name]


def test_a_changed_util_and_those_that_import_it_are_reloaded_in_order(utils):
    write, runs = utils
    wgf_reload.refresh(PREFIX)  # the first look stamps what is loaded
    before = len(runs())
    write("zbase", "def version():\n    return 2\n")
    assert wgf_reload.refresh(PREFIX) == [f"{PREFIX}zbase", f"{PREFIX}user"]
    assert sys.modules[f"{PREFIX}user"].answer() == 2
    # zbase first, though it sorts last: user takes its new function
    assert runs()[before:] == ["zbase", "user"]


def test_nothing_changed_nothing_runs_again(utils):
    _, runs = utils
    wgf_reload.refresh(PREFIX)
    before = len(runs())
    assert wgf_reload.refresh(PREFIX) == []
    assert len(runs()) == before


@pytest.mark.usefixtures("utils")
def test_a_util_never_seen_is_reloaded_once():
    """A util an older formula imported carries no stamp: it may be stale, read it again."""
    assert sorted(wgf_reload.refresh(PREFIX)) == sorted(
        f"{PREFIX}{n}" for n in ("zbase", "user", "other")
    )
    assert wgf_reload.refresh(PREFIX) == []


def test_every_util_of_the_formula_reloads_cleanly():
    """The real utils, in the order refresh finds: each after what it imports."""
    utils_dir = os.path.join(os.path.dirname(wgf_reload.__file__))
    for entry in sorted(os.listdir(utils_dir)):
        if entry.startswith("wgf_") and entry.endswith(".py"):
            __import__(entry[:-3])
    loaded = {n: m for n, m in sys.modules.items() if n.startswith("wgf_") and n != "wgf_reload"}
    order = wgf_reload._order(loaded, "wgf_")
    assert order.index("wgf_addr") < order.index("wgf_schema")
    assert order.index("wgf_keys") < order.index("wgf_clients") < order.index("wgf_schema")
    for module in loaded.values():
        setattr(module, wgf_reload.STAMP, None)
    assert sorted(wgf_reload.refresh()) == sorted(loaded)
