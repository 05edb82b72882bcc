"""The state module's decisions, with Salt's dunders faked and a fake host adapter
(``tests/support/fake_host.py``) in place of the minion: what a peer state changes,
test mode, restart or not and why, rollback when a step fails, adopting a
hand-written config, clients and the firewall. A bug here fails without root, a
namespace or a container: the fake records every command and write the states ask for.
"""

import json
import os

import pytest

import wgf_files
import wgf_keys
import wgf_layout
import wgf_state
from tests.support.fake_host import FakeHost
from tests.support.fake_minion import IF, FakeMinion, hand_in
from tests.unit.conftest import StateModule, load


@pytest.fixture
def minion(tmp_path):
    return FakeMinion(tmp_path)


@pytest.fixture
def host():
    return FakeHost()


#: The files of the ``wireguard`` state module that Salt loads under the one name.
STATE_FILES = ("wireguard", "wireguard_files", "wireguard_interface", "wireguard_clients")


@pytest.fixture
def states(minion, host, tmp_path, monkeypatch):
    module = StateModule(STATE_FILES, minion.functions(), {"test": False}, tag="states_under_test")
    monkeypatch.setattr(wgf_layout, "RESTART_PENDING_DIR", str(tmp_path / "pending"))
    hand_in(monkeypatch, host)
    return module


def key():
    return wgf_keys.pubkey(wgf_keys.genkey())


SERVICE = f"wg-quick@{IF}"


def live_peer(allowed_ips=(), keepalive=None, psk=None):
    return {
        "allowed_ips": list(allowed_ips),
        "endpoint": None,
        "persistent_keepalive": keepalive,
        "preshared_key_sha256": wgf_keys.digest(psk) if psk else None,
    }


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


def test_a_changed_peer_gets_only_what_differs_and_a_second_run_nothing(states, minion):
    peer = key()
    minion.live["peers"][peer] = live_peer(["10.7.0.2/32"], keepalive=25)
    ret = states.peer(peer, IF, allowed_ips=["10.7.0.3/32"], persistent_keepalive=25)
    assert ret["changes"] == {"allowed_ips": {"old": ["10.7.0.2/32"], "new": ["10.7.0.3/32"]}}
    assert "changed" in ret["comment"]
    assert minion.applied == [(IF, [{"public_key": peer, "allowed_ips": ["10.7.0.3/32"]}], [])]
    # the run remembers what it set: the same state again changes nothing
    ret = states.peer(peer, IF, allowed_ips=["10.7.0.3/32"], persistent_keepalive=25)
    assert ret["changes"] == {} and len(minion.applied) == 1


def test_test_mode_predicts_and_changes_nothing(states, minion, host):
    states.__opts__["test"] = True
    ret = states.peer(key(), IF, allowed_ips=["10.7.0.2/32"])
    assert ret["result"] is None and ret["changes"]
    assert minion.applied == [] and host.done == []


def test_allowed_ips_compare_regardless_of_order_and_host_bits(states, minion, host):
    peer = key()
    minion.live["peers"][peer] = live_peer(["10.7.1.0/24", "10.7.0.2/32"])
    ret = states.peer(peer, IF, allowed_ips=["10.7.0.2/32", "10.7.1.9/24"])
    assert ret["result"] is True and ret["changes"] == {}
    assert minion.applied == [] and host.done == []


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
    assert ret["result"] is False and SERVICE in ret["comment"]
    states.__opts__["test"] = True
    assert states.peer(key(), IF, allowed_ips=["10.7.0.2/32"])["result"] is None


def test_peer_absent_and_purge_remove_only_what_they_should(states, minion):
    keep, extra = key(), key()
    for peer in (keep, extra):
        minion.live["peers"][peer] = live_peer()
    ret = states.peers_purged(IF, keep=[keep])
    assert ret["changes"] == {"removed": {"old": [extra], "new": []}}
    assert minion.applied == [(IF, [], [extra])]
    assert states.peer_absent(extra, IF)["changes"] == {}  # gone already
    ret = states.peer_absent(keep, IF)
    assert ret["changes"] == {"peer": {"old": keep, "new": None}}
    assert minion.applied[-1] == (IF, [], [keep])


def test_a_purge_keeps_the_clients_when_asked(states, minion, tmp_path):
    minion.pillar["interfaces"][IF].update(endpoint="198.18.0.1:51820", clients={"phone": {}})
    states.clients(IF, config_dir=str(tmp_path))
    phone = wgf_keys.pubkey(
        wgf_files.read_key(wgf_layout.Layout(str(tmp_path)).client_key(IF, "phone", "key"))
    )
    minion.live["peers"][phone] = live_peer()
    assert states.peers_purged(IF, keep_clients=True, config_dir=str(tmp_path))["changes"] == {}
    ret = states.peers_purged(IF, config_dir=str(tmp_path))
    assert ret["changes"] == {"removed": {"old": [phone], "new": []}}


def test_peers_sets_every_declared_peer_in_one_go_and_a_second_run_nothing(states, minion):
    """``wireguard.peers`` (issue 24: the formula's one state for an interface with more
    than 200 peers) decides what ``peer`` and ``peer_absent`` decide, in one apply."""
    same, moved, new, gone, psk = key(), key(), key(), key(), wgf_keys.genpsk()
    minion.pillar["interfaces"][IF]["peers"] = {
        "same": {"public_key": same, "allowed_ips": ["10.7.0.2/32"], "persistent_keepalive": 25},
        "moved": {"public_key": moved, "allowed_ips": ["10.7.0.4/32"]},
        "new": {"public_key": new, "allowed_ips": ["10.7.0.5/32"], "preshared_key": psk},
        "gone": {"public_key": gone, "absent": True},
    }
    minion.live["peers"][same] = live_peer(["10.7.0.2/32"], keepalive=25)
    minion.live["peers"][moved] = live_peer(["10.7.0.3/32"])
    minion.live["peers"][gone] = live_peer(["10.7.0.9/32"])
    states.__opts__["test"] = True
    ret = states.peers(IF)
    assert ret["result"] is None and sorted(ret["changes"]) == ["gone", "moved", "new"]
    assert minion.applied == []
    states.__opts__["test"] = False
    ret = states.peers(IF)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"]["moved"] == {
        "allowed_ips": {"old": ["10.7.0.3/32"], "new": ["10.7.0.4/32"]}
    }
    assert ret["changes"]["new"]["preshared_key"] == {"old": "unset", "new": "set"}
    assert ret["changes"]["gone"] == {"peer": {"old": gone, "new": None}}
    assert "same" not in ret["changes"] and psk not in repr(ret)
    ((interface, peers, remove),) = minion.applied  # one apply for all of them
    assert interface == IF and remove == [gone]
    assert sorted(p["public_key"] for p in peers) == sorted([moved, new])
    assert states.peers(IF)["changes"] == {}  # the run remembers what it set
    assert len(minion.applied) == 1


def test_a_purge_keeps_the_declared_peers_when_asked(states, minion):
    declared, old, extra = key(), key(), key()
    minion.pillar["interfaces"][IF]["peers"] = {
        "declared": {"public_key": declared, "allowed_ips": ["10.7.0.2/32"]},
        "old": {"public_key": old, "absent": True},
    }
    for peer in (declared, old, extra):
        minion.live["peers"][peer] = live_peer()
    ret = states.peers_purged(IF, keep_declared=True)
    assert ret["changes"] == {"removed": {"old": sorted([old, extra]), "new": []}}


# ------------------------------------------------------- config and restart


def config(states, tmp_path):
    return states.config(IF, config_dir=str(tmp_path), service=SERVICE)


def test_a_new_config_file_is_written_once_and_then_left_alone(states, host, tmp_path):
    path = str(tmp_path / f"{IF}.conf")
    ret = config(states, tmp_path)
    assert ret["result"] is True and "Address = 10.7.0.1/24" in ret["changes"]["diff"]
    assert ("write_secret", path) in host.done and ("restart", SERVICE) not in host.done
    host.done.clear()
    assert config(states, tmp_path)["changes"] == {}
    assert [d for d in host.done if d[0] != "remove_stale_temps"] == []


def test_a_no_op_asks_the_service_nothing(states, minion, host, tmp_path):
    """Up as its file says: nothing would restart, so the service is not asked (Salt's
    service.status is two systemctl calls on every minion's every run; issue 24)."""
    config(states, tmp_path)
    host.asked.clear()
    assert config(states, tmp_path)["changes"] == {}
    assert not [a for a in host.asked if a[0] in ("service_active", "unit_result")]
    minion.up = False
    assert "restarted" in config(states, tmp_path)["changes"]
    assert ("service_active", SERVICE) in host.asked


def test_a_peer_only_change_rewrites_the_file_without_a_restart(states, minion, host, tmp_path):
    path = tmp_path / f"{IF}.conf"
    config(states, tmp_path)
    minion.pillar["interfaces"][IF]["peers"] = {
        "b": {"public_key": key(), "allowed_ips": ["10.7.0.2/32"]}
    }
    ret = config(states, tmp_path)
    assert "[Peer]" in ret["changes"]["diff"] and "restarted" not in ret["changes"]
    assert not any(d[0] == "restart" for d in host.done)
    assert "[Peer]" in path.read_text()


@pytest.mark.parametrize(
    "change, why",
    [
        ({"post_up": ["true"]}, "hooks changed"),
        ({"table": "off"}, "table changed from auto to off"),
    ],
)
def test_what_only_a_restart_applies_restarts_and_says_why(
    states, minion, host, tmp_path, change, why
):
    config(states, tmp_path)
    minion.pillar["interfaces"][IF].update(change)
    ret = config(states, tmp_path)
    assert why in ret["changes"]["restarted"]["why"]
    assert f"{SERVICE} restarted because" in ret["comment"]
    path = str(tmp_path / f"{IF}.conf")
    pending = wgf_layout.restart_pending(IF)
    assert [d for d in host.done if d[0] != "remove_stale_temps"][-4:] == [
        ("write_secret", pending),  # the mark a killed run leaves for the next one
        ("write_secret", path),
        ("restart", SERVICE),
        ("remove", pending),
    ]


def test_a_restart_is_left_out_when_the_service_is_not_running(states, minion, host, tmp_path):
    config(states, tmp_path)
    host.active = False
    minion.pillar["interfaces"][IF]["post_up"] = ["true"]
    ret = config(states, tmp_path)
    assert "restarted" not in ret["changes"] and ret["changes"]["diff"]
    assert not any(d[0] == "restart" for d in host.done)


def test_a_running_service_whose_interface_is_gone_is_restarted(states, minion, host, tmp_path):
    config(states, tmp_path)
    minion.up = False
    ret = config(states, tmp_path)
    assert ret["changes"] == {"restarted": {"service": SERVICE, "why": "its interface is not up"}}
    assert ("restart", SERVICE) in host.done


def test_a_dns_change_restarts_where_resolvconf_keeps_no_record(states, minion, host, tmp_path):
    config(states, tmp_path)
    minion.pillar["interfaces"][IF]["dns"] = ["10.7.0.53"]
    host.dns_dir = None  # systemd-resolved: wireguard.interface cannot change it in place
    ret = config(states, tmp_path)
    assert "its DNS changed" in ret["changes"]["restarted"]["why"]
    host.done.clear()
    minion.pillar["interfaces"][IF]["dns"] = ["10.7.0.54"]
    host.dns_dir = str(tmp_path / "records")  # openresolv: changed live, no restart
    ret = config(states, tmp_path)
    assert "restarted" not in ret["changes"]
    assert not any(d[0] == "restart" for d in host.done)


def test_a_failed_restart_puts_the_previous_file_back(states, minion, host, tmp_path):
    path = tmp_path / f"{IF}.conf"
    config(states, tmp_path)
    before = path.read_text()
    minion.pillar["interfaces"][IF]["post_up"] = ["false"]
    host.restart_ok = False
    ret = config(states, tmp_path)
    assert ret["result"] is False and "previous file was put back" in ret["comment"]
    assert host.log in ret["comment"]  # what the service said, from its journal
    assert path.read_text() == before
    writes = [d for d in host.done if d[0] in ("write_secret", "restart")]
    assert writes[-4:] == [
        ("write_secret", str(path)),  # the new file
        ("restart", SERVICE),
        ("write_secret", str(path)),  # the old one back
        ("restart", SERVICE),
    ]


def test_a_restart_refused_for_the_start_limit_is_made_after_a_reset(
    states, minion, host, tmp_path
):
    config(states, tmp_path)
    minion.pillar["interfaces"][IF]["post_up"] = ["true"]
    host.refuse_starts = 1
    ret = config(states, tmp_path)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"]["restarted"]["start_limit_reset"] is True
    restarts = [d for d in host.done if d[0] in ("restart", "reset_failed")]
    assert restarts == [("restart", SERVICE), ("reset_failed", SERVICE), ("restart", SERVICE)]


def test_a_service_down_for_its_start_limit_gets_the_limit_reset(states, minion, host, tmp_path):
    config(states, tmp_path)
    host.active, minion.up = False, False  # wg-quick failed: no interface either
    host.results[SERVICE] = "start-limit-hit"
    host.done.clear()
    states.__opts__["test"] = True
    ret = config(states, tmp_path)
    assert ret["result"] is None and "start_limit_reset" in ret["changes"]
    assert host.done == []
    states.__opts__["test"] = False
    ret = config(states, tmp_path)
    assert list(ret["changes"]) == ["start_limit_reset"]
    assert ("reset_failed", SERVICE) in host.done
    assert not any(d[0] == "restart" for d in host.done)  # the service state starts it


def test_a_restart_an_earlier_run_left_pending_is_made_now(states, minion, host, tmp_path):
    """A run killed between writing the file and restarting: the next run restarts,
    though the file is already as wanted."""
    config(states, tmp_path)
    minion.pillar["interfaces"][IF]["post_up"] = ["true"]
    host.restart = lambda name: (_ for _ in ()).throw(KeyboardInterrupt)  # killed there
    with pytest.raises(KeyboardInterrupt):
        config(states, tmp_path)
    assert "PostUp = true" in (tmp_path / f"{IF}.conf").read_text()  # written, not restarted
    del host.restart
    # the interrupted run took its mark away in `finally`; a SIGKILL would not have
    wgf_files.write_private(wgf_layout.restart_pending(IF), "")
    ret = config(states, tmp_path)
    assert "diff" not in ret["changes"]
    assert "stopped between writing" in ret["changes"]["restarted"]["why"]
    assert [d for d in host.done if d[0] == "restart"] == [("restart", SERVICE)]
    assert not os.path.exists(wgf_layout.restart_pending(IF))
    assert config(states, tmp_path)["changes"] == {}


def test_a_restart_with_an_endpoint_that_does_not_resolve_changes_nothing(
    states, minion, host, tmp_path
):
    """wg-quick would wait for the name forever with the interface down."""
    path = tmp_path / f"{IF}.conf"
    minion.pillar["interfaces"][IF]["peers"] = {
        "hub": {
            "public_key": key(),
            "allowed_ips": ["10.7.0.0/24"],
            "endpoint": "hub.example.invalid:51820",
        }
    }
    config(states, tmp_path)
    before = path.read_text()
    host.done.clear()
    minion.pillar["interfaces"][IF]["table"] = "off"
    ret = config(states, tmp_path)
    assert ret["result"] is False
    assert "hub (hub.example.invalid:51820) does not resolve" in ret["comment"]
    assert path.read_text() == before
    assert [d for d in host.done if d[0] != "remove_stale_temps"] == []


def test_config_in_test_mode_writes_nothing(states, minion, host, tmp_path):
    states.__opts__["test"] = True
    ret = config(states, tmp_path)
    assert ret["result"] is None and ret["changes"]["diff"]
    assert not (tmp_path / f"{IF}.conf").exists()
    states.__opts__["test"] = False
    config(states, tmp_path)
    minion.pillar["interfaces"][IF]["post_up"] = ["true"]
    host.done.clear()
    states.__opts__["test"] = True
    ret = config(states, tmp_path)
    assert ret["result"] is None and "hooks changed" in ret["changes"]["restarted"]["why"]
    assert host.done == []


def test_a_config_file_with_a_loose_mode_is_made_private(states, host, tmp_path):
    path = tmp_path / f"{IF}.conf"
    config(states, tmp_path)
    os.chmod(path, 0o644)
    host.done.clear()
    states.__opts__["test"] = True
    ret = config(states, tmp_path)
    assert ret["result"] is None and ret["changes"] == {"mode": {"old": "0o644", "new": "0o600"}}
    assert host.done == []
    states.__opts__["test"] = False
    ret = config(states, tmp_path)
    assert ret["changes"] == {"mode": {"old": "0o644", "new": "0o600"}}
    assert ("make_private", str(path)) in host.done


# --------------------------------------------------------------- private key


def test_a_private_key_is_generated_once_and_only_its_public_key_shown(states, host, tmp_path):
    path = tmp_path / f"{IF}.key"
    ret = states.private_key(IF, config_dir=str(tmp_path))
    made = path.read_text().strip()
    assert ret["changes"] == {"public_key": {"old": None, "new": wgf_keys.pubkey(made)}}
    assert ("write_secret", str(path)) in host.done and made not in repr(ret)
    host.done.clear()
    assert states.private_key(IF, config_dir=str(tmp_path))["changes"] == {}
    assert [d for d in host.done if d[0] != "remove_stale_temps"] == []


def test_a_private_key_from_pillar_replaces_the_one_on_disk(states, minion, host, tmp_path):
    states.private_key(IF, config_dir=str(tmp_path))
    given = wgf_keys.genkey()
    minion.pillar["interfaces"][IF]["private_key"] = given
    states.__opts__["test"] = True
    host.done.clear()
    ret = states.private_key(IF, config_dir=str(tmp_path))
    assert ret["result"] is None and host.done == []
    states.__opts__["test"] = False
    ret = states.private_key(IF, config_dir=str(tmp_path))
    assert ret["changes"]["public_key"]["new"] == wgf_keys.pubkey(given)
    assert (tmp_path / f"{IF}.key").read_text().strip() == given


# --------------------------------------------------------------- adoption


def test_a_hand_written_config_keeps_its_private_key(states, minion, host, tmp_path):
    private = wgf_keys.genkey()
    (tmp_path / f"{IF}.conf").write_text(
        f"[Interface]\nPrivateKey = {private}\nAddress = 10.7.0.1/24\n"
    )
    states.__opts__["test"] = True
    ret = states.private_key(IF, config_dir=str(tmp_path))
    assert ret["changes"]["public_key"]["new"] == wgf_keys.pubkey(private)
    assert not (tmp_path / f"{IF}.key").exists() and host.done == []
    states.__opts__["test"] = False
    ret = states.private_key(IF, config_dir=str(tmp_path))
    assert "taken from" in ret["comment"]
    assert (tmp_path / f"{IF}.key").read_text().strip() == private
    assert private not in repr(ret)


def test_a_running_hand_made_interface_is_adopted_in_place(states, minion, host, tmp_path):
    """An interface someone brought up by hand, running what pillar says but for its
    address and listen port: the formula changes those live, without a restart."""
    private = wgf_keys.genkey()
    (tmp_path / f"{IF}.key").write_text(private + "\n")
    minion.pillar["interfaces"][IF]["listen_port"] = 51820
    minion.live.update(public_key=wgf_keys.pubkey(private), listen_port=40000)
    host.ip[("addr", "show", "dev", IF)] = [
        {"mtu": 1420, "addr_info": [{"local": "10.7.0.9", "prefixlen": 24}]}
    ]
    ret = states.interface(IF, config_dir=str(tmp_path))
    assert ret["result"] is True, ret["comment"]
    assert "no restart" in ret["comment"]
    assert ("wg_set", IF, None, 51820, None) in host.done
    assert ("run", ["ip", "-4", "address", "add", "10.7.0.1/24", "dev", IF]) in host.done
    assert ("run", ["ip", "-4", "address", "del", "10.7.0.9/24", "dev", IF]) in host.done
    assert not any(d[0] in ("restart", "write_secret") for d in host.done)


# ---------------------------------------------------------- live interface


@pytest.fixture
def drifted(states, minion, host, tmp_path):
    """A live interface that differs from its config file in every way changed in
    place: address, MTU, DNS and listen port; its old file is the run's previous one."""
    minion.pillar["interfaces"][IF].update(listen_port=51820, mtu=1380, dns=["10.7.0.53"])
    host.dns_dir = str(tmp_path / "records")
    host.ip[("addr", "show", "dev", IF)] = [
        {"mtu": 1420, "addr_info": [{"local": "10.7.9.1", "prefixlen": 24}]}
    ]
    path = tmp_path / f"{IF}.conf"
    path.write_text("old\n")
    states.__context__[wgf_state.PREVIOUS_CONF] = {IF: (str(path), "old\n")}
    return path


#: The steps of ``drifted``, in the order the plan runs them, each as the fake records it.
DRIFT = [
    ("run", ["ip", "-4", "address", "add", "10.7.0.1/24", "dev", IF]),
    ("run", ["ip", "link", "set", "mtu", "1380", "dev", IF]),
    ("run", ["ip", "-4", "address", "del", "10.7.9.1/24", "dev", IF]),
    ("set_dns", IF, "nameserver 10.7.0.53\n"),
    ("wg_set", IF, None, 51820, None),
]
UNDO = [
    ("run", ["ip", "-4", "address", "del", "10.7.0.1/24", "dev", IF]),
    ("run", ["ip", "link", "set", "mtu", "1420", "dev", IF]),
    ("run", ["ip", "-4", "address", "add", "10.7.9.1/24", "dev", IF]),
    ("remove_dns", IF),
]


def test_a_drifted_interface_is_changed_in_place_step_by_step(states, host, drifted, tmp_path):
    states.__opts__["test"] = True
    ret = states.interface(IF, config_dir=str(tmp_path))
    assert ret["result"] is None and set(ret["changes"]) >= {"address", "mtu", "dns"}
    assert host.done == []
    states.__opts__["test"] = False
    ret = states.interface(IF, config_dir=str(tmp_path))
    assert ret["result"] is True, ret["comment"]
    assert host.done == DRIFT


@pytest.mark.parametrize("k", range(len(DRIFT)))
def test_a_failed_live_step_undoes_the_earlier_ones_and_puts_the_file_back(
    states, host, drifted, tmp_path, k
):
    method, *args = DRIFT[k]
    host.fail(method, *(args[0] if method == "run" else args[:1]))
    ret = states.interface(IF, config_dir=str(tmp_path))
    assert ret["result"] is False and ret["changes"] == {}
    assert "the live step" in ret["comment"] and "failed" in ret["comment"]
    assert "previous config file put back" in ret["comment"]
    assert (
        host.done
        == [
            *DRIFT[:k],
            DRIFT[k],  # tried, and failed
            *reversed(UNDO[:k]),
            ("write_secret", str(drifted)),
        ]
    )
    assert drifted.read_text() == "old\n"


def test_an_interface_that_is_not_up_is_left_to_its_service(states, minion, host, tmp_path):
    minion.up = False
    ret = states.interface(IF, config_dir=str(tmp_path))
    assert ret["result"] is True and ret["changes"] == {} and "not up" in ret["comment"]
    assert host.done == []


@pytest.mark.parametrize(
    "allowed, fwmark",
    [
        (["10.7.0.0/24"], None),
        # a full tunnel: the lookup carries wg-quick's fwmark, as WireGuard's packets do
        (["0.0.0.0/0"], 51820),
    ],
)
def test_the_automatic_mtu_comes_from_the_route_to_the_endpoint(
    states, minion, host, tmp_path, allowed, fwmark
):
    hub = key()
    minion.pillar["interfaces"][IF]["peers"] = {
        "hub": {"public_key": hub, "allowed_ips": allowed, "endpoint": "198.18.0.2:51820"}
    }
    minion.live["peers"][hub] = dict(live_peer(allowed), endpoint="198.18.0.2:51820")
    minion.live["fwmark"] = 51820
    host.routes["198.18.0.2"] = {"dst": "198.18.0.2", "dev": "eth1"}
    host.links = {"eth1": 1400, "eth0": 9000}
    host.ip[("addr", "show", "dev", IF)] = [
        {"mtu": 1420, "addr_info": [{"local": "10.7.0.1", "prefixlen": 24}]}
    ]
    ret = states.interface(IF, config_dir=str(tmp_path))
    assert ret["changes"]["mtu"] == {"old": 1420, "new": 1320}, ret
    assert ("endpoint_routes", ["198.18.0.2"], fwmark) in host.asked
    assert ("run", ["ip", "link", "set", "mtu", "1320", "dev", IF]) in host.done


# ------------------------------------------------------------------ clients


def test_clients_get_keys_once_and_a_revoked_one_loses_files_and_peer(
    states, minion, host, tmp_path
):
    minion.pillar["interfaces"][IF].update(
        endpoint="198.18.0.1:51820", clients={"phone": {}, "tablet": {"preshared_key": True}}
    )
    ret = states.clients(IF, config_dir=str(tmp_path))
    assert ret["result"] is True, ret["comment"]
    assert sorted(ret["changes"]) == ["phone", "tablet"]
    keydir = wgf_layout.Layout(str(tmp_path)).clients_dir(IF)
    secrets = {
        name: (tmp_path / keydir / name).read_text().strip() for name in sorted(os.listdir(keydir))
    }
    assert sorted(secrets) == ["phone.key", "tablet.key", "tablet.psk"]
    assert ("write_secrets", [os.path.join(keydir, n) for n in sorted(secrets)]) in host.done
    assert ("make_private_dir", keydir) in host.done
    assert all(os.stat(os.path.join(keydir, n)).st_mode & 0o777 == 0o600 for n in secrets)
    assert not any(secret in repr(ret) for secret in secrets.values())
    host.done.clear()
    assert states.clients(IF, config_dir=str(tmp_path))["changes"] == {}  # made once
    assert host.done == []
    tablet = wgf_keys.pubkey(secrets["tablet.key"])
    minion.live["peers"][tablet] = live_peer()
    del minion.pillar["interfaces"][IF]["clients"]["tablet"]
    states.__opts__["test"] = True
    assert states.clients(IF, config_dir=str(tmp_path))["result"] is None
    assert sorted(os.listdir(keydir)) == sorted(secrets)  # test mode removed nothing
    assert host.done == []
    states.__opts__["test"] = False
    ret = states.clients(IF, config_dir=str(tmp_path))
    assert ret["result"] is True and sorted(os.listdir(keydir)) == ["phone.key"]
    assert ("remove", os.path.join(keydir, "tablet.key")) in host.done
    assert ("remove", os.path.join(keydir, "tablet.psk")) in host.done
    assert minion.applied[-1] == (IF, [], [tablet])


def test_client_peers_are_set_live_in_one_go_with_their_preshared_keys(
    states, minion, host, tmp_path
):
    minion.pillar["interfaces"][IF].update(
        endpoint="198.18.0.1:51820", clients={"phone": {}, "tablet": {"preshared_key": True}}
    )
    states.clients(IF, config_dir=str(tmp_path))
    states.__opts__["test"] = True
    ret = states.client_peers(IF, config_dir=str(tmp_path))
    assert ret["result"] is None and sorted(ret["changes"]) == ["phone", "tablet"]
    assert minion.applied == []
    states.__opts__["test"] = False
    ret = states.client_peers(IF, config_dir=str(tmp_path))
    assert ret["result"] is True and "2 client peer(s)" in ret["comment"]
    ((interface, peers, remove),) = minion.applied
    assert interface == IF and remove == [] and len(peers) == 2
    psk = wgf_files.read_key(wgf_layout.Layout(str(tmp_path)).client_key(IF, "tablet", "psk"))
    assert sorted(bool(p.get("preshared_key")) for p in peers) == [False, True]
    assert psk not in repr(ret)
    assert states.client_peers(IF, config_dir=str(tmp_path))["changes"] == {}
    assert len(minion.applied) == 1


def test_a_disabled_or_expired_clients_live_peer_goes_in_test_mode_only_when_asked(
    states, minion, host, tmp_path
):
    """Issue 23: ``enabled: false`` and an ``expires`` in the past take the client's
    live peer away (also with purge_peers off), keep its key, and bring it back."""
    clients = {"phone": {}, "old": {"expires": "2020-01-01"}}
    minion.pillar["interfaces"][IF].update(
        endpoint="198.18.0.1:51820", purge_peers=False, clients=clients
    )
    states.clients(IF, config_dir=str(tmp_path))
    record = json.loads((tmp_path / f"{IF}.clients.json").read_text())
    phone, old = (record["clients"][n]["public_key"] for n in ("phone", "old"))
    minion.live["peers"][old] = live_peer()
    states.__opts__["test"] = True
    ret = states.client_peers(IF, config_dir=str(tmp_path))
    assert ret["result"] is None and ret["changes"]["old"] == {"old": "live", "new": "expired"}
    assert minion.applied == [] and old in minion.live["peers"]
    states.__opts__["test"] = False
    ret = states.client_peers(IF, config_dir=str(tmp_path))
    assert ret["result"] is True and "1 held back" in ret["comment"]
    assert (IF, [], [old]) in minion.applied
    assert sorted(p["public_key"] for _, peers, _ in minion.applied for p in peers) == [phone]
    assert states.client_peers(IF, config_dir=str(tmp_path))["changes"] == {}
    # disabled likewise; its key file stays, and enabling it brings back the same key
    clients["phone"]["enabled"] = False
    ret = states.client_peers(IF, config_dir=str(tmp_path))
    assert ret["changes"] == {"phone": {"old": "live", "new": "disabled"}}
    assert states.clients(IF, config_dir=str(tmp_path))["changes"] == {}
    clients["phone"]["enabled"] = True
    ret = states.client_peers(IF, config_dir=str(tmp_path))
    assert sorted(ret["changes"]) == ["phone"]
    assert minion.applied[-1][1][0]["public_key"] == phone


# ----------------------------------------------------------------- firewall


@pytest.fixture
def firewall_minion(minion):
    minion.firewall = "nftables"
    minion.pillar["interfaces"][IF].update(listen_port=51820, open_port=True)
    return minion


@pytest.fixture
def firewall_states(firewall_minion, host, monkeypatch):
    """The firewall file of the state module (Salt loads it under the same name)."""
    module = load("_states/wireguard_firewall.py", "wireguard_firewall_under_test")
    module.__salt__ = firewall_minion.functions()
    module.__opts__ = {"test": False}
    host.executables |= {"nft"}
    hand_in(monkeypatch, host)
    return module


def test_the_firewall_table_is_replaced_when_it_differs_and_left_alone_when_not(
    firewall_states, host
):
    states = firewall_states
    states.__opts__["test"] = True
    ret = states.firewall("fw")
    assert ret["result"] is None and ret["changes"]["nftables"]["old"] is None
    assert host.nft is None and host.done == []
    states.__opts__["test"] = False
    ret = states.firewall("fw")
    assert "51820" in ret["changes"]["nftables"]["new"]
    assert "51820" in host.nft and [d[0] for d in host.done] == ["nft_apply"]
    assert states.firewall("fw")["changes"] == {}
    assert len(host.done) == 1
    ret = states.firewall_absent("fw")
    assert ret["changes"]["nftables"]["new"] is None and host.nft is None


def test_a_client_rate_alone_needs_no_firewall_table(firewall_states, firewall_minion, host):
    """Issue 23: a client's ``limits.rate`` is tc's (``wireguard.client_rates``), not the
    firewall's: with no open_port, access or masquerade there is no table to load."""
    iface = firewall_minion.pillar["interfaces"][IF]
    iface.update(open_port=False, endpoint="198.18.0.1:51820")
    iface["clients"] = {"phone": {"limits": {"rate": "2mbit"}}}
    ret = firewall_states.firewall("fw")
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert host.nft is None and host.done == []


def test_a_client_quota_brings_its_counter_and_saver_and_a_count_alone_changes_nothing(
    firewall_states, firewall_minion, host
):
    """Issue 23: a client's ``limits.quota`` needs the table (a quota object) and the
    saver; test mode predicts both and changes nothing; the live count moving is no
    change; no quota left takes both away."""
    iface = firewall_minion.pillar["interfaces"][IF]
    iface.update(open_port=False, endpoint="198.18.0.1:51820")
    iface["clients"] = {"phone": {"limits": {"quota": "1MiB", "period": "day"}}}
    states = firewall_states
    states.__opts__["test"] = True
    ret = states.firewall("fw")
    assert ret["result"] is None and sorted(ret["changes"]) == ["nftables", "quota saver"]
    assert f"quota quota_{IF}_phone {{" in ret["changes"]["nftables"]["new"]
    assert ret["changes"]["quota saver"]["new"] == f"quota_{IF}_phone {IF} phone 1048576 day\n"
    assert host.nft is None and host.done == [] and not host.quota_armed
    states.__opts__["test"] = False
    states.firewall("fw")
    assert f'quota name "quota_{IF}_phone" drop' in host.nft and host.quota_armed
    host.nft = host.nft.replace("over 1048576 bytes", "over 1048576 bytes used 5000 bytes")
    assert states.firewall("fw")["changes"] == {}
    del iface["clients"]["phone"]["limits"]
    ret = states.firewall("fw")
    assert sorted(ret["changes"]) == ["nftables", "quota saver"]
    assert host.nft is None and not host.quota_armed


def test_the_iptables_chains_are_made_and_the_nft_table_removed(
    firewall_states, firewall_minion, host
):
    states = firewall_states
    firewall_minion.firewall = "iptables"
    host.nft = "table inet wireguard {\n}\n"  # left by the nftables backend
    host.iptables = {4: "", 6: ""}
    ret = states.firewall("fw")
    assert ret["result"] is True, ret["comment"]
    assert sorted(ret["changes"]) == ["ip6tables", "iptables", "nftables"]
    assert ret["changes"]["nftables"]["new"] is None
    applied = {d[1] if d[0] == "iptables_restore" else d[0] for d in host.done}
    assert applied == {"nft_apply", 4, 6}
    assert host.nft is None and ":WIREGUARD-INPUT - [0:0]" in host.iptables[4]
    host.done.clear()
    assert states.firewall("fw")["changes"] == {} and host.done == []
    ret = states.firewall_absent("fw")
    assert sorted(ret["changes"]) == ["ip6tables", "iptables"]
    removal = [d[2] for d in host.done if d[0] == "iptables_restore" and d[1] == 4]
    assert removal and "-X WIREGUARD-INPUT" in removal[0]


def test_a_firewall_command_that_fails_fails_the_state(firewall_states, host):
    host.fail("nft_apply")
    ret = firewall_states.firewall("fw")
    assert ret["result"] is False and "it failed" in ret["comment"]
