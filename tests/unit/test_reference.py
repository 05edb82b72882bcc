"""The function, state and runner reference has one source, the docstrings:
docs/reference.md is made from them, and no other page repeats or invents a function."""

import ast
import re

import pytest

from tests.support.docs import PAGES, REPO, make_reference

#: ``wireguard.<word>`` that are file names, not functions.
FILE_SUFFIXES = {"conf", "py", "svg", "dot", "sls", "config_dir", "prom", "yml"}


def loader_functions():
    names = set()
    for _, _, paths in make_reference.SECTIONS:
        for path in paths:
            names |= {name for name, _, _ in make_reference.public_functions(path)[1]}
    return names


def test_the_reference_page_is_made_from_the_docstrings():
    assert (REPO / "docs" / "reference.md").read_text() == make_reference.render(), (
        "docs/reference.md is out of date: run .venv/bin/python docs/make_reference.py"
    )


#: The files of the execution module ``wireguard`` (one module, split by concern).
WIREGUARD_MODULE = [
    path
    for path in make_reference.loader_files("_modules")
    if make_reference.public_functions(path)[0] == "wireguard"
]


@pytest.mark.parametrize(
    "path", [*WIREGUARD_MODULE, "_runners/wireguard.py", "_runners/wireguard_keys.py"]
)
def test_every_public_function_has_a_cli_example(path):
    _, functions = make_reference.public_functions(path)
    assert functions
    missing = [name for name, _, doc in functions if "CLI Example:" not in doc]
    assert not missing, f"{path}: no 'CLI Example:' in {missing}"


def test_every_public_function_is_on_the_page_with_its_arguments():
    page = (REPO / "docs" / "reference.md").read_text()
    for _, _, paths in make_reference.SECTIONS:
        for path in paths:
            tree = ast.parse((REPO / path).read_text())
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                    for arg in node.args.args:
                        assert re.search(rf"### `[\w.]*{node.name}\([^)]*\b{arg.arg}\b", page), (
                            path,
                            node.name,
                            arg.arg,
                        )


def test_every_function_of_the_execution_module_is_documented_once_under_wireguard():
    """Whichever of its files defines it, a function is ``wireguard.<name>``, once."""
    assert len(WIREGUARD_MODULE) > 1 and WIREGUARD_MODULE[0] == "_modules/wireguard.py"
    page = (REPO / "docs" / "reference.md").read_text()
    section = page.split("\n## Execution module\n", 1)[1].split("\n## ", 1)[0]
    for path in WIREGUARD_MODULE:
        for name, _, _ in make_reference.public_functions(path)[1]:
            assert len(re.findall(rf"^### `wireguard\.{name}\(", section, re.M)) == 1, name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_writes_a_function_table_again(page):
    """A table row that starts with a call signature is the reference written twice."""
    if page.name == "reference.md":
        return
    rows = [
        line
        for line in page.read_text().splitlines()
        if re.match(r"\|\s*`(wireguard\.)?[a-z_]+\([^`]*\)`", line)
    ]
    assert not rows, rows


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_names_a_function_the_code_does_not_have(page):
    functions = loader_functions()
    sls = {
        ".".join(p.with_suffix("").relative_to(REPO).parts)
        for p in (REPO / "wireguard").rglob("*.sls")
    }
    sls |= {name.removesuffix(".init") for name in sls}
    unknown = set()
    # a pillar top file's "- wireguard.server" names a pillar file, not a function
    text = re.sub(r"(?m)^\s*- wireguard\.[\w.]+$", "", page.read_text())
    for match in re.finditer(r"\bwireguard(?:_rotate|_layout)?\.([a-z_]+)(?:\.[a-z_]+)*", text):
        if match.group(1) in functions | FILE_SUFFIXES or match.group(0) in sls:
            continue
        unknown.add(match.group(0))
    assert not unknown, sorted(unknown)
