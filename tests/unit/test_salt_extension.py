"""The repository is a Salt extension: `pip wheel .` packs the formula's Salt modules, and
Salt finds them through the `salt.loader` entry points once the wheel is installed.

The wheel must hold the repository's own files (_modules/ and the rest), not copies.
Then a fresh venv gets only Salt (the pinned version, from the lab's cached wheels) and
the wheel, and Salt is driven through its own commands with a throwaway config whose
file_roots are an empty temp dir and whose extension_modules stay empty: no sync, no
repository on any path. salt-call lists the execution and state functions and runs
wireguard.genkey, salt-run documents the runner without a master, and a masterless
salt-minion reports the beacon as available.
"""

import ast
import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import tomllib

from tests.lab.rootfs import salt_pins, wheel_dir
from tests.support import commands

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE = "saltext/wireguard_formula"
# repository directory -> directory inside the extension package
LOADER_DIRS = {
    "_modules": "modules",
    "_states": "states",
    "_runners": "runners",
    "_beacons": "beacons",
    "_pillar": "pillar",
}


#: The files of the execution module ``wireguard`` (split by concern, one virtual name).
WIREGUARD_MODULE_FILES = (
    "wireguard.py",
    "wireguard_config.py",
    "wireguard_clients.py",
    "wireguard_check.py",
    "wireguard_confirm.py",
    "wireguard_metrics.py",
    "wireguard_verify.py",
)


def public_functions(path):
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name[0] != "_"]


def run(argv, timeout=300, **kwargs):
    proc = commands.run(argv, timeout, **kwargs)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def tracked(pattern):
    """Files git tracks under a pattern, so a stray local file does not count."""
    out = run(["git", "ls-files", "-z", pattern], cwd=REPO)
    return sorted(p for p in out.split("\0") if p)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """`pip wheel .` of the repository, its build backend from the lab's wheel cache."""
    backend = wheel_dir(PYPROJECT["build-system"]["requires"])
    out = tmp_path_factory.mktemp("dist")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-index",
            "--find-links",
            backend,
            "--wheel-dir",
            out,
            REPO,
        ]
    )
    (path,) = out.glob("*.whl")
    return path


def test_the_wheel_holds_the_repositorys_own_module_files(wheel):
    with zipfile.ZipFile(wheel) as whl:
        packed = {name: whl.read(name) for name in whl.namelist() if ".dist-info/" not in name}
        entry_points = whl.read(
            next(n for n in whl.namelist() if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    expected = {}
    for source_dir, package_dir in LOADER_DIRS.items():
        for path in tracked(f"{source_dir}/*.py"):
            expected[f"{PACKAGE}/{package_dir}/{Path(path).name}"] = path
    # the shared code of _utils/ is imported as `import wgf_keys`: top-level modules
    for path in tracked("_utils/*.py"):
        expected[Path(path).name] = path
    for path in tracked("src/saltext/wireguard_formula/*.py"):
        expected[path.removeprefix("src/")] = path
    # the execution module is several files Salt loads as one: each of them is packed
    for name in WIREGUARD_MODULE_FILES:
        assert f"{PACKAGE}/modules/{name}" in expected, name
    assert sorted(packed) == sorted(expected)
    for name, path in expected.items():
        assert packed[name] == (REPO / path).read_bytes(), name
    for key in ("module_dirs", "states_dirs", "runner_dirs", "beacons_dirs", "pillar_dirs"):
        assert re.search(rf"^{key} = saltext\.wireguard_formula\.loader:", entry_points, re.M), (
            entry_points
        )


def test_the_package_does_not_pin_salt_for_its_users():
    for requirement in PYPROJECT["project"]["dependencies"]:
        assert "==" not in requirement, f"{requirement}: exact pins belong in a dependency group"


@pytest.fixture(scope="module")
def salt_env(tmp_path_factory, wheel):
    """A fresh venv with the pinned Salt and the wheel, and a throwaway Salt config."""
    tmp = tmp_path_factory.mktemp("saltext")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    pins = salt_pins()
    salt = next(pin for pin in pins if pin.startswith("salt=="))
    # --no-compile: Salt is thousands of files; Python compiles the few it imports
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            venv / "bin/python",
            "install",
            "-q",
            "--no-index",
            "--no-compile",
            "--find-links",
            wheel_dir(pins),
            salt,
            wheel,
        ],
        timeout=600,
    )
    root = tmp / "root"
    conf = tmp / "conf"
    conf.mkdir()
    (tmp / "srv").mkdir()
    (tmp / "pillar").mkdir()
    common = (
        f"root_dir: {root}\nfile_roots: {{base: [{tmp / 'srv'}]}}\n"
        f"pillar_roots: {{base: [{tmp / 'pillar'}]}}\n"
    )
    (conf / "minion").write_text(
        f"id: saltext-test\nfile_client: local\nmaster_type: disable\n{common}"
    )
    (conf / "master").write_text(common)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SALT_"))}

    def salt_cmd(tool, *args, timeout=120):
        return run([venv / "bin" / tool, "-c", conf, *args], timeout=timeout, cwd=tmp, env=env)

    def salt_call(*args, timeout=120):
        return json.loads(salt_cmd("salt-call", "--out=json", *args, timeout=timeout))["local"]

    salt_cmd.call = salt_call
    salt_cmd.root = root
    salt_cmd.venv = venv
    salt_cmd.env = env
    salt_cmd.conf = conf
    return salt_cmd


def test_salt_call_lists_the_execution_functions(salt_env):
    """Every public function of every file of the module, under ``wireguard.``."""
    functions = salt_env.call("--local", "sys.list_functions", "wireguard")
    wanted = {
        f"wireguard.{name}"
        for path in WIREGUARD_MODULE_FILES
        for name in public_functions(REPO / "_modules" / path)
    }
    assert {"wireguard.check", "wireguard.clients", "wireguard.render_config"} <= wanted
    assert sorted(functions) == sorted(wanted)
    synced = list((salt_env.root / "var/cache/salt").rglob("extmods/*/*"))
    assert not synced, f"not from the package but synced into extension_modules: {synced}"


def test_salt_call_lists_the_state_functions(salt_env):
    states = salt_env.call("--local", "sys.list_state_functions", "wireguard")
    for name in (
        "wireguard.config",
        "wireguard.peer",
        "wireguard.private_key",
        "wireguard.interface",
        "wireguard.clients",  # each file of the state module is carried
        "wireguard.client_peers",
        "wireguard.client_expiry_absent",  # issue 23
        "wireguard.firewall",
        "wireguard.config_dir_absent",
        "wireguard.confirm_armed",  # issue 21
        "wireguard.confirm_checked",
        "wireguard.confirm_absent",
    ):
        assert name in states, states


def test_salt_call_genkey_returns_a_private_key(salt_env):
    key = salt_env.call("--local", "wireguard.genkey")
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", key), "not a base64 WireGuard key"
    assert len(base64.b64decode(key)) == 32


def test_salt_call_runs_a_function_of_each_file_of_the_module(salt_env, tmp_path):
    """From the package alone: the config file's, the clients' and the check's."""
    assert salt_env.call("--local", "wireguard.route_command", "172.16.1.0/24").startswith(
        "ip route"
    )
    assert salt_env.call("--local", "wireguard.clients") == {}
    # a wg that shows no interface: the machine's wireguard-go sockets (/var/run/wireguard)
    # are every namespace's, so the real one lists interfaces other test runs have elsewhere
    (tmp_path / "wg").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "wg").chmod(0o755)
    out = run(
        [
            salt_env.venv / "bin/salt-call",
            "-c",
            salt_env.conf,
            "--out=json",
            "--local",
            "wireguard.check",
            f"config_dir={tmp_path / 'wg.d'}",
            "sample=0",
        ],
        cwd=tmp_path,
        env={**salt_env.env, "PATH": f"{tmp_path}:{salt_env.env.get('PATH', '/usr/bin:/bin')}"},
    )
    result = json.loads(out)["local"]
    assert result["problems"] == [] and result["ok"], result
    assert result["interfaces"] == {} and result["summary"].startswith("wireguard check: OK")


def test_salt_run_finds_the_runner(salt_env):
    """`salt-run --doc` loads the runners in the salt-run process: no master needed."""
    out = salt_env("salt-run", "--doc", "wireguard")
    documented = re.findall(r"^(wireguard\.\w+):$", out, re.M)
    # the files of the runner (wireguard.py, wireguard_keys.py, wireguard_rollout.py) are one
    wanted = (
        "audit",
        "graph",
        "rotate_psks",
        "ensure_psks",
        "prepare",
        "rotate_keys",
        "rollout",
        "alert_rules",
        "verify",
    )
    assert {f"wireguard.{name}" for name in wanted} <= set(documented), out


def test_a_masterless_minion_has_the_beacon(salt_env):
    """The beacons live in the minion daemon: start one without a master and ask it."""
    log = (salt_env.root.parent / "minion.log").open("w")
    minion = subprocess.Popen(
        [salt_env.venv / "bin/salt-minion", "-c", salt_env.conf, "-l", "info"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=salt_env.env,
        cwd=salt_env.root.parent,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        available = {}
        while time.monotonic() < deadline and not isinstance(available, list):
            assert minion.poll() is None, (salt_env.root.parent / "minion.log").read_text()
            # {"beacons": {}} until the minion's event bus answers
            available = salt_env.call("beacons.list_available", "return_yaml=False", "timeout=5")
        assert isinstance(available, list), "the minion never answered"
        assert "wireguard" in available, available
    finally:
        os.killpg(minion.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            minion.wait(timeout=15)
        # the minion's own child processes are in its session too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(minion.pid, signal.SIGKILL)
        minion.wait()
        log.close()
