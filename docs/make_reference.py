"""Write docs/reference.md from the docstrings of the formula's loader modules.

The docstrings are the one source of the function, state and runner reference: this
script turns them into Markdown, and a unit test fails when the committed page differs
from what it makes. Run it after changing a public function:

    .venv/bin/python docs/make_reference.py
"""

import ast
import importlib
import inspect
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "_utils"))  # a default taken from a util shows its value
OUTPUT = REPO / "docs" / "reference.md"
#: (title, Salt's name for the kind, the loader directory), in the page's order.
KINDS = (
    ("Execution module", "salt-call", "_modules"),
    ("States", "state", "_states"),
    ("Runner", "salt-run", "_runners"),
    ("Beacon", "beacon", "_beacons"),
    ("External pillar", "ext_pillar", "_pillar"),
)


def loader_files(directory):
    """The loader files of one kind, ``wireguard.py`` first (it is the main one)."""
    names = sorted(p.name for p in (REPO / directory).glob("*.py"))
    return [f"{directory}/{n}" for n in sorted(names, key=lambda n: n != "wireguard.py")]


SECTIONS = tuple((title, kind, loader_files(d)) for title, kind, d in KINDS)
HEADER = """# Reference

The public functions, states and runners of the formula, with their arguments, made
from their docstrings by `docs/make_reference.py` (do not edit this page by hand; run
that script). The pillar is described in docs/pillar.md.
"""


def virtual_name(tree, path):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__virtualname__" for t in node.targets
        ):
            return node.value.value
    return Path(path).stem


def public_functions(path):
    """``(virtual name, [(function name, signature, docstring)])`` of one loader file:
    its module-level functions whose names do not start with ``_``."""
    tree = ast.parse((REPO / path).read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            found.append((node.name, signature(node.args), ast.get_docstring(node) or ""))
    return virtual_name(tree, path), found


def signature(args):
    """The arguments a caller passes: positional and keyword ones with their defaults
    (``*args``/``**kwargs`` are the functions' own plumbing and left out)."""
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = [*zip(positional, defaults, strict=True)]
    pairs += zip(args.kwonlyargs, args.kw_defaults, strict=True)
    return ", ".join(a.arg if d is None else f"{a.arg}={default(d)}" for a, d in pairs)


def default(node):
    """A default as a caller sees it: a util's constant (``wgf_staleness.STALE_AFTER``)
    by its value, anything else as written."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id.startswith("wgf_")
    ):
        return repr(getattr(importlib.import_module(node.value.id), node.attr))
    return ast.unparse(node)


def markdown(docstring):
    """A Salt-style (reStructuredText) docstring as Markdown: code blocks fenced,
    argument definitions as a list, double backticks single."""
    lines = inspect.cleandoc(docstring).splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        directive = re.match(r"\s*\.\. code-block::\s*(\S*)", line)
        indented_next = i + 1 < len(lines) and lines[i + 1].startswith((" ", "\t"))
        if directive:
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            code = inspect.cleandoc("\n".join(block))
            out += [f"```{directive.group(1)}", *code.splitlines(), "```"]
            continue
        if line.strip() and not line.startswith(" ") and indented_next and not line.endswith(":"):
            i += 1
            text = []
            while i < len(lines) and lines[i].startswith(" "):
                text.append(lines[i].strip())
                i += 1
            out.append(f"- `{line.strip()}`: {' '.join(text)}")
            continue
        out.append(line.strip() if not line.startswith("    ") else line)
        i += 1
    # RST's ``literal`` is Markdown's `literal`, outside the fenced code blocks
    chunks = re.split(r"(```.*?```)", "\n".join(out), flags=re.S)
    return "".join(
        c if c.startswith("```") else re.sub(r"``([^`]+)``", r"`\1`", c) for c in chunks
    ).strip()


def render():
    parts = [HEADER]
    for title, kind, paths in SECTIONS:
        parts.append(f"## {title}\n")
        for path in paths:
            name, functions = public_functions(path)
            parts.append(
                f"Defined in `{path}`"
                + (f", loaded as `{name}`" if kind != "ext_pillar" else "")
                + ".\n"
            )
            for function, args, doc in functions:
                called = function if kind == "ext_pillar" else f"{name}.{function}"
                parts.append(f"### `{called}({args})`\n")
                parts.append((markdown(doc) or "(no docstring)") + "\n")
    return "\n".join(parts)


def main():
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
