"""The utils import each other one way: leaf checks, then the schema, then the networks
compiler, then the pipeline's resolver. Read from the source, function-level imports
too, so a circle cannot hide behind "uses the other at call time only"."""

import ast
import pathlib

import pytest

UTILS = pathlib.Path(__file__).resolve().parents[2] / "_utils"


def imports_of(path):
    """The ``wgf_*`` modules one util imports anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return {name for name in found if name.startswith("wgf_")} - {path.stem}


def graph(utils=UTILS):
    return {path.stem: imports_of(path) for path in sorted(utils.glob("wgf_*.py"))}


def cycle(edges):
    """One import circle of ``edges`` as a list of names, or None."""
    state = {}

    def visit(name, path):
        state[name] = "open"
        for dep in sorted(edges.get(name, ())):
            if state.get(dep) == "open":
                return [*path[path.index(dep) :], dep] if dep in path else [name, dep]
            if dep not in state:
                found = visit(dep, [*path, dep])
                if found:
                    return found
        state[name] = "done"
        return None

    for name in sorted(edges):
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


def test_no_util_imports_another_in_a_circle():
    edges = graph()
    assert len(edges) >= 20
    assert cycle(edges) is None, " -> ".join(cycle(edges))


def test_the_pillar_pipeline_runs_one_way():
    edges = graph()
    assert "wgf_schema" in edges["wgf_networks"]
    assert {"wgf_schema", "wgf_networks"} <= edges["wgf_pipeline"]
    assert {"wgf_networks", "wgf_pipeline", "wgf_psk"}.isdisjoint(edges["wgf_schema"])
    assert "wgf_psk" not in edges["wgf_networks"]


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import wgf_b\n", ["wgf_a", "wgf_b", "wgf_a"]),
        ("def later():\n    import wgf_b  # at call time only\n", ["wgf_a", "wgf_b", "wgf_a"]),
        ("from wgf_b import thing\n", ["wgf_a", "wgf_b", "wgf_a"]),
        ("import os\n", None),
    ],
)
def test_the_check_finds_a_circle_however_it_is_imported(tmp_path, source, found):
    (tmp_path / "wgf_a.py").write_text(source, encoding="utf-8")
    (tmp_path / "wgf_b.py").write_text("import wgf_a\n", encoding="utf-8")
    assert cycle(graph(tmp_path)) == found
