"""Clients through the real ``salt-call``, on a real wireguard-go interface in a network
namespace: addresses allocated from a small pool and kept, a revoked address handed out
last, an exhausted pool refused before anything changes, keys only in 0600 files, live
peers that follow, and exports written 0600 with nothing secret in any output."""

import datetime
import hashlib
import json
import stat
import subprocess
import time
import uuid

import pytest

import wgf_keys
from tests.support.minion import SaltCall
from tests.support.netns import Netns

IF = f"wgcl{uuid.uuid4().hex[:6]}"  # wireguard-go's sockets are shared by all namespaces


def states_ok(proc):
    ret = json.loads(proc.stdout)["local"]
    assert all(r["result"] is not False for r in ret.values()), proc.stdout
    return ret


class Clients:
    def __init__(self, minion):
        self.minion = minion
        self.dir = minion.config_dir
        self.server_key = wgf_keys.genkey()
        self.outputs = []

    def pillar(self, clients, **iface):
        self.minion.pillar(
            {
                "wireguard": {
                    "lookup": {"config_dir": str(self.dir)},
                    "interfaces": {
                        IF: {
                            "address": "10.70.0.1/24",
                            "listen_port": 51870,
                            "private_key": self.server_key,
                            "endpoint": "198.18.70.1",
                            "pool": "10.70.0.0/29",
                            "clients": clients,
                            **iface,
                        }
                    },
                }
            }
        )

    def call(self, *args, check=True):
        proc = self.minion.call(*args, check=check)
        self.outputs.append(proc.stdout + proc.stderr)
        return proc

    def apply(self, check=True):
        """What state.apply wireguard runs for clients, state by state."""
        procs = [
            self.call("state.single", f"wireguard.{fun}", IF, f"config_dir={self.dir}", check=check)
            for fun in ("private_key", "clients", "config", "client_peers")
        ]
        return [states_ok(p) for p in procs] if check else procs

    def listed(self):
        return json.loads(self.call("wireguard.clients", IF).stdout)["local"][IF]

    def live(self):
        return json.loads(self.call("wireguard.show", IF).stdout)["local"][IF]["peers"]

    def private_keys(self):
        return {p.stem: p.read_text().strip() for p in (self.dir / "clients" / IF).glob("*")}


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    ns = Netns("clients")
    try:
        ns.create()
        setup = Clients(SaltCall(tmp_path_factory.mktemp("clients"), ns))
        ns.wireguard(IF, setup.server_key, "10.70.0.1/24", 51870)
        yield setup
    finally:
        ns.delete()


def test_allocation_is_stable_revoked_addresses_come_last_and_a_full_pool_is_refused(clients):
    # /29: .1 is the interface, .2-.6 are free
    clients.pillar({"a": {}, "b": {"preshared_key": True}, "c": {}})
    clients.apply()
    first = clients.listed()
    assert {n: c["address"] for n, c in first.items()} == {
        "a": ["10.70.0.2"],
        "b": ["10.70.0.3"],
        "c": ["10.70.0.4"],
    }
    live = clients.live()
    assert {live[c["public_key"]]["allowed_ips"][0] for c in first.values()} == {
        "10.70.0.2/32",
        "10.70.0.3/32",
        "10.70.0.4/32",
    }
    assert live[first["b"]["public_key"]]["preshared_key"] is True

    # a re-apply changes nothing
    for ret in clients.apply():
        assert all(not r["changes"] for r in ret.values()), ret

    # b revoked, d added: a and c keep address and key, d does not get b's address
    clients.pillar({"a": {}, "b": {"absent": True}, "c": {}, "d": {}})
    clients.apply()
    second = clients.listed()
    assert second["a"] == first["a"] and second["c"] == first["c"]
    assert second["d"]["address"] == ["10.70.0.5"]
    assert first["b"]["public_key"] not in clients.live()
    assert not (clients.dir / "clients" / IF / "b.key").exists()
    assert not (clients.dir / "clients" / IF / "b.psk").exists()

    # e gets the last never-used address, f the retired one
    clients.pillar({"a": {}, "c": {}, "d": {}, "e": {}, "f": {}})
    clients.apply()
    third = clients.listed()
    assert third["e"]["address"] == ["10.70.0.6"] and third["f"]["address"] == ["10.70.0.3"]
    assert set(clients.live()) == {c["public_key"] for c in third.values()}

    # the pool is exhausted: refused, naming interface and client, and nothing changes
    record = clients.dir / f"{IF}.clients.json"
    before = hashlib.sha256(record.read_bytes()).hexdigest(), sorted(clients.private_keys())
    clients.pillar({"a": {}, "c": {}, "d": {}, "e": {}, "f": {}, "g": {}})
    proc = clients.call(
        "state.single", "wireguard.clients", IF, f"config_dir={clients.dir}", check=False
    )
    assert proc.returncode != 0
    assert f"interface '{IF}', client 'g': the pool is full" in proc.stdout
    assert (
        hashlib.sha256(record.read_bytes()).hexdigest(),
        sorted(clients.private_keys()),
    ) == before
    proc = clients.call("wireguard.pillar_interfaces", check=False)
    assert proc.returncode != 0 and "client 'g': the pool is full" in proc.stdout + proc.stderr


def test_keys_live_only_in_0600_files_and_exports_leave_no_secret_in_any_output(clients, tmp_path):
    clients.pillar({"a": {}, "c": {}, "d": {}, "e": {}, "f": {"preshared_key": True}})
    clients.apply()
    keydir = clients.dir / "clients" / IF
    assert stat.S_IMODE(keydir.stat().st_mode) == 0o700
    assert stat.S_IMODE((clients.dir / "clients").stat().st_mode) == 0o700
    for path in [*keydir.iterdir(), clients.dir / f"{IF}.clients.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    export = tmp_path / "export"
    proc = clients.call("wireguard.client_config", IF, "f", "qr=png", f"path={export}")
    paths = json.loads(proc.stdout)["local"]
    assert paths == {"config": str(export / "f.conf"), "qr": str(export / "f.png")}
    assert stat.S_IMODE(export.stat().st_mode) == 0o700
    text = (export / "f.conf").read_text()
    for path in export.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secrets = clients.private_keys()
    assert f"PrivateKey = {secrets['f']}\n" in text and f"PresharedKey = {secrets['f']}" not in text
    assert f"PresharedKey = {(keydir / 'f.psk').read_text().strip()}\n" in text
    decoded = subprocess.run(
        ["zbarimg", "-q", "--raw", str(export / "f.png")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert decoded == text + "\n"
    clients.call("wireguard.check", "sample=0")
    clients.call("wireguard.render_config", IF)
    everything = "\n".join(clients.outputs) + (clients.minion.root / "minion.log").read_text()
    assert clients.listed()["f"]["public_key"] in everything
    for name, key in secrets.items():
        assert key not in everything, f"{name} leaked"
    # an export into a directory others may enter is refused
    proc = clients.call("wireguard.client_config", IF, "f", "path=/tmp", check=False)
    assert proc.returncode != 0
    assert "can be entered by group or others" in proc.stdout + proc.stderr


def test_check_names_clients(clients):
    checked = json.loads(clients.call("wireguard.check", IF, "sample=0").stdout)["local"]
    facts = checked["interfaces"][IF]["facts"]
    assert sorted(facts["clients"].values()) == ["a", "c", "d", "e", "f"]
    assert not [p for p in checked["interfaces"][IF]["problems"] if p["check"] == "pillar"]


def test_an_export_into_the_config_dir_and_a_client_named_like_an_interface_are_refused(
    clients, tmp_path
):
    """A client named wg1 exported into /etc/wireguard replaced wg1.conf with a config
    holding the client's private key (issue 19): the path is refused however spelled,
    and so is the name."""
    clients.pillar({"a": {}, "c": {}, "d": {}, "e": {}, "f": {"preshared_key": True}})
    clients.apply()
    before = sorted(p.name for p in clients.dir.iterdir())
    link = tmp_path / "link"
    link.symlink_to(clients.dir)
    for path in (
        clients.dir,
        clients.dir / "clients",
        link,
        clients.dir / "new" / "..",
        f"{clients.dir}/../{clients.dir.name}/x",
    ):
        proc = clients.call("wireguard.client_config", IF, "f", f"path={path}", check=False)
        assert proc.returncode != 0, path
        assert "the formula's directory" in proc.stdout + proc.stderr
    assert sorted(p.name for p in clients.dir.iterdir()) == before
    other = f"{IF[:-1]}x"
    clients.minion.pillar(
        {
            "wireguard": {
                "lookup": {"config_dir": str(clients.dir)},
                "interfaces": {
                    IF: {
                        "address": "10.70.0.1/24",
                        "listen_port": 51870,
                        "private_key": clients.server_key,
                        "endpoint": "198.18.70.1",
                        "pool": "10.70.0.0/29",
                        "clients": {other: {}},
                    },
                    other: {"address": "10.71.0.1/24"},
                },
            }
        }
    )
    proc = clients.call("wireguard.pillar_interfaces", check=False)
    assert proc.returncode != 0
    assert (
        f"interface '{IF}', client '{other}', key 'clients': a client may not have the "
        "name of an interface of this minion"
    ) in proc.stdout + proc.stderr


# ------------------------------------------------------ lifecycle (issue 23)


def exported(clients, name):
    return json.loads(clients.call("wireguard.client_config", IF, name).stdout)["local"]


def test_a_disabled_client_leaves_the_live_interface_and_comes_back_with_its_address_and_key(
    clients,
):
    clients.pillar({"la": {}, "lb": {}})
    clients.apply()
    before, config = clients.listed(), exported(clients, "la")
    assert before["la"]["status"] == "active" and before["la"]["public_key"] in clients.live()

    clients.pillar({"la": {"enabled": False}, "lb": {}, "lc": {}})
    clients.apply()
    off = clients.listed()
    assert off["la"]["status"] == "disabled"
    assert (off["la"]["address"], off["la"]["public_key"]) == (
        before["la"]["address"],
        before["la"]["public_key"],
    )
    assert off["lc"]["address"] != before["la"]["address"]  # never handed to another
    live = clients.live()
    assert before["la"]["public_key"] not in live and before["lb"]["public_key"] in live
    conf = (clients.dir / f"{IF}.conf").read_text()
    assert before["la"]["public_key"] not in conf and before["lb"]["public_key"] in conf
    assert (clients.dir / "clients" / IF / "la.key").exists()
    for ret in clients.apply():  # a re-apply changes nothing
        assert all(not r["changes"] for r in ret.values()), ret

    clients.pillar({"la": {"enabled": True}, "lb": {}, "lc": {}})
    clients.apply()
    back = clients.listed()["la"]
    assert back["status"] == "active" and back["public_key"] == before["la"]["public_key"]
    assert back["address"] == before["la"]["address"]
    peer = clients.live()[before["la"]["public_key"]]
    assert peer["allowed_ips"] == [f"{before['la']['address'][0]}/32"]
    assert exported(clients, "la") == config  # nothing to export again


def test_an_expired_client_leaves_the_live_interface_and_its_export_is_refused(clients):
    clients.pillar({"la": {}, "lb": {"expires": "2020-01-01"}})
    clients.apply()
    listed = clients.listed()
    assert listed["lb"]["status"] == "expired"
    assert listed["lb"]["expires"] == "2020-01-01T00:00:00Z"
    assert listed["lb"]["public_key"] not in clients.live()
    assert listed["la"]["public_key"] in clients.live()
    proc = clients.call("wireguard.client_config", IF, "lb", check=False)
    assert proc.returncode != 0
    assert (
        f"interface '{IF}', client 'lb': expired at 2020-01-01T00:00:00Z"
        in proc.stdout + proc.stderr
    )

    # an expiry that passes between two applies, with the same pillar
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=20)
    clients.pillar({"la": {"expires": soon.isoformat()}, "lb": {"expires": "2020-01-01"}})
    clients.apply()
    live = clients.live()
    # (an apply slower than 20 s, on a loaded machine, already met the expiry)
    if datetime.datetime.now(datetime.timezone.utc) < soon:
        assert listed["la"]["public_key"] in live
    time.sleep(max(0.0, (soon - datetime.datetime.now(datetime.timezone.utc)).total_seconds()))
    clients.apply()
    assert clients.listed()["la"]["status"] == "expired"
    assert listed["la"]["public_key"] not in clients.live()


def test_two_clients_of_a_group_export_its_allowed_ips_and_dns(clients):
    clients.pillar(
        {"ga": {"group": "staff"}, "gb": {"group": "staff"}, "gc": {}},
        client_groups={"staff": {"allowed_ips": ["10.0.0.0/8"], "dns": ["10.0.0.53"]}},
    )
    clients.apply()
    listed = clients.listed()
    assert {n: c["group"] for n, c in listed.items()} == {"ga": "staff", "gb": "staff", "gc": None}
    for name in ("ga", "gb"):
        text = exported(clients, name)
        assert "AllowedIPs = 10.0.0.0/8\n" in text and "DNS = 10.0.0.53\n" in text
    assert "AllowedIPs = 10.70.0.0/24\n" in exported(clients, "gc")


@pytest.mark.parametrize(
    ("client", "groups", "words"),
    [
        ({"expires": "tomorrow"}, None, ["client 'x', key 'expires'", "ISO 8601"]),
        ({"group": "nobody"}, {}, ["client 'x', key 'group'", "no client group 'nobody'"]),
        ({"limits": {"rate": "50mb"}}, None, ["client 'x', key 'limits', rate", "no known unit"]),
        (
            {"limits": {"rate": "0mbit"}},
            None,
            ["client 'x', key 'limits', rate", "not more than 0"],
        ),
        ({"limits": {"rate": "-5mbit"}}, None, ["client 'x', key 'limits', rate", "not more"]),
        ({"limits": {"quota": "10GB"}}, None, ["client 'x', key 'limits', quota", "MiB, GiB"]),
        ({"limits": {"quota": "0GiB"}}, None, ["client 'x', key 'limits', quota", "not more"]),
        ({"limits": {"period": "day"}}, None, ["client 'x', key 'limits', period", "'quota'"]),
        ({"colour": "red"}, None, ["client 'x'", "unknown key 'colour'"]),
        (
            {"group": "a"},
            {"a": {"group": "b"}, "b": {"group": "a"}},
            ["client group 'a', key 'group'", "a group cycle: 'a' -> 'b' -> 'a'"],
        ),
        ({"group": "a"}, {"a": {"colour": "red"}}, ["client group 'a'", "unknown key 'colour'"]),
    ],
)
def test_bad_lifecycle_input_is_refused_through_salt_call_naming_it_and_changes_nothing(
    clients, client, groups, words
):
    """Issue 23: each bad `expires`, group, limit or key is refused by the real
    `salt-call`, the state and the listing alike, naming interface, client (or group)
    and key; the clients' record and the live peers stay as they were."""
    path = clients.dir / f"{IF}.clients.json"
    record = path.read_text() if path.exists() else None
    live = clients.live()
    extra = {"client_groups": groups} if groups is not None else {}
    clients.pillar({"la": {}, "x": client}, **extra)
    state = clients.call(
        "state.single", "wireguard.clients", IF, f"config_dir={clients.dir}", check=False
    )
    listing = clients.call("wireguard.clients", IF, check=False)
    for proc in (state, listing):
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0, text
        for word in [f"interface '{IF}'", *words]:
            assert word in text, text
        assert "Traceback" not in text, text
    assert (path.read_text() if path.exists() else None) == record
    assert clients.live() == live
