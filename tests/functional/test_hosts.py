"""Peers by name (issue 22 part 3) through the user's door, the real ``salt-call``: the
states ``wireguard.hosts`` and ``wireguard.hosts_absent`` against a hosts file of the
test's own (``path=``), predicted with test=True, written, renamed, removed, and a
second apply that changes nothing; every other byte of the file stays, and so do its
mode and owner."""

import json
import os
import uuid

import pytest

import wgf_keys
from tests.support.minion import salt_call_in_netns

IF = f"wgh{uuid.uuid4().hex[:6]}"
OTHERS = b"127.0.0.1\tlocalhost\n# caf\xe9: not UTF-8, kept as it is\r\n198.18.0.1 hub.example\n"


@pytest.fixture(scope="module")
def minion(tmp_path_factory):
    with salt_call_in_netns("hosts", tmp_path_factory.mktemp("hosts")) as salt_call:
        yield salt_call


def pillar(minion, peers, **extra):
    return {
        "wireguard": {
            "lookup": {"config_dir": str(minion.config_dir)},
            "interfaces": {
                IF: {
                    "address": "10.71.0.1/24",
                    "listen_port": 51871,
                    "peers": {
                        name: {"public_key": key, "allowed_ips": [address]}
                        for name, (key, address) in peers.items()
                    },
                    "clients": {"phone": {"address": "10.71.0.200", "public_key": KEY_C}},
                    **extra,
                }
            },
        }
    }


KEY_A, KEY_B, KEY_C = (wgf_keys.pubkey(wgf_keys.genkey()) for _ in range(3))


def apply(minion, path, *more, state="wireguard.hosts", check=True):
    if state == "wireguard.hosts":
        more = (f"config_dir={minion.config_dir}", *more)
    proc = minion.call("state.single", state, IF, f"path={path}", *more, check=False)
    (ret,) = json.loads(proc.stdout)["local"].values()
    if check:
        assert ret["result"] is not False, ret["comment"]
    return ret


def block(*lines):
    return (
        f"# BEGIN wireguard-formula {IF}\n"
        + "".join(f"{line}\n" for line in lines)
        + f"# END wireguard-formula {IF}\n"
    ).encode()


def test_the_block_follows_the_peers_and_leaves_the_rest_of_the_file(minion, tmp_path):
    path = tmp_path / "hosts"
    path.write_bytes(OTHERS)
    os.chmod(path, 0o644)
    os.chown(path, 0, 4)
    peers = {"Laptop": (KEY_A, "10.71.0.2/32"), "site-b": (KEY_B, "10.71.0.3/32")}
    minion.pillar(pillar(minion, peers, hosts={"domain": "wg.example"}))
    wanted = [
        "10.71.0.1 cli.wg.example",
        "10.71.0.2 laptop.wg.example",
        "10.71.0.3 site-b.wg.example",
        "10.71.0.200 phone.wg.example",
    ]

    ret = apply(minion, path, "test=True")
    assert ret["result"] is None and ret["changes"] == {"old": None, "new": wanted}
    assert path.read_bytes() == OTHERS

    ret = apply(minion, path)
    assert ret["result"] is True and ret["changes"] == {"old": None, "new": wanted}
    assert path.read_bytes() == OTHERS + block(*wanted)
    stat = os.stat(path)
    assert (stat.st_mode & 0o777, stat.st_uid, stat.st_gid) == (0o644, 0, 4)

    ret = apply(minion, path)  # a second apply: nothing to do
    assert ret["result"] is True and ret["changes"] == {}

    # renamed live: the old name goes, the new one comes, at the same address
    minion.pillar(
        pillar(
            minion,
            {"notebook": (KEY_A, "10.71.0.2/32"), "site-b": (KEY_B, "10.71.0.3/32")},
            hosts={"domain": "wg.example"},
        )
    )
    ret = apply(minion, path)
    renamed = [wanted[0], "10.71.0.2 notebook.wg.example", *wanted[2:]]
    assert ret["changes"] == {"old": wanted, "new": renamed}
    assert path.read_bytes() == OTHERS + block(*renamed)

    # a removed peer's line goes
    minion.pillar(
        pillar(minion, {"notebook": (KEY_A, "10.71.0.2/32")}, hosts={"domain": "wg.example"})
    )
    assert apply(minion, path)["changes"]["new"] == renamed[:2] + renamed[3:]
    path.write_bytes(path.read_bytes() + b"10.9.9.9 added.after\n")  # the admin's own line

    # the option removed: the block goes, the admin's lines stay
    minion.pillar(pillar(minion, {"notebook": (KEY_A, "10.71.0.2/32")}))
    ret = apply(minion, path)
    assert ret["changes"]["new"] is None
    assert path.read_bytes() == OTHERS + b"10.9.9.9 added.after\n"
    assert apply(minion, path)["changes"] == {}


def test_clean_removes_the_block_and_test_mode_does_not(minion, tmp_path):
    path = tmp_path / "hosts"
    minion.pillar(pillar(minion, {"laptop": (KEY_A, "10.71.0.2/32")}, hosts={"domain": "x.lan"}))
    path.write_bytes(OTHERS)
    apply(minion, path)
    written = path.read_bytes()
    assert written != OTHERS
    ret = apply(minion, path, "test=True", state="wireguard.hosts_absent")
    assert ret["result"] is None and path.read_bytes() == written
    ret = apply(minion, path, state="wireguard.hosts_absent")
    assert ret["changes"]["new"] is None and path.read_bytes() == OTHERS
    assert apply(minion, path, state="wireguard.hosts_absent")["changes"] == {}


@pytest.mark.parametrize(
    ("hosts", "peer", "said"),
    [
        ({"domain": "wg_example.lan"}, "laptop", "'wg_example.lan' is not a DNS name"),
        ({"domain": "-wg.lan"}, "laptop", "'-wg.lan' is not a DNS name"),
        ({"domain": "wg.lan"}, "my_laptop", "peer 'my_laptop' is not a DNS label"),
    ],
)
def test_bad_input_is_refused_naming_the_place_and_nothing_changes(
    minion, tmp_path, hosts, peer, said
):
    path = tmp_path / "hosts"
    path.write_bytes(OTHERS)
    minion.pillar(pillar(minion, {peer: (KEY_A, "10.71.0.2/32")}, hosts=hosts))
    ret = apply(minion, path, check=False)
    assert ret["result"] is False
    assert f"interface '{IF}', key 'hosts'" in ret["comment"] and said in ret["comment"]
    assert path.read_bytes() == OTHERS
