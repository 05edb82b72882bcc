"""Unit tests import the formula's pure code (``_utils/wgf_*.py``) directly: plain
Python, no Salt loader and no stubbed dunders."""

import importlib.util
import pathlib
import sys

import pytest

from tests.support.render import Renderer

REPO = pathlib.Path(__file__).resolve().parents[2]
UTILS = str(REPO / "_utils")
if UTILS not in sys.path:
    sys.path.insert(0, UTILS)


def load(path, name):
    """A loader module as a plain Python module, for its dunder-free functions only."""
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StateModule:
    """The state module ``wireguard`` as Salt loads it from some of its files in
    ``_states/`` (``files``: their names): each file a plain module (named
    ``<file>_<tag>``), one ``__salt__``, ``__opts__`` and ``__context__`` shared by all;
    any other name is read from the first file that defines it."""

    def __init__(self, files, salt, opts, context=None, tag="under_test"):
        self.__opts__ = opts
        self.__context__ = {} if context is None else context
        self.files = []
        for name in files:
            module = load(f"_states/{name}.py", f"{name}_{tag}")
            module.__salt__, module.__opts__, module.__context__ = salt, opts, self.__context__
            self.files.append(module)

    def __getattr__(self, name):
        for module in self.files:
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(name)


class Runner:
    """The runner ``wireguard`` as Salt's loader makes it of the files in ``_runners/``
    (each declares ``__virtualname__ = "wireguard"``): each file a plain module, all of
    them seen as one. A dunder set here (``__opts__``, ``__context__``) reaches every
    file; any other name is read from, and patched in, the file that defines it (and
    deleting a patched name puts the file's own back, as ``monkeypatch`` undoes)."""

    def __init__(self, name):
        modules = [
            load(f"_runners/{path.name}", f"{name}_{path.stem}")
            for path in sorted((REPO / "_runners").glob("*.py"))
        ]
        object.__setattr__(self, "modules", modules)
        object.__setattr__(self, "originals", {})

    def _owner(self, name):
        for module in self.modules:
            if name in vars(module):
                return module
        return None

    def __getattr__(self, name):
        owner = self._owner(name)
        if owner is None:
            raise AttributeError(name)
        return getattr(owner, name)

    def __setattr__(self, name, value):
        owner = self._owner(name)
        if name.startswith("__") and name.endswith("__"):
            for module in self.modules:
                setattr(module, name, value)
        elif owner is not None:
            self.originals.setdefault(name, getattr(owner, name))
            setattr(owner, name, value)
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if name in self.originals:
            setattr(self._owner(name), name, self.originals[name])
        else:
            object.__delattr__(self, name)


class Minions:
    """Stand-in minions for a runner's ``LocalClient``: what each answers (``{function:
    {minion: return}}``, or a callable of the target and arguments), and every job sent."""

    def __init__(self, answers):
        self.answers, self.jobs, self.kwargs = answers, [], []

    def get_local_client(self, **_):
        return self

    def destroy(self):
        pass

    def cmd(
        self, tgt, fun, arg=(), tgt_type="glob", timeout=None, full_return=False, kwarg=None, **_
    ):
        self.jobs.append((fun, tgt, arg))
        self.kwargs.append(kwarg)
        name = fun if isinstance(fun, str) else tuple(fun)
        got = self.answers.get(name, {})
        got = got(tgt, arg) if callable(got) else got
        if full_return:  # Salt's client always answers {minion: return}
            return {m: {"ret": r, "retcode": 0} for m, r in got.items()}
        return got


def runner_with_stand_ins(name, opts, monkeypatch):
    """The runner (``Runner``) with ``opts``; ``runner.use(answers)`` puts stand-in
    ``Minions`` behind Salt's LocalClient and returns them."""
    import salt.client

    module = Runner(name)
    module.__opts__ = opts
    module.__context__ = {}

    def use(answers):
        minions = Minions(answers)
        monkeypatch.setattr(salt.client, "get_local_client", minions.get_local_client)
        return minions

    module.use = use
    return module


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    """The formula rendered by the real Salt (tests/support/render.py): one worker
    process per test module."""
    r = Renderer(tmp_path_factory.mktemp("render"))
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _quota_state_dir(tmp_path, monkeypatch):
    """The quota saver's files (``wgf_quota.STATE_DIR``) of a test go to its own
    directory, never to the machine's /var/lib."""
    import wgf_quota

    monkeypatch.setattr(wgf_quota, "STATE_DIR", str(tmp_path / "quota"))
