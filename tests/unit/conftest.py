"""Unit tests import the formula's pure code (``_utils/wgf_*.py``) directly: plain
Python, no Salt loader and no stubbed dunders."""

import importlib.util
import pathlib
import sys

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
