"""Nothing in the README or docs/ names a pillar key or a function argument the code
does not have: every `wireguard:...` key path written in a page is one the schema
accepts, and every `name=value` passed to a `wireguard.<function>` in a command line is
one of that function's arguments."""

import ast
import re

import pytest

import wgf_schema
from tests.support.docs import PAGES, REPO, accepted_paths, lookup_keys, make_reference

DOC_PAGES = [page for page in PAGES if page.name != "reference.md"]

#: Where a relative key path (``lookup:metrics``, ``clients:<name>:limits``) starts.
BASES = (
    "wireguard",
    "wireguard:lookup",
    "wireguard:interfaces:*",
    "wireguard:interfaces:*:peers:*",
    "wireguard:interfaces:*:clients:*",
    "wireguard:networks:*",
)
#: The first words of a key path the formula reads (others, such as ``host:port`` or a
#: runner's ``facts:key_age_days``, are not pillar paths).
FIRST_WORDS = (
    {"wireguard"}
    | set(wgf_schema.TOP_KEYS)
    | {path.split(":")[0] for path in lookup_keys()}
    | set(wgf_schema.INTERFACE_KEYS)
    | set(wgf_schema.PEER_KEYS)
    | set(wgf_schema.CLIENT_KEYS)
)
#: Keyword arguments Salt's command line takes for itself, not the function's.
SALT_KWARGS = {"test", "pillar", "saltenv", "pillarenv", "queue", "concurrent"}


def _normal(path):
    path = re.sub(r"<[^>]*>", "*", path).replace("[]", ":*")
    return path.split(": ", 1)[0].rstrip(":")


def _matches(path, accepted):
    parts = path.split(":")
    for known in accepted:
        known_parts = known.split(":")
        if len(known_parts) >= len(parts) and all(
            k == p or k == "*" or p == "*" for k, p in zip(known_parts, parts, strict=False)
        ):
            return True
    return False


def key_paths(text):
    """The colon-separated key paths written in inline code (a value after ``: `` cut)."""
    found = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        is_path = re.fullmatch(r"[a-z_]+(?::[^:\s`]+)+(?::\s.*)?", span)
        if is_path and span.split(":")[0] in FIRST_WORDS:
            found.add(_normal(span))
    return found


def unknown_keys(text, accepted):
    return sorted(
        path
        for path in key_paths(text)
        if not any(_matches(f"{base}:{path}", accepted) for base in BASES)
        and not _matches(path, accepted)
    )


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_key_path_a_page_names_is_one_the_schema_accepts(page):
    assert not unknown_keys(page.read_text(), accepted_paths())


def test_the_key_check_sees_a_key_that_does_not_exist():
    accepted = accepted_paths()
    assert unknown_keys("set `lookup:metrics:textfile` and `clients:<c>:limits`", accepted) == []
    assert unknown_keys("set `lookup:metrics:texfile` or `interfaces:<if>:nope`", accepted) == [
        "interfaces:*:nope",
        "lookup:metrics:texfile",
    ]


def arguments():
    """``{("salt"|"salt-run", "wireguard.<name>"): argument names or None (**kwargs)}``."""
    found = {}
    for _, kind, paths in make_reference.SECTIONS:
        command = {"salt-run": "salt-run", "salt-call": "salt"}.get(kind)
        for path in paths:
            tree = ast.parse((REPO / path).read_text())
            name = make_reference.virtual_name(tree, path)
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                    args = node.args
                    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
                    found[(command, f"{name}.{node.name}")] = None if args.kwarg else names
    return found


def command_lines(text):
    """``salt``/``salt-call``/``salt-run`` command lines: shell block lines and inline
    code, each cut at its comment."""
    lines = re.findall(r"`(salt(?:-run|-call)? [^`\n]+)`", text)
    for block in re.findall(r"(?ms)^ *```(?:sh|bash|console)\n(.*?)^ *```", text):
        lines += [line.strip() for line in block.splitlines()]
    return [line.split(" #", 1)[0] for line in lines if re.match(r"salt(-run|-call)? ", line)]


def unknown_arguments(text, known):
    unknown = []
    for line in command_lines(text):
        words = line.split()
        command = "salt-run" if words[0] == "salt-run" else "salt"
        calls = [i for i, w in enumerate(words) if re.fullmatch(r"wireguard\.[a-z_]+", w)]
        if not calls or (command, words[calls[0]]) not in known:
            continue
        names = known[(command, words[calls[0]])]
        for word in words[calls[0] + 1 :]:
            match = re.fullmatch(r"\[?([a-z_]+)=.*", word)
            if match and names is not None and match.group(1) not in names | SALT_KWARGS:
                unknown.append(f"{words[calls[0]]} {match.group(1)}=")
    return unknown


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_argument_a_command_line_passes_is_the_functions(page):
    assert not unknown_arguments(page.read_text(), arguments())


def test_the_argument_check_sees_an_argument_that_does_not_exist():
    known = arguments()
    good = "```sh\nsalt-run wireguard.verify tgt='*' live=true   # a comment x=1\n```\n"
    assert unknown_arguments(good, known) == []
    bad = "run `salt-run wireguard.verify target=web` or `salt gw wireguard.show wg0 peer=x`"
    assert unknown_arguments(bad, known) == ["wireguard.verify target=", "wireguard.show peer="]
