"""Loader files stay small (issue 20: none over 500 lines), and the execution module
``wireguard``, split by concern into several files, is still one module: Salt merges
the files under the one name, each public function is found once, in the file that
defines it, every file loads or refuses by the same rule, and ``check`` asks the host
adapter for its routes."""

import ast
import inspect
import ipaddress
import re
from pathlib import Path

import pytest
import salt.loader
from salt.exceptions import CommandExecutionError

import wgf_keys
from tests.support.minion import minion_opts
from tests.unit.conftest import REPO, load

LIMIT = 500
#: A util over this holds one concept or is split (issue 20).
UTIL_LIMIT = 600
LOADER_DIRS = ("_modules", "_states", "_runners", "_beacons", "_pillar")


def loader_files():
    return sorted(
        str(path.relative_to(REPO)) for d in LOADER_DIRS for path in (REPO / d).glob("*.py")
    )


def lines(path):
    return len((REPO / path).read_text().splitlines())


def virtual_name(path):
    for node in ast.parse((REPO / path).read_text()).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "__virtualname__" for t in node.targets
        ):
            return node.value.value
    return Path(path).stem


def public_functions(path):
    tree = ast.parse((REPO / path).read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name[0] != "_"]


#: The files of the execution module ``wireguard``.
WIREGUARD_FILES = [p for p in loader_files() if p.startswith("_modules/")]
WIREGUARD_FILES = [p for p in WIREGUARD_FILES if virtual_name(p) == "wireguard"]


@pytest.mark.parametrize("path", loader_files())
def test_no_loader_file_is_over_the_limit(path):
    assert lines(path) <= LIMIT, f"{path} has {lines(path)} lines: split it by concern"


@pytest.mark.parametrize("path", sorted(p.name for p in (REPO / "_utils").glob("wgf_*.py")))
def test_no_util_is_over_its_limit(path):
    assert lines(f"_utils/{path}") <= UTIL_LIMIT, f"_utils/{path}: split it by concept"


def test_the_development_page_names_every_loader_file():
    """docs/development.md says what each loader file holds; FORMULA's list is checked
    by tests/unit/test_formula_spm.py."""
    page = (REPO / "docs" / "development.md").read_text()
    assert not [p for p in loader_files() if not re.search(rf"^{re.escape(p)} ", page, re.M)]


def test_the_execution_module_is_split_by_concern():
    assert len(WIREGUARD_FILES) >= 4, WIREGUARD_FILES
    names = [name for path in WIREGUARD_FILES for name in public_functions(path)]
    assert len(names) == len(set(names)), "a public function is defined twice"


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """The execution modules as the minion loads them, with a pillar that is refused."""
    root = tmp_path_factory.mktemp("split")
    opts = minion_opts(root, "minion1")
    opts["pillar"] = {"wireguard": {"interfaces": {"wg0": {"address": "10.9.0.300/24"}}}}
    return salt.loader.minion_mods(opts, utils=salt.loader.utils(opts)), root


@pytest.mark.parametrize("path", WIREGUARD_FILES)
def test_salt_finds_each_function_under_wireguard_in_its_own_file(modules, path):
    loaded, _ = modules
    for name in public_functions(path):
        func = loaded[f"wireguard.{name}"]
        assert inspect.unwrap(func.func).__code__.co_filename == str(REPO / path), name


def test_every_file_of_the_module_loads_and_refuses_by_one_rule(monkeypatch):
    files = [load(path, f"wireguard_split_{Path(path).stem}") for path in WIREGUARD_FILES]
    assert {module.__virtual__() for module in files} == {"wireguard"}
    monkeypatch.setattr(wgf_keys, "HAS_NACL", False)
    refusals = {module.__virtual__() for module in files}
    assert refusals == {
        (False, "The wireguard module needs PyNaCl (python3-nacl / pip install pynacl)")
    }


def test_check_goes_on_without_a_refused_pillar_and_unreadable_live_interfaces(
    modules, tmp_path, monkeypatch
):
    """Each is an error of the report, with its fix; ``check`` still answers."""
    loaded, root = modules
    wg = tmp_path / "wg"
    wg.write_text(
        "#!/bin/sh\necho 'Unable to access interface wg1: denied' >&2\necho more >&2\nexit 1\n"
    )
    wg.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    result = loaded["wireguard.check"](config_dir=str(root / "empty"), sample=0)
    found = {p["check"]: p for p in result["problems"]}
    assert set(found) == {"pillar", "live"} and not result["ok"]
    assert found["pillar"]["severity"] == found["live"]["severity"] == "error"
    assert "interface 'wg0', key 'address'" in found["pillar"]["message"]
    assert "\n" not in found["pillar"]["message"]
    assert found["pillar"]["fix"] == "Correct pillar wireguard as the message says."
    assert found["live"]["message"] == (
        "The live interfaces cannot be read: wg show all failed: "
        "Unable to access interface wg1: denied\nmore"
    )
    assert found["live"]["fix"] == "Install wireguard-tools (wg) and run this as root."
    assert result["interfaces"] == {}


class FakeHost:
    """Answers ``ip route get`` and the links' MTUs; records what it is asked."""

    def __init__(self, routes, mtus, fail=None):
        self.routes, self.mtus, self.fail, self.asked = routes, mtus, fail, []

    def endpoint_routes(self, addresses, fwmark=None):
        self.asked.append(("routes", [str(a) for a in addresses], fwmark))
        if self.fail:
            raise CommandExecutionError(self.fail)
        return {a: r for a, r in self.routes.items() if a in map(str, addresses)}

    def link_mtus(self):
        self.asked.append(("mtus",))
        return self.mtus


@pytest.fixture(scope="module")
def check_file():
    return load("_modules/wireguard_check.py", "wireguard_check_under_test")


def test_the_endpoints_underlay_is_one_batch_of_route_lookups_with_the_fwmark(check_file):
    host = FakeHost(
        {
            "198.51.100.2": {"dst": "198.51.100.2", "dev": "eth0", "metrics": [{"mtu": 1400}]},
            "2001:db8::7": {"dst": "2001:db8::7", "dev": "eth1"},
        },
        {"eth0": 1500, "eth1": 1480, "wg0": 1420},
    )
    addresses = [ipaddress.ip_address(a) for a in ("198.51.100.2", "2001:db8::7", "203.0.113.9")]
    found = check_file._underlay(host, addresses, 51820)
    assert host.asked == [
        ("routes", ["198.51.100.2", "2001:db8::7", "203.0.113.9"], 51820),
        ("mtus",),
    ]
    assert found["198.51.100.2"] == {"dev": "eth0", "mtu": 1400, "dev_mtu": 1500, "error": None}
    assert found["2001:db8::7"] == {"dev": "eth1", "mtu": None, "dev_mtu": 1480, "error": None}
    assert found["203.0.113.9"]["dev"] is None and found["203.0.113.9"]["error"]


def test_an_underlay_the_host_cannot_tell_is_an_error_per_endpoint(check_file):
    host = FakeHost({}, {}, fail="ip -j -force -batch -: Cannot talk to rtnetlink")
    found = check_file._underlay(host, [ipaddress.ip_address("198.51.100.2")], None)
    assert found == {
        "198.51.100.2": {
            "dev": None,
            "mtu": None,
            "dev_mtu": None,
            "error": "ip -j -force -batch -: Cannot talk to rtnetlink",
        }
    }
    assert host.asked == [("routes", ["198.51.100.2"], None)]


#: A command run or a file written by hand: the host adapter's job (issue 20).
DIRECT = re.compile(
    r'__salt__\["cmd\.run|__salt__\["service\.|\bsubprocess\.|\bos\.(replace|rename|unlink|remove|chmod)\('
    r"|wgf_files\.(write|remove)"
)


#: The states only compare and plan, so the fake host of the unit tier sees everything
#: they change: not even a file opened or a directory made by hand.
DIRECT_IN_STATES = re.compile(
    r'__salt__\["(cmd|service|file)\.|subprocess|wgf_files\.(write|remove)'
    r"|os\.(unlink|remove|chmod|chown|makedirs|replace|rename)|tempfile|open\("
)


@pytest.mark.parametrize("path", loader_files())
def test_no_loader_file_runs_a_command_or_writes_a_file_itself(path):
    strict = path.startswith("_states/") and path != "_states/wireguard_layout.py"
    rule = DIRECT_IN_STATES if strict else DIRECT  # config_dir_absent: wgf_layout.clean
    found = [
        f"{path}:{number}: {line.strip()}"
        for number, line in enumerate((REPO / path).read_text().splitlines(), 1)
        if rule.search(line)
    ]
    assert not found, found


def test_commands_run_in_one_util_only():
    runs = re.compile(r'\bsubprocess\.|\["cmd\.run')
    found = sorted(
        path.name for path in (REPO / "_utils").glob("wgf_*.py") if runs.search(path.read_text())
    )
    assert found == ["wgf_host.py"], found
