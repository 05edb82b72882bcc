"""docs/pillar.md is the pillar reference: every key the schema accepts is on it, and it
names no key the schema does not accept.

The accepted keys are read from the code (the key sets of `wgf_schema`, `wgf_networks`
and `wgf_firewall`, and `wireguard/parameters/defaults.yaml`, whose keys are what
`wireguard:lookup` can set), never copied here. The page's keys are the first cells of
its key tables (`| key | default | meaning |`), each under a heading naming its pillar
path, such as ``## `wireguard:interfaces:<name>:peers:<peer>` ``.
"""

import re

import pytest

from tests.support.docs import REPO, accepted_paths

PAGE = REPO / "docs" / "pillar.md"


def _normal(path):
    """`<name>` and `rules[]` (a list's items) become `*`."""
    path = re.sub(r"<[^>]*>", "*", path).replace("[]", ":*")
    return path


def documented_paths(text):
    """Every pillar path the page's key tables name, with the mappings that lead to it
    (`pkgs:tools` under `lookup` also documents `lookup:pkgs`)."""
    paths, heading, in_table = set(), None, False
    for line in text.splitlines():
        match = re.match(r"#{2,3} `(wireguard(?::[^`]*)?)`\s*$", line)
        if match:
            heading, in_table = _normal(match.group(1)), False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == "key":
            in_table = heading is not None
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        if not in_table or set(cells[0]) <= {"-", " "}:
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            parts = _normal(f"{heading}:{name}").split(":")
            paths |= {":".join(parts[:n]) for n in range(2, len(parts) + 1)}
    # a heading's own path is documented by the table above it
    return {path for path in paths if not path.endswith("*")}


def test_the_page_documents_exactly_the_keys_the_schema_accepts():
    documented = documented_paths(PAGE.read_text())
    accepted = accepted_paths()
    missing = sorted(accepted - documented)
    invented = sorted(documented - accepted)
    assert not missing, f"docs/pillar.md does not describe {missing}"
    assert not invented, f"docs/pillar.md names keys the formula does not accept: {invented}"


@pytest.mark.parametrize(
    ("change", "found"),
    [
        # a key the schema accepts, taken off the page
        (lambda t: t.replace("| `fwmark` |", "| fwmark |"), "missing"),
        (lambda t: t.replace("| `nodes:<minion id>:endpoint` |", "| endpoint |"), "missing"),
        (lambda t: t.replace("| `rules[]:proto` |", "| proto |"), "missing"),
        # a key the schema does not accept, added to the page
        (lambda t: t.replace("| `fwmark` |", "| `fwmark`, `save_config` |"), "invented"),
        (lambda t: t.replace("| `pkgs:extra` |", "| `pkgs:extras` |"), "both"),
    ],
)
def test_the_check_fails_on_a_page_that_drifted(change, found):
    """The comparison above is not vacuous: a row taken off or a key that does not
    exist makes the two sets differ in the expected direction."""
    text = PAGE.read_text()
    changed = change(text)
    assert changed != text
    documented, accepted = documented_paths(changed), accepted_paths()
    if found in ("missing", "both"):
        assert accepted - documented
    if found in ("invented", "both"):
        assert documented - accepted


def test_every_key_table_sits_under_a_pillar_path():
    """A key table under a heading that names no pillar path would be skipped silently."""
    heading = None
    for line in PAGE.read_text().splitlines():
        if line.startswith("#"):
            heading = line
        if re.match(r"\|\s*key\s*\|", line):
            assert heading and re.match(r"#{2,3} `wireguard(:[^`]*)?`\s*$", heading), heading
