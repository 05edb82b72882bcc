"""The networkd backend (issue 25) through the real ``salt-call``, where this machine can
run it: it has no systemd as PID 1 and no WireGuard kernel module, so networkd cannot
build an interface here (the QEMU kernel tier does, docs/networkd.md). What runs here:
the refusal on a minion without systemd, and, with the grains of a systemd 252 minion,
what the formula would build (the interfaces' backend, service and files, a test-mode
run) without writing anything."""

import json
import os
import uuid

import pytest

import wgf_keys
from tests.support.minion import salt_call_in_netns

RUN = uuid.uuid4().hex[:6]
IF = f"wgn{RUN}"
PRIVATE = wgf_keys.genkey()


@pytest.fixture(scope="module")
def minion(tmp_path_factory):
    with salt_call_in_netns("networkd", tmp_path_factory.mktemp("networkd")) as salt_call:
        salt_call.pillar(
            {
                "wireguard": {
                    "lookup": {"config_dir": str(salt_call.config_dir), "backend": "networkd"},
                    "interfaces": {
                        IF: {
                            "address": "10.69.0.1/24",
                            "listen_port": 51869,
                            "private_key": PRIVATE,
                            "peers": {
                                "hub": {
                                    "public_key": wgf_keys.pubkey(wgf_keys.genkey()),
                                    "allowed_ips": ["10.69.0.0/24", "172.16.69.0/24"],
                                    "preshared_key": wgf_keys.genpsk(),
                                }
                            },
                        }
                    },
                }
            }
        )
        yield salt_call


def grains(minion, values):
    """The minion's static grains (its config file's ``grains``)."""
    path = minion.root / "conf" / "minion"
    config = json.loads(path.read_text())
    config["grains"] = values
    path.write_text(json.dumps(config))


def written(minion):
    """What the runs wrote: files in the config dir, and networkd's files of ``IF``."""
    return sorted(os.listdir(minion.config_dir)) + [
        p
        for p in (
            f"/etc/systemd/network/50-wireguard-{IF}.netdev",
            f"/etc/systemd/network/50-wireguard-{IF}.network",
            f"/etc/systemd/network/wireguard-keys/{IF}",
        )
        if os.path.lexists(p)
    ]


def test_networkd_on_a_minion_without_systemd_is_refused_naming_the_interface(minion):
    grains(minion, {"init": "sysvinit"})
    proc = minion.call("wireguard.pillar_interfaces", check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"interface '{IF}', key 'backend': networkd needs systemd" in said
    assert "use backend: wg-quick" in said and PRIVATE not in said
    proc = minion.call(
        "state.single", "wireguard.config", IF, f"config_dir={minion.config_dir}", check=False
    )
    assert proc.returncode != 0 and "networkd needs systemd" in proc.stdout
    assert written(minion) == []


def test_an_old_systemd_is_refused_saying_which_it_needs(minion):
    grains(minion, {"init": "systemd", "systemd": {"version": "247", "features": ""}})
    proc = minion.call("wireguard.pillar_interfaces", check=False)
    assert proc.returncode != 0
    assert "networkd needs systemd 250 or newer" in proc.stdout + proc.stderr
    assert "this minion has 247" in proc.stdout + proc.stderr


def test_a_systemd_minion_gets_networkds_service_and_files_and_test_mode_writes_nothing(minion):
    grains(minion, {"init": "systemd", "systemd": {"version": "252", "features": ""}})
    found = json.loads(minion.call("wireguard.pillar_interfaces").stdout)["local"][IF]
    assert found["backend"] == "networkd" and found["service"] == "systemd-networkd"
    assert found["files"]["netdev"] == f"/etc/systemd/network/50-wireguard-{IF}.netdev"
    assert found["files"]["network"] == f"/etc/systemd/network/50-wireguard-{IF}.network"
    assert found["files"]["networkd_keys"] == f"/etc/systemd/network/wireguard-keys/{IF}"
    proc = minion.call(
        "state.single",
        "wireguard.config",
        IF,
        f"config_dir={minion.config_dir}",
        "service=systemd-networkd",
        "test=True",
    )
    (ret,) = json.loads(proc.stdout)["local"].values()
    assert ret["result"] is None
    assert "Kind=wireguard" in ret["changes"]["diff"]
    assert "PrivateKeyFile=/etc/systemd/network/wireguard-keys/" in ret["changes"]["diff"]
    assert "Destination=172.16.69.0/24" in ret["changes"]["diff"]
    assert PRIVATE not in proc.stdout + proc.stderr
    assert written(minion) == []


def test_networkd_absent_with_no_file_of_the_interface_changes_nothing(minion):
    grains(minion, {"init": "systemd", "systemd": {"version": "252", "features": ""}})
    proc = minion.call(
        "state.single", "wireguard.networkd_absent", IF, f"config_dir={minion.config_dir}"
    )
    (ret,) = json.loads(proc.stdout)["local"].values()
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == f"networkd has no file of {IF}"
    proc = minion.call("state.single", "wireguard.networkd_absent", "a b", check=False)
    (ret,) = json.loads(proc.stdout)["local"].values()
    assert ret["result"] is False and "'a b'" in ret["comment"], ret["comment"]
