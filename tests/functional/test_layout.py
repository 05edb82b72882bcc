"""`wireguard:lookup:config_dir` through the user's door, the real `salt-call` (where
Salt 3008 masks `pillar.get`): key rotation's minion steps write and read the configured
directory, a lookup that names a system directory is refused by name, and config dir
entries that are directories are refused, not a traceback."""

import json
import uuid

import pytest

import wgf_keys
from tests.support.minion import salt_call_in_netns

IF = f"wgl{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def minion(tmp_path_factory):
    with salt_call_in_netns("layout", tmp_path_factory.mktemp("layout")) as salt_call:
        yield salt_call


def answer(proc):
    return json.loads(proc.stdout)["local"] if proc.stdout.strip().startswith("{") else None


def test_rotation_steps_use_the_configured_dir(minion):
    """Before: FileNotFoundError '.../**********/.wgX.key.next...' (masked lookup)."""
    minion.pillar({"wireguard": {"lookup": {"config_dir": str(minion.config_dir)}}})
    old = wgf_keys.genkey()
    minion.ns.wireguard(IF, old, "10.69.0.1/24")
    (minion.config_dir / f"{IF}.key").write_text(old + "\n")
    proc = minion.call("wireguard_rotate.stage", json.dumps({"cli": [IF]}), check=False)
    assert "**********" not in proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    staged = answer(proc)[IF]
    assert staged["old"] == wgf_keys.pubkey(old)
    next_file = minion.config_dir / f"{IF}.key.next"
    assert oct(next_file.stat().st_mode & 0o777) == "0o600"
    assert wgf_keys.pubkey(next_file.read_text().strip()) == staged["next"]
    orders = {"cli": {"private_key": [IF], "peers": [], "wake": []}}
    proc = minion.call("wireguard_rotate.switch", json.dumps(orders))
    assert answer(proc) == {"moved": 0, "switched": [IF]}
    assert not next_file.exists()
    key_file = minion.config_dir / f"{IF}.key"
    assert wgf_keys.pubkey(key_file.read_text().strip()) == staged["next"]
    assert minion.ns.out(["wg", "show", IF, "public-key"]).strip() == staged["next"]
    for text in (proc.stdout, proc.stderr):
        assert key_file.read_text().strip() not in text


@pytest.mark.parametrize("config_dir", ["/etc", "/", "/usr"])
def test_a_system_dir_is_refused_by_name(minion, config_dir):
    minion.pillar({"wireguard": {"lookup": {"config_dir": config_dir}}})
    for fun in ("wireguard.public_keys", "wireguard.check", "wireguard.clients"):
        proc = minion.call(fun, check=False)
        assert proc.returncode != 0, (fun, proc.stdout)
        assert "wireguard:lookup:config_dir" in proc.stdout + proc.stderr, fun
        assert "Traceback" not in proc.stdout + proc.stderr, fun
    proc = minion.call("wireguard_rotate.stage", json.dumps({"cli": [IF]}), check=False)
    assert proc.returncode != 0 and "wireguard:lookup:config_dir" in proc.stdout + proc.stderr


def test_a_config_dir_argument_is_checked_too(minion):
    minion.pillar({})
    for value in ("/etc", "[x]", "/etc/wireguard/x/.."):
        proc = minion.call("wireguard.public_keys", f"config_dir={value}", check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "config_dir" in out, (value, out)
        assert "Traceback" not in proc.stdout + proc.stderr


def test_config_dir_entries_that_are_directories_are_refused(minion, tmp_path):
    directory = tmp_path / "etc-wireguard"
    directory.mkdir(mode=0o700)
    (directory / "wgd0.key").mkdir()
    (directory / "wgd1.clients.json").mkdir()
    minion.pillar(
        {
            "wireguard": {
                "lookup": {"config_dir": str(directory)},
                "interfaces": {
                    "wgd1": {
                        "address": "10.70.0.1/24",
                        "endpoint": "198.18.70.1",
                        "clients": {"phone": {}},
                    }
                },
            }
        }
    )
    for args in (
        ["wireguard.public_keys"],
        ["wireguard.pillar_interfaces"],
        ["wireguard.clients", "wgd1"],
        ["state.single", "wireguard.private_key", "wgd0", f"config_dir={directory}"],
    ):
        proc = minion.call(*args, check=False)
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out and "IsADirectoryError" not in out, (args, out)
        assert "is a directory" in out, (args, out)


def test_states_called_alone_use_the_configured_dir(minion):
    """`state.single wireguard.private_key wg0` without config_dir: pillar's lookup, not
    /etc/wireguard (test=True: nothing is written, before the fix neither)."""
    minion.pillar(
        {
            "wireguard": {
                "lookup": {"config_dir": str(minion.config_dir)},
                "interfaces": {"wgs0": {"address": "10.71.0.1/24"}},
            }
        }
    )
    proc = minion.call("state.single", "wireguard.private_key", "wgs0", "test=True")
    (state,) = answer(proc).values()
    assert f"({minion.config_dir}/wgs0.key)" in state["comment"], state["comment"]
    minion.pillar(
        {
            "wireguard": {
                "lookup": {"config_dir": "/etc"},
                "interfaces": {"wgs0": {"address": "10.71.0.1/24"}},
            }
        }
    )
    proc = minion.call("state.single", "wireguard.private_key", "wgs0", "test=True", check=False)
    (state,) = answer(proc).values()
    assert state["result"] is False and "wireguard:lookup:config_dir" in state["comment"]
