"""pillar.example, every examples/<topology>/*.sls and every `wireguard:` YAML block of
README.md and docs/*.md are pillars that Salt renders and the formula accepts (a block
marked `<!-- refused -->` on the line before it must be refused instead).

The real Salt (the pinned one in .venv) with the real `wireguard` module does the work,
as a minion does: one worker process (this file run as a script) takes, per case, a
minion config with the case's minion id and a pillar root (an example directory, whose
top.sls picks the minion's file; for pillar.example a root that holds it as
wireguard.sls, where SPM's wireguard.sls.orig is meant to go). `pillar.items` is what
Salt rendered (jinja|yaml) and `wireguard.pillar_interfaces` validates it, a network
only on the minions that are its nodes. Nothing outside a temp dir is read or written.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.lab.topologies import EXAMPLES, load_examples

REPO = Path(__file__).resolve().parents[2]
MARK = "@@pillar-examples@@ "
PILLAR_EXAMPLE = REPO / "pillar.example"
DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: The line before a YAML block that shows a pillar the formula refuses.
REFUSED = "<!-- refused -->"


def _worker():
    """Answer the JSON list of cases on stdin with one marked JSON list."""
    import salt.client
    import salt.config

    answers = []
    for case in json.loads(sys.stdin.read()):
        answer = {}
        try:
            caller = salt.client.Caller(mopts=salt.config.minion_config(case["config"]))
            answer["pillar"] = caller.cmd("pillar.items", unmask=True)
            answer["interfaces"] = caller.cmd(
                "wireguard.pillar_interfaces", config_dir=case["config_dir"]
            )
        except Exception as exc:  # reported to the test
            answer["error"] = f"{type(exc).__name__}: {exc}"
        answers.append(answer)
    sys.stdout.write(MARK + json.dumps(answers, default=str) + "\n")


def salt_render(tmp, cases):
    """Run the worker over [(minion id, pillar root)]; returns its answers in order."""
    (tmp / "file_root").mkdir(exist_ok=True)
    requests = []
    for n, (minion_id, pillar_root) in enumerate(cases):
        case_dir = tmp / f"case{n}"
        case_dir.mkdir()
        config = {
            "id": minion_id,
            "file_client": "local",
            "root_dir": str(case_dir / "root"),
            "file_roots": {"base": [str(tmp / "file_root")]},
            "pillar_roots": {"base": [str(pillar_root)]},
            "module_dirs": [str(REPO / "_modules")],
            "utils_dirs": [str(REPO / "_utils")],
            "log_level": "quiet",
            "log_level_logfile": "quiet",
            # the examples' minions run systemd (confirm needs it); this machine's
            # PID 1 is not systemd
            "grains": {"init": "systemd", "systemd": {"version": "252"}},
        }
        (case_dir / "minion").write_text(yaml.safe_dump(config))
        requests.append(
            {"config": str(case_dir / "minion"), "config_dir": str(case_dir / "etc-wireguard")}
        )
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, __file__],
        input=json.dumps(requests),
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=600,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(lines[-1][len(MARK) :])


def expected_interfaces(minion_id, pillar):
    """The interfaces the formula must build on this minion from this pillar."""
    wireguard = pillar.get("wireguard") or {}
    names = set(wireguard.get("interfaces") or {})
    for network in (wireguard.get("networks") or {}).values():
        if minion_id in network["nodes"]:
            names.add(network["interface"])
    return names


def problems(minion_id, answer, expected_pillar):
    """What is wrong with one rendered example (empty: nothing)."""
    if "error" in answer:
        return [answer["error"]]
    pillar, interfaces = answer["pillar"], answer["interfaces"]
    if pillar.get("_errors"):
        return [f"Salt could not render it: {pillar['_errors']}"]
    found = []
    if pillar != expected_pillar:
        found.append(f"Salt rendered {pillar}, not what the file says: {expected_pillar}")
    if not isinstance(interfaces, dict):
        return [*found, f"wireguard.pillar_interfaces refused it: {interfaces}"]
    if set(interfaces) != expected_interfaces(minion_id, expected_pillar):
        found.append(
            f"interfaces {sorted(interfaces)}, expected "
            f"{sorted(expected_interfaces(minion_id, expected_pillar))}"
        )
    return found


def pillar_root_of(tmp, name, text):
    """A pillar root that gives every minion `text` as wireguard.sls."""
    root = tmp / name
    root.mkdir()
    (root / "top.sls").write_text("base:\n  '*':\n    - wireguard\n")
    (root / "wireguard.sls").write_text(text)
    return root


def pillar_example_ids():
    """Every node of pillar.example's networks, and a minion that is none."""
    networks = yaml.safe_load(PILLAR_EXAMPLE.read_text())["wireguard"]["networks"]
    return [*sorted({n for net in networks.values() for n in net["nodes"]}), "laptop"]


EXAMPLE_CASES = [
    (topology, minion_id) for topology, minions in load_examples().items() for minion_id in minions
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{(example, minion id): the worker's answer} for every example and pillar.example."""
    tmp = tmp_path_factory.mktemp("pillar-examples")
    example_root = pillar_root_of(tmp, "pillar-example", PILLAR_EXAMPLE.read_text())
    keys = EXAMPLE_CASES + [("pillar.example", m) for m in pillar_example_ids()]
    cases = [
        (minion_id, example_root if example == "pillar.example" else EXAMPLES / example)
        for example, minion_id in keys
    ]
    return dict(zip(keys, salt_render(tmp, cases), strict=True))


def test_pillar_example_is_one_valid_pillar_file(rendered):
    """Salt renders pillar.example; every node of its network, and a minion that is
    none, validates it and gets the interfaces it declares."""
    expected = yaml.safe_load(PILLAR_EXAMPLE.read_text())
    for minion_id in pillar_example_ids():
        assert not problems(minion_id, rendered[("pillar.example", minion_id)], expected)


def test_pillar_example_shows_every_key():
    """Every key the schema accepts (and every lookup parameter of defaults.yaml)
    appears in pillar.example, read from the code: `network_psks` is the ext_pillar's."""
    import wgf_firewall  # the utils are on sys.path in the tests (conftest), not in _worker
    import wgf_limits
    import wgf_networks
    import wgf_schema

    def union(mappings):
        return set().union(*(set(mapping) for mapping in mappings))

    wireguard = yaml.safe_load(PILLAR_EXAMPLE.read_text())["wireguard"]
    assert set(wireguard) == set(wgf_schema.TOP_KEYS) - {"network_psks"}
    defaults = yaml.safe_load((REPO / "wireguard" / "parameters" / "defaults.yaml").read_text())[
        "values"
    ]
    lookup = wireguard["lookup"]
    assert set(lookup) == set(defaults)
    for key, value in defaults.items():
        if isinstance(value, dict):
            assert set(lookup[key]) == set(value), key
    (iface,) = wireguard["interfaces"].values()
    assert set(iface) == set(wgf_schema.INTERFACE_KEYS)
    assert set(iface["client_defaults"]) == set(wgf_schema.CLIENT_DEFAULT_KEYS)
    assert union(iface["clients"].values()) == set(wgf_schema.CLIENT_KEYS)
    assert union(iface["client_groups"].values()) == set(wgf_schema.GROUP_KEYS)
    limits = [c["limits"] for c in iface["clients"].values() if c.get("limits")]
    assert union(limits) == set(wgf_limits.KEYS)
    assert union(iface["peers"].values()) == set(wgf_schema.PEER_KEYS)
    assert set(iface["access"]) == set(wgf_firewall.ACCESS_KEYS)
    assert union(iface["access"]["rules"]) == set(wgf_firewall.RULE_KEYS)
    (network,) = wireguard["networks"].values()
    assert set(network) == set(wgf_networks.NETWORK_KEYS)
    assert union(network["nodes"].values()) == set(wgf_networks.NODE_KEYS)


def test_examples_have_every_topology():
    assert sorted(load_examples()) == sorted(
        [
            "laptop-server",
            "internet-gateway",
            "jumpbox-vlan",
            "mesh",
            "road-warriors",
            "two-sites-behind-nat",
            "dns-two-gateways",
            "mine-mesh",
            "mine-hub",
        ]
    )
    for directory in EXAMPLES.iterdir():
        if directory.is_dir():
            assert (directory / "top.sls").is_file(), directory


@pytest.mark.parametrize(
    ("topology", "minion_id"), EXAMPLE_CASES, ids=[f"{t}-{m}" for t, m in EXAMPLE_CASES]
)
def test_example_renders_and_validates(rendered, topology, minion_id):
    """Salt gives the minion, through its directory's top.sls, exactly its file (what
    the lab applies), and the formula accepts it."""
    expected = load_examples()[topology][minion_id]
    assert not problems(minion_id, rendered[(topology, minion_id)], expected)


def test_a_broken_example_fails(tmp_path):
    """The checks above catch a file Salt cannot render (several YAML documents, as
    pillar.example once was), a key the formula refuses, and a top.sls that gives a
    minion another minion's file."""
    good = (EXAMPLES / "laptop-server" / "server.sls").read_text()
    expected = yaml.safe_load(good)
    typo = good.replace("allowed_ips:", "allowd_ips:")
    assert typo != good
    wrong_top = tmp_path / "wrong-top"
    shutil.copytree(EXAMPLES / "laptop-server", wrong_top)
    (wrong_top / "top.sls").write_text("base:\n  server:\n    - laptop\n")
    cases = [
        ("server", pillar_root_of(tmp_path, "two-docs", good + "---\n" + good)),
        ("server", pillar_root_of(tmp_path, "typo", typo)),
        ("server", wrong_top),
    ]
    found = [problems("server", answer, expected) for answer in salt_render(tmp_path, cases)]
    assert "could not render" in " ".join(found[0]), found[0]
    assert "allowd_ips" in " ".join(found[1]), found[1]
    assert "not what the file says" in " ".join(found[2]), found[2]


# --- YAML examples in README.md and docs/*.md ---------------------------------------


def yaml_blocks(text):
    """``(line number, body, refused)`` of each fenced YAML block, dedented; refused when
    the line before the fence is the REFUSED marker."""
    blocks = []
    lines = text.splitlines()
    for match in re.finditer(r"(?ms)^( *)```ya?ml\n(.*?)^\1```", text):
        number = text.count("\n", 0, match.start()) + 1
        indent = len(match.group(1))
        body = "\n".join(line[indent:] for line in match.group(2).splitlines()) + "\n"
        before = lines[number - 2].strip() if number > 1 else ""
        blocks.append((number, body, before == REFUSED))
    return blocks


def fill_placeholders(body):
    """The text with `<laptop's public key>`-style placeholders replaced by real values,
    the same placeholder by the same value; an unknown placeholder is an error."""
    values = {}
    for placeholder in dict.fromkeys(re.findall(r"<[^<>\n]+>", body)):
        if placeholder.endswith("public key>") or placeholder == "<base64>":
            values[placeholder] = base64.b64encode(bytes([len(values) + 1]) * 32).decode()
        elif placeholder.endswith("address>"):
            values[placeholder] = "192.0.2.1"
        else:
            raise AssertionError(f"no value for the placeholder {placeholder}")
        body = body.replace(placeholder, values[placeholder])
    return body


def load_block(body):
    """The block as YAML data; a block that is no YAML (shown output) is None, unless it
    starts like a pillar (a broken pillar example must fail, not vanish)."""
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError:
        return {"wireguard": None} if re.match(r"(#.*\n)*wireguard:", body) else None


def pillar_blocks():
    """``(id, pillar text, refused)`` of every YAML block of the pages that is a pillar of
    the formula (a mapping with the `wireguard` key)."""
    found = []
    for page in DOC_PAGES:
        for number, body, refused in yaml_blocks(page.read_text()):
            data = load_block(body)
            if isinstance(data, dict) and "wireguard" in data:
                found.append(
                    (f"{page.relative_to(REPO)}:{number}", fill_placeholders(body), refused)
                )
    return found


def minions_of(pillar):
    """The minions to validate a pillar on: every node of its networks, else one."""
    networks = (pillar.get("wireguard") or {}).get("networks") or {}
    nodes = sorted({node for net in networks.values() for node in net.get("nodes") or {}})
    return nodes or ["docs-minion"]


DOC_BLOCKS = pillar_blocks()


@pytest.fixture(scope="module")
def rendered_docs(tmp_path_factory):
    """{(block id, minion id): the worker's answer} for every pillar block of the pages."""
    tmp = tmp_path_factory.mktemp("doc-examples")
    keys, cases = [], []
    for n, (block_id, body, _) in enumerate(DOC_BLOCKS):
        root = pillar_root_of(tmp, f"block{n}", body)
        for minion_id in minions_of(load_block(body)):
            keys.append((block_id, minion_id))
            cases.append((minion_id, root))
    return dict(zip(keys, salt_render(tmp, cases), strict=True))


def test_the_pages_have_pillar_examples_of_both_kinds():
    """The collector finds the Quick start's pillars and the refused examples."""
    ids = [block_id for block_id, _, _ in DOC_BLOCKS]
    assert sum(block_id.startswith("README.md:") for block_id in ids) >= 4, ids
    assert any(refused for _, _, refused in DOC_BLOCKS), ids


@pytest.mark.parametrize(
    ("block_id", "body", "refused"), DOC_BLOCKS, ids=[block_id for block_id, _, _ in DOC_BLOCKS]
)
def test_doc_example_renders_and_validates(rendered_docs, block_id, body, refused):
    """A pillar shown in the README or docs/ is one the formula accepts, on every node
    it names; one marked refused is refused by the formula's validation."""
    expected = load_block(body)
    for minion_id in minions_of(expected):
        answer = rendered_docs[(block_id, minion_id)]
        found = problems(minion_id, answer, expected)
        if refused:  # Salt renders it, the formula's validation refuses it
            assert answer.get("pillar", {}).get("wireguard") == expected["wireguard"], answer
            assert "Invalid wireguard pillar" in " ".join(found), (block_id, found)
        else:
            assert not found, (block_id, minion_id, found)


def test_no_page_shows_a_fragment_of_a_pillar():
    """A YAML block made only of the formula's pillar keys but without the `wireguard:`
    root cannot be checked: make it a whole pillar."""
    import wgf_networks  # the utils are on sys.path in the tests (conftest), not in _worker
    import wgf_schema

    pillar_keys = (
        set(wgf_schema.TOP_KEYS)
        | set(wgf_schema.INTERFACE_KEYS)
        | set(wgf_schema.PEER_KEYS)
        | set(wgf_schema.CLIENT_KEYS)
        | set(wgf_networks.NETWORK_KEYS)
    )
    fragments = []
    for page in DOC_PAGES:
        for number, body, _ in yaml_blocks(page.read_text()):
            data = load_block(body)
            if isinstance(data, dict) and "wireguard" not in data and set(data) <= pillar_keys:
                fragments.append(f"{page.relative_to(REPO)}:{number}")
    assert not fragments, fragments


def test_the_doc_checks_catch_a_bad_example():
    """The collector sees the marker, fills placeholders and refuses an unknown one; a
    fragment has only pillar keys; the validation refuses a typo in a docs block."""
    text = "x\n<!-- refused -->\n```yaml\nwireguard: {}\n```\n\n  ```yaml\n  a: 1\n  ```\n"
    assert yaml_blocks(text) == [(3, "wireguard: {}\n", True), (7, "a: 1\n", False)]
    filled = fill_placeholders("k: <laptop's public key>\nj: <laptop's public key>\n")
    assert yaml.safe_load(filled)["k"] == yaml.safe_load(filled)["j"]
    with pytest.raises(AssertionError, match="placeholder"):
        fill_placeholders("k: <something else>\n")
    assert load_block("wireguard:\n  a: b: c\n") == {"wireguard": None}
    assert load_block("ok: a: b\n") is None
    assert minions_of({"wireguard": {"networks": {"n": {"nodes": {"b": {}, "a": {}}}}}}) == [
        "a",
        "b",
    ]


if __name__ == "__main__":
    _worker()
