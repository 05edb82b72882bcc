"""One way to do each thing in the tests: what several test modules share lives in
``tests/support/``, a tier's ``conftest.py`` or a helper module of the tier, never in a
test module that others import."""

import ast

import pytest

from tests.unit.conftest import REPO


def imported_test_modules(source):
    """The ``tests.<tier>.test_*`` modules that ``source`` imports, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tests" and len(parts) > 2 and parts[2].startswith("test_"):
                found.add(".".join(parts[:3]))
    return sorted(found)


def test_no_test_module_imports_another():
    offenders = {
        str(path.relative_to(REPO)): imported
        for path in sorted((REPO / "tests").rglob("test_*.py"))
        if (imported := imported_test_modules(path.read_text()))
    }
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from tests.unit.test_trust import Minions\n", ["tests.unit.test_trust"]),
        (
            "def f():\n    from tests.e2e import test_live_changes\n",
            ["tests.e2e.test_live_changes"],
        ),
        ("import tests.functional.test_cli as cli\n", ["tests.functional.test_cli"]),
        ("from tests.unit.conftest import Runner\nfrom tests.support import fuzz\n", []),
    ],
)
def test_the_check_finds_an_import_of_a_test_module_however_written(source, found):
    assert imported_test_modules(source) == found
