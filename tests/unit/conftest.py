"""Unit tests load the formula's Salt modules as plain Python modules."""

import importlib.util
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
# The loader modules import the formula's utils by name, as Salt's utils_dirs allow.
if str(REPO / "_utils") not in sys.path:
    sys.path.insert(0, str(REPO / "_utils"))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def wgmod():
    module = load("_modules/wireguard.py", "wireguard_module_under_test")
    module.__salt__ = {"pillar.get": lambda key, default=None, **_: default}
    module.__opts__ = {"id": "minion1"}
    module.__context__ = {}
    return module
