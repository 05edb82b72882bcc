"""The state module's decisions, with Salt's dunders faked: what a peer state changes,
test mode, restart or not and why, rollback when a step fails, adopting a
hand-written config. A bug here fails without root, a namespace or a container."""

import os

import pytest
from salt.exceptions import CommandExecutionError

import wgf_clients
import wgf_files
import wgf_keys
import wgf_layout
from tests.support import pipeline
from tests.unit.conftest import load

IF = "wg7"


class FakeMinion:
    """The ``__salt__`` functions the states call, over a dict of live peers and a
    pillar; every change they are asked to make is recorded."""

    def __init__(self, tmp_path, pillar=None):
        self.config_dir = str(tmp_path)
        self.pillar = pillar or {"interfaces": {IF: {"address": ["10.7.0.1/24"]}}}
        self.live = {"public_key": None, "listen_port": None, "fwmark": None, "peers": {}}
        self.up = True
        self.applied = []  # (interface, peers, remove)
        self.commands = []
        self.fail_commands = set()  # argv[:3] tuples that fail
        self.service = {"active": True, "restarts": [], "restart_ok": True}
        self.executables = set()
        self.nft_table = None  # the live `table inet wireguard`, as nft lists it

    def functions(self):
        return {
            "wireguard.show": self.show,
            "wireguard.interfaces": lambda: [IF] if self.up else [],
            "wireguard.apply_peers": self.apply_peers,
            "wireguard.resolve_endpoint": self.resolve_endpoint,
            "wireguard.service_name": lambda i: f"wg-quick@{i}",
            "wireguard.pillar_interfaces": self.pillar_interfaces,
            "wireguard.pillar_settings": self.pillar_settings,
            "wireguard_layout.config_dir": lambda config_dir=None: wgf_layout.config_dir(
                self.pillar.get("lookup") or {}, config_dir or self.config_dir
            ),
            "pillar.get": lambda key, default=None, unmask=False: (
                self.pillar if key == "wireguard" else default
            ),
            "cmd.run_all": self.run_all,
            "cmd.has_exec": lambda name: name in self.executables,
            "service.status": lambda name: self.service["active"],
            "service.restart": self.restart,
        }

    def show(self, interface, psk_digests=False):
        if not self.up:
            raise CommandExecutionError(f"Unable to access interface {interface}")
        return {interface: self.live}

    @staticmethod
    def resolve_endpoint(endpoint):
        if ".invalid:" in endpoint:  # RFC 2606: never resolves
            raise CommandExecutionError(f"Endpoint '{endpoint}' does not resolve")
        return [endpoint]

    def apply_peers(self, interface, peers=None, remove=None):
        self.applied.append((interface, peers or [], remove or []))
        return True

    def pillar_interfaces(self, pillar=None, config_dir=None):
        return self.pipeline()["interfaces"]

    def pillar_settings(self, pillar=None):
        return self.pipeline()["settings"]

    def pipeline(self):
        return pipeline.run(
            self.pillar,
            "minion",
            lambda m: {},
            firewall="nftables" if "nft" in self.executables else "none",
            client_records={
                ifname: wgf_files.read(wgf_clients.record_path(self.config_dir, ifname))
                for ifname in (self.pillar.get("interfaces") or {})
            },
        )

    def run_all(self, argv, stdin=None, **kwargs):
        self.commands.append(argv)
        if tuple(argv[:3]) in self.fail_commands:
            return {"retcode": 1, "stdout": "", "stderr": "RTNETLINK answers: nope"}
        if argv[:2] == ["nft", "list"]:
            if self.nft_table is None:
                return {"retcode": 1, "stdout": "", "stderr": "No such file or directory"}
            return {"retcode": 0, "stdout": self.nft_table, "stderr": ""}
        if argv[:2] == ["unshare", "--net"]:  # what the kernel makes of a table: itself
            with open(argv[-2]) as script:
                return {"retcode": 0, "stdout": script.read(), "stderr": ""}
        if argv[:2] == ["nft", "-f"]:
            table = stdin.split("\n", 2)[-1] if "table inet" in stdin.split("\n", 2)[-1] else None
            self.nft_table = table.strip() + "\n" if table else None
        return {"retcode": 0, "stdout": "[]" if "-j" in argv else "", "stderr": ""}

    def restart(self, name):
        self.service["restarts"].append(name)
        return self.service["restart_ok"]


@pytest.fixture
def minion(tmp_path):
    return FakeMinion(tmp_path)


@pytest.fixture
def states(minion, tmp_path, monkeypatch):
    """The state module as Salt loads it, with the fake minion's dunders."""
    monkeypatch.setattr(wgf_layout, "RESTART_PENDING_DIR", str(tmp_path / "pending"))
    module = load("_states/wireguard.py", "wireguard_states_under_test")
    module.__salt__ = minion.functions()
    module.__opts__ = {"test": False}
    module.__context__ = {}
    return module


def key():
    return wgf_keys.pubkey(wgf_keys.genkey())


# ------------------------------------------------------------------ peers


def test_a_new_peer_is_added_with_every_attribute_in_changes(states, minion):
    peer = key()
    ret = states.peer(peer, IF, allowed_ips=["10.7.0.2/32"], persistent_keepalive=25)
    assert ret["result"] is True
    assert ret["changes"]["allowed_ips"] == {"old": None, "new": ["10.7.0.2/32"]}
    assert ret["changes"]["persistent_keepalive"] == {"old": None, "new": 25}
    assert minion.applied == [
        (IF, [{"public_key": peer, "allowed_ips": ["10.7.0.2/32"], "persistent_keepalive": 25}], [])
    ]


def test_test_mode_predicts_and_changes_nothing(states, minion):
    states.__opts__["test"] = True
    ret = states.peer(key(), IF, allowed_ips=["10.7.0.2/32"])
    assert ret["result"] is None and ret["changes"]
    assert minion.applied == []


def test_allowed_ips_compare_regardless_of_order_and_host_bits(states, minion):
    peer = key()
    minion.live["peers"][peer] = {
        "allowed_ips": ["10.7.1.0/24", "10.7.0.2/32"],
        "endpoint": None,
        "persistent_keepalive": None,
        "preshared_key_sha256": None,
    }
    ret = states.peer(peer, IF, allowed_ips=["10.7.0.2/32", "10.7.1.9/24"])
    assert ret["result"] is True and ret["changes"] == {}
    assert minion.applied == []


def test_a_preshared_key_shows_as_set_changed_or_unset_never_as_itself(states, minion):
    peer, psk = key(), wgf_keys.genpsk()
    ret = states.peer(peer, IF, allowed_ips=["10.7.0.2/32"], preshared_key=psk)
    assert ret["changes"]["preshared_key"] == {"old": "unset", "new": "set"}
    new_psk = wgf_keys.genpsk()
    ret = states.peer(peer, IF, allowed_ips=["10.7.0.2/32"], preshared_key=new_psk)
    assert ret["changes"] == {"preshared_key": {"old": "set", "new": "changed"}}
    ret = states.peer(peer, IF, allowed_ips=["10.7.0.2/32"])
    assert ret["changes"] == {"preshared_key": {"old": "set", "new": "unset"}}
    assert psk not in repr(ret) and new_psk not in repr(ret)


def test_a_peer_on_an_interface_that_is_not_up_fails_naming_its_service(states, minion):
    minion.up = False
    ret = states.peer(key(), IF, allowed_ips=["10.7.0.2/32"])
    assert ret["result"] is False and f"wg-quick@{IF}" in ret["comment"]
    states.__opts__["test"] = True
    assert states.peer(key(), IF, allowed_ips=["10.7.0.2/32"])["result"] is None


def test_peer_absent_and_purge_remove_only_what_they_should(states, minion):
    keep, extra = key(), key()
    for peer in (keep, extra):
        minion.live["peers"][peer] = {
            "allowed_ips": [],
            "endpoint": None,
            "persistent_keepalive": None,
            "preshared_key_sha256": None,
        }
    ret = states.peers_purged(IF, keep=[keep])
    assert ret["changes"] == {"removed": {"old": [extra], "new": []}}
    assert minion.applied == [(IF, [], [extra])]
    assert states.peer_absent(extra, IF)["changes"] == {}  # gone already
    ret = states.peer_absent(keep, IF)
    assert ret["changes"] == {"peer": {"old": keep, "new": None}}


# ------------------------------------------------------- config and restart


def test_a_peer_only_change_rewrites_the_file_without_a_restart(states, minion, tmp_path):
    path = tmp_path / f"{IF}.conf"
    states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    minion.pillar["interfaces"][IF]["peers"] = {
        "b": {"public_key": key(), "allowed_ips": ["10.7.0.2/32"]}
    }
    ret = states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    assert "[Peer]" in ret["changes"]["diff"] and "restarted" not in ret["changes"]
    assert minion.service["restarts"] == []
    assert "[Peer]" in path.read_text()


@pytest.mark.parametrize(
    "change, why",
    [
        ({"post_up": ["true"]}, "hooks changed"),
        ({"table": "off"}, "table changed from auto to off"),
    ],
)
def test_what_only_a_restart_applies_restarts_and_says_why(states, minion, tmp_path, change, why):
    states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    minion.pillar["interfaces"][IF].update(change)
    ret = states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    assert why in ret["changes"]["restarted"]["why"]
    assert minion.service["restarts"] == [f"wg-quick@{IF}"]


def test_a_failed_restart_puts_the_previous_file_back(states, minion, tmp_path):
    path = tmp_path / f"{IF}.conf"
    states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    before = path.read_text()
    minion.pillar["interfaces"][IF]["post_up"] = ["false"]
    minion.service["restart_ok"] = False
    ret = states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    assert ret["result"] is False and "previous file was put back" in ret["comment"]
    assert path.read_text() == before
    assert len(minion.service["restarts"]) == 2  # the new file, then the old one


def test_a_restart_an_earlier_run_left_pending_is_made_now(states, minion, tmp_path):
    """A run killed between writing the file and restarting: the next run restarts,
    though the file is already as wanted."""
    states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    minion.pillar["interfaces"][IF]["post_up"] = ["true"]
    minion.restart = lambda name: (_ for _ in ()).throw(KeyboardInterrupt)  # killed there
    states.__salt__ = minion.functions()
    with pytest.raises(KeyboardInterrupt):
        states._config(states._ret(IF), str(tmp_path), f"wg-quick@{IF}")
    assert "PostUp = true" in (tmp_path / f"{IF}.conf").read_text()  # written, not restarted
    minion.restart = FakeMinion.restart.__get__(minion)
    states.__salt__ = minion.functions()
    # the interrupted run took its mark away in `finally`; a SIGKILL would not have
    wgf_files.write_private(wgf_layout.restart_pending(IF), "")
    ret = states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    assert "diff" not in ret["changes"]
    assert "stopped between writing" in ret["changes"]["restarted"]["why"]
    assert minion.service["restarts"] == [f"wg-quick@{IF}"]
    assert not os.path.exists(wgf_layout.restart_pending(IF))
    assert states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")["changes"] == {}


def test_a_restart_with_an_endpoint_that_does_not_resolve_changes_nothing(states, minion, tmp_path):
    """wg-quick would wait for the name forever with the interface down."""
    path = tmp_path / f"{IF}.conf"
    minion.pillar["interfaces"][IF]["peers"] = {
        "hub": {
            "public_key": key(),
            "allowed_ips": ["10.7.0.0/24"],
            "endpoint": "hub.example.invalid:51820",
        }
    }
    states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    before = path.read_text()
    minion.pillar["interfaces"][IF]["table"] = "off"
    ret = states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    assert ret["result"] is False
    assert "hub (hub.example.invalid:51820) does not resolve" in ret["comment"]
    assert path.read_text() == before and minion.service["restarts"] == []


def test_config_in_test_mode_writes_nothing(states, minion, tmp_path):
    states.__opts__["test"] = True
    ret = states.config(IF, config_dir=str(tmp_path), service=f"wg-quick@{IF}")
    assert ret["result"] is None and ret["changes"]["diff"]
    assert not (tmp_path / f"{IF}.conf").exists()


# --------------------------------------------------------------- adoption


def test_a_hand_written_config_keeps_its_private_key(states, minion, tmp_path):
    private = wgf_keys.genkey()
    (tmp_path / f"{IF}.conf").write_text(
        f"[Interface]\nPrivateKey = {private}\nAddress = 10.7.0.1/24\n"
    )
    states.__opts__["test"] = True
    ret = states.private_key(IF, config_dir=str(tmp_path))
    assert ret["changes"]["public_key"]["new"] == wgf_keys.pubkey(private)
    assert not (tmp_path / f"{IF}.key").exists()
    states.__opts__["test"] = False
    ret = states.private_key(IF, config_dir=str(tmp_path))
    assert (tmp_path / f"{IF}.key").read_text().strip() == private
    assert private not in repr(ret)


# ---------------------------------------------------------- live rollback


def test_a_failed_live_step_undoes_the_earlier_ones_and_puts_the_file_back(
    states, minion, tmp_path
):
    path = tmp_path / f"{IF}.conf"
    path.write_text("old\n")
    states.__context__[states.PREVIOUS_CONF] = {IF: (str(path), "old\n")}
    steps = [
        {
            "name": "address 10.7.9.1/24",
            "do": [["ip", "address", "add"]],
            "undo": [["ip", "address", "del"]],
        },
        {"name": "mtu 1300", "do": [["ip", "link", "set"]], "undo": [["ip", "link", "x"]]},
    ]
    minion.fail_commands.add(("ip", "link", "set"))
    with pytest.raises(CommandExecutionError, match="'mtu 1300' failed") as exc:
        states._apply_steps(IF, steps, None)
    assert "previous config file put back" in str(exc.value)
    assert minion.commands == [
        ["ip", "address", "add"],
        ["ip", "link", "set"],
        ["ip", "address", "del"],
    ]
    assert path.read_text() == "old\n"


# ------------------------------------------------------------------ clients


def test_clients_get_keys_once_and_a_revoked_one_loses_files_and_peer(states, minion, tmp_path):
    minion.pillar["interfaces"][IF].update(
        endpoint="198.18.0.1:51820", clients={"phone": {}, "tablet": {"preshared_key": True}}
    )
    ret = states.clients(IF, config_dir=str(tmp_path))
    assert ret["result"] is True, ret["comment"]
    assert sorted(ret["changes"]) == ["phone", "tablet"]
    keydir = wgf_clients.key_dir(str(tmp_path), IF)
    secrets = {
        name: (tmp_path / keydir / name).read_text().strip() for name in sorted(os.listdir(keydir))
    }
    assert sorted(secrets) == ["phone.key", "tablet.key", "tablet.psk"]
    assert all(os.stat(os.path.join(keydir, n)).st_mode & 0o777 == 0o600 for n in secrets)
    assert not any(secret in repr(ret) for secret in secrets.values())
    assert states.clients(IF, config_dir=str(tmp_path))["changes"] == {}  # made once
    tablet = wgf_keys.pubkey(secrets["tablet.key"])
    minion.live["peers"][tablet] = {
        "allowed_ips": [],
        "endpoint": None,
        "persistent_keepalive": None,
        "preshared_key_sha256": None,
    }
    del minion.pillar["interfaces"][IF]["clients"]["tablet"]
    states.__opts__["test"] = True
    assert states.clients(IF, config_dir=str(tmp_path))["result"] is None
    assert sorted(os.listdir(keydir)) == sorted(secrets)  # test mode removed nothing
    states.__opts__["test"] = False
    ret = states.clients(IF, config_dir=str(tmp_path))
    assert ret["result"] is True and sorted(os.listdir(keydir)) == ["phone.key"]
    assert minion.applied[-1] == (IF, [], [tablet])


# ----------------------------------------------------------------- firewall


@pytest.fixture
def firewall_minion(minion):
    minion.executables |= {"nft", "unshare"}
    minion.pillar["interfaces"][IF].update(listen_port=51820, open_port=True)
    return minion


@pytest.fixture
def firewall_states(firewall_minion):
    """The firewall file of the state module (Salt loads it under the same name)."""
    module = load("_states/wireguard_firewall.py", "wireguard_firewall_under_test")
    module.__salt__ = firewall_minion.functions()
    module.__opts__ = {"test": False}
    return module


def test_the_firewall_table_is_replaced_when_it_differs_and_left_alone_when_not(
    firewall_states, firewall_minion
):
    states = firewall_states
    states.__opts__["test"] = True
    ret = states.firewall("fw")
    assert ret["result"] is None and ret["changes"]["nftables"]["old"] is None
    assert firewall_minion.nft_table is None
    states.__opts__["test"] = False
    ret = states.firewall("fw")
    assert "51820" in ret["changes"]["nftables"]["new"]
    assert "51820" in firewall_minion.nft_table
    assert states.firewall("fw")["changes"] == {}
    ret = states.firewall_absent("fw")
    assert ret["changes"]["nftables"]["new"] is None and firewall_minion.nft_table is None
