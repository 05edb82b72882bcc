"""``wireguard.config`` and ``wireguard.networkd_absent`` on the networkd backend (issue
25), with a fake host adapter: the files and key copies written with their modes, no key
in a unit file or in ``changes``, networkctl reload only after a change, test mode, the
switch between the backends in both directions (one restart, ``changes`` says so),
``enabled: false`` and ``absent``."""

import os
import stat

import pytest

import wgf_files
import wgf_keys
import wgf_layout
from tests.support.fake_host import FakeHost
from tests.support.fake_minion import IF, FakeMinion, hand_in
from tests.unit.conftest import StateModule

WG_QUICK = f"wg-quick@{IF}"
#: The files of the ``wireguard`` state module these tests call.
STATE_FILES = ("wireguard_files", "wireguard_interface")


NETWORKD = "systemd-networkd"


@pytest.fixture
def minion(tmp_path):
    minion = FakeMinion(tmp_path / "etc-wireguard")
    os.makedirs(minion.config_dir)
    minion.facts = {"init": "systemd", "systemd_version": 252}
    minion.pillar["interfaces"][IF]["backend"] = "networkd"
    minion.pillar["interfaces"][IF]["peers"] = {
        "hub": {
            "public_key": wgf_keys.pubkey(wgf_keys.genkey()),
            "allowed_ips": ["10.7.0.0/24", "172.16.7.0/24"],
            "preshared_key": wgf_keys.genpsk(),
        }
    }
    return minion


@pytest.fixture
def host():
    host = FakeHost()
    host.units = {WG_QUICK: False, NETWORKD: True}
    return host


@pytest.fixture
def layout(minion):
    return wgf_layout.Layout(minion.config_dir)


@pytest.fixture
def states(minion, host, tmp_path, monkeypatch):
    module = StateModule(
        STATE_FILES, minion.functions(), {"test": False}, tag="networkd_under_test"
    )
    monkeypatch.setattr(wgf_layout, "RESTART_PENDING_DIR", str(tmp_path / "pending"))
    monkeypatch.setattr(wgf_layout, "NETWORK_DIR", str(tmp_path / "network"))
    monkeypatch.setattr(wgf_layout, "NETWORKD_KEYS_DIR", str(tmp_path / "network" / "keys"))
    monkeypatch.setattr(wgf_layout, "SYSTEMD_UNIT_DIR", str(tmp_path / "system"))
    monkeypatch.setattr(
        wgf_layout, "NETWORKD_CONF_DROPIN", str(tmp_path / "networkd.conf.d" / "50.conf")
    )
    hand_in(monkeypatch, host)
    module.private_key(IF, config_dir=minion.config_dir)
    host.done.clear()
    return module


def config(states, minion):
    return states.config(IF, config_dir=minion.config_dir, service=NETWORKD)


def changed(host):
    return [d for d in host.done if d[0] != "remove_stale_temps"]


def secrets(minion, layout):
    psk = minion.pillar["interfaces"][IF]["peers"]["hub"]["preshared_key"]
    return [wgf_files.read_key(layout.key(IF)), psk]


def test_the_files_and_key_copies_are_written_then_left_alone(states, minion, host, layout):
    ret = config(states, minion)
    assert ret["result"] is True, ret["comment"]
    assert "Kind=wireguard" in ret["changes"]["diff"]
    assert "Destination=172.16.7.0/24" in ret["changes"]["diff"]
    assert ret["changes"]["key_files"]["new"] == sorted(
        [layout.networkd_key(IF), layout.networkd_psk(IF, "hub.psk")]
    )
    assert "backend" not in ret["changes"] and "restarted" not in ret["changes"]
    dropin = wgf_layout.NETWORKD_CONF_DROPIN
    assert ret["changes"]["networkd.conf"] == {"old": None, "new": dropin}
    assert changed(host) == [
        (
            "write_networkd",
            [layout.netdev(IF), layout.network(IF), dropin],
            sorted([layout.networkd_key(IF), layout.networkd_psk(IF, "hub.psk")]),
            layout.networkd_keys(IF),
            "systemd-network",
        ),
        ("networkctl", "reload"),
    ]
    keys_dir = layout.networkd_keys(IF)
    assert stat.S_IMODE(os.stat(keys_dir).st_mode) == 0o750
    for name in os.listdir(keys_dir):
        assert stat.S_IMODE(os.stat(os.path.join(keys_dir, name)).st_mode) == 0o640
    private, psk = secrets(minion, layout)
    assert wgf_files.read_key(layout.networkd_key(IF)) == private
    assert wgf_files.read_key(layout.networkd_psk(IF, "hub.psk")) == psk
    for path in (layout.netdev(IF), layout.network(IF)):
        text = wgf_files.read(path)
        assert private not in text and psk not in text
    assert private not in repr(ret) and psk not in repr(ret)
    assert not os.path.exists(layout.conf(IF))  # no wg-quick file under networkd
    # networkd leaves alone the routes and rules of others (a wg-quick full tunnel's)
    assert "ManageForeignRoutingPolicyRules=no" in wgf_files.read(dropin)
    assert "ManageForeignRoutes=no" in wgf_files.read(dropin)
    host.done.clear()
    ret = config(states, minion)
    assert ret["changes"] == {} and changed(host) == []


def test_a_peer_change_rewrites_the_netdev_and_leaves_networkd_alone(states, minion, host, layout):
    """The live engine sets the peer; a reload would have networkd replace every peer
    of the running netdev (their sessions lost): none."""
    config(states, minion)
    host.done.clear()
    minion.pillar["interfaces"][IF]["peers"]["hub"]["persistent_keepalive"] = 25
    ret = config(states, minion)
    assert "+PersistentKeepalive=25" in ret["changes"]["diff"]
    assert "restarted" not in ret["changes"] and "key_files" not in ret["changes"]
    assert [d[0] for d in changed(host)] == ["write_networkd"]
    assert not any(d[0] in ("restart", "stop_service", "delete_link") for d in host.done)


def test_an_address_change_rewrites_the_network_and_leaves_networkd_alone(
    states, minion, host, layout
):
    config(states, minion)
    host.done.clear()
    minion.pillar["interfaces"][IF]["address"].append("10.8.0.1/24")
    ret = config(states, minion)
    assert "+Address=10.8.0.1/24" in ret["changes"]["diff"]
    assert [d[0] for d in changed(host)] == ["write_networkd"]
    assert not any(d[0] in ("restart", "stop_service", "delete_link") for d in host.done)


def test_a_new_preshared_key_reaches_the_copy_and_a_dropped_one_goes(states, minion, host, layout):
    config(states, minion)
    peer = minion.pillar["interfaces"][IF]["peers"]["hub"]
    peer["preshared_key"] = new = wgf_keys.genpsk()
    ret = config(states, minion)
    assert ret["changes"]["key_files"]["new"] == [layout.networkd_psk(IF, "hub.psk")]
    assert "diff" not in ret["changes"] and new not in repr(ret)
    assert wgf_files.read_key(layout.networkd_psk(IF, "hub.psk")) == new
    del peer["preshared_key"]
    ret = config(states, minion)
    assert "-PresharedKeyFile=" in ret["changes"]["diff"]
    assert os.listdir(layout.networkd_keys(IF)) == ["private.key"]


def test_test_mode_reports_and_changes_nothing(states, minion, host, layout):
    states.__opts__["test"] = True
    ret = config(states, minion)
    assert ret["result"] is None and "diff" in ret["changes"]
    assert changed(host) == [] and not os.path.exists(layout.netdev(IF))


def test_a_stopped_networkd_is_not_reloaded(states, minion, host, layout):
    host.units[NETWORKD] = False  # the service state starts it; it reads the files then
    config(states, minion)
    assert [d[0] for d in changed(host)] == ["write_networkd"]


def test_an_interface_gone_while_its_files_are_there_is_built_again(states, minion, host):
    config(states, minion)
    host.done.clear()
    minion.up = False
    ret = config(states, minion)
    assert "its interface is not up" in ret["changes"]["restarted"]["why"]
    # networkd builds a netdev it knew only when it starts: a reload would not
    assert changed(host) == [
        ("write_networkd", *changed(host)[0][1:]),
        ("restart_service", "systemd-networkd"),
    ]


def test_switching_from_wg_quick_is_one_restart_and_removes_its_files(
    states, minion, host, layout, tmp_path
):
    minion.pillar["interfaces"][IF]["backend"] = "wg-quick"
    states.config(IF, config_dir=minion.config_dir, service=WG_QUICK)
    assert os.path.exists(layout.conf(IF))
    dropin = wgf_layout.dropin_path(IF)
    os.makedirs(os.path.dirname(dropin))
    open(dropin, "w").close()
    host.units[WG_QUICK] = True
    host.done.clear()
    minion.pillar["interfaces"][IF]["backend"] = "networkd"
    states.__opts__["test"] = True
    ret = config(states, minion)
    assert ret["result"] is None and ret["changes"]["backend"] == {
        "old": "wg-quick",
        "new": "networkd",
    }
    assert changed(host) == [] and os.path.exists(layout.conf(IF))
    states.__opts__["test"] = False
    ret = config(states, minion)
    assert ret["changes"]["backend"] == {"old": "wg-quick", "new": "networkd"}
    assert ret["changes"]["restarted"]["service"] == NETWORKD
    assert "switches from wg-quick to networkd" in ret["changes"]["restarted"]["why"]
    assert "one restart" in ret["comment"]
    assert [d[:2] for d in changed(host)] == [
        ("stop_service", WG_QUICK),
        ("remove", layout.conf(IF)),
        ("remove", dropin),
        (
            "write_networkd",
            [layout.netdev(IF), layout.network(IF), wgf_layout.NETWORKD_CONF_DROPIN],
        ),
        ("networkctl", "reload"),
    ]
    assert not os.path.exists(layout.conf(IF)) and os.path.exists(layout.netdev(IF))
    assert os.path.exists(layout.key(IF))  # the key stays the minion's
    host.done.clear()
    assert config(states, minion)["changes"] == {}


def test_a_switch_gives_the_new_interface_the_endpoints_its_peers_had(states, minion, host, layout):
    """A site behind NAT has no endpoint in pillar: the old interface knew it from the
    site's handshake; the new one gets it, so that it can start a handshake itself."""
    minion.pillar["interfaces"][IF]["backend"] = "wg-quick"
    states.config(IF, config_dir=minion.config_dir, service=WG_QUICK)
    host.units[WG_QUICK] = True
    hub = minion.pillar["interfaces"][IF]["peers"]["hub"]["public_key"]
    site = wgf_keys.pubkey(wgf_keys.genkey())
    peer = {"allowed_ips": [], "persistent_keepalive": None, "preshared_key_sha256": None}
    minion.live["peers"] = {
        hub: {**peer, "endpoint": "198.51.100.1:51820"},
        site: {**peer, "endpoint": "203.0.113.7:40123"},
    }
    minion.pillar["interfaces"][IF]["backend"] = "networkd"
    rebuilt = {hub: {**peer, "endpoint": "198.51.100.1:51820"}, site: {**peer, "endpoint": None}}
    host.sleep = lambda seconds: minion.live.update(peers=rebuilt)  # networkd builds it
    ret = config(states, minion)
    assert ret["changes"]["backend"] == {"old": "wg-quick", "new": "networkd"}
    assert minion.applied == [(IF, [{"public_key": site, "endpoint": "203.0.113.7:40123"}], [])]


def test_switching_back_to_wg_quick_removes_networkds_files_and_its_interface(
    states, minion, host, layout
):
    config(states, minion)
    host.done.clear()
    minion.pillar["interfaces"][IF]["backend"] = "wg-quick"
    ret = states.config(IF, config_dir=minion.config_dir, service=WG_QUICK)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"]["backend"] == {"old": "networkd", "new": "wg-quick"}
    assert ret["changes"]["restarted"]["service"] == WG_QUICK
    assert "[Interface]" in ret["changes"]["diff"]
    assert [d[:2] for d in changed(host)][:6] == [
        ("remove", layout.netdev(IF)),
        ("remove", layout.network(IF)),
        ("remove_tree", layout.networkd_keys(IF)),
        ("remove", wgf_layout.NETWORKD_CONF_DROPIN),  # the last interface on networkd
        ("networkctl", "reload"),
        ("delete_link", IF),
    ]
    assert os.path.exists(layout.conf(IF)) and not os.path.exists(layout.networkd_keys(IF))
    host.done.clear()
    ret = states.config(IF, config_dir=minion.config_dir, service=WG_QUICK)
    assert ret["changes"] == {}


def test_switching_back_the_interface_wg_quick_starts_gets_the_endpoints_its_peers_had(
    states, minion, host, layout
):
    config(states, minion)
    site = wgf_keys.pubkey(wgf_keys.genkey())
    peer = {"allowed_ips": [], "persistent_keepalive": None, "preshared_key_sha256": None}
    minion.live["peers"] = {site: {**peer, "endpoint": "203.0.113.7:40123"}}
    minion.pillar["interfaces"][IF]["backend"] = "wg-quick"
    states.config(IF, config_dir=minion.config_dir, service=WG_QUICK)
    assert minion.applied == []
    # the service state starts wg-quick, whose interface knows no endpoint of the site
    minion.live["peers"] = {site: {**peer, "endpoint": None}}
    host.ip[("addr", "show", "dev", IF)] = [{"mtu": 1420, "addr_info": []}]
    states.interface(IF, minion.config_dir)
    assert minion.applied == [(IF, [{"public_key": site, "endpoint": "203.0.113.7:40123"}], [])]
    states.interface(IF, minion.config_dir)
    assert len(minion.applied) == 1  # once


def test_a_wg_quick_restart_too_gives_the_new_interface_the_endpoints(states, minion, host):
    minion.pillar["interfaces"][IF]["backend"] = "wg-quick"
    states.config(IF, config_dir=minion.config_dir, service=WG_QUICK)
    host.units[WG_QUICK] = True
    site = wgf_keys.pubkey(wgf_keys.genkey())
    peer = {"allowed_ips": [], "persistent_keepalive": None, "preshared_key_sha256": None}
    minion.live["peers"] = {site: {**peer, "endpoint": "203.0.113.7:40123"}}
    minion.pillar["interfaces"][IF]["post_up"] = ["logger up"]  # only a restart applies it
    ret = states.config(IF, config_dir=minion.config_dir, service=WG_QUICK)
    assert "restarted" in ret["changes"], ret
    minion.live["peers"] = {site: {**peer, "endpoint": None}}
    host.ip[("addr", "show", "dev", IF)] = [{"mtu": 1420, "addr_info": []}]
    states.interface(IF, minion.config_dir)
    assert minion.applied == [(IF, [{"public_key": site, "endpoint": "203.0.113.7:40123"}], [])]


def test_enabled_false_removes_the_files_and_the_interface(states, minion, host, layout):
    config(states, minion)
    host.done.clear()
    minion.pillar["interfaces"][IF]["enabled"] = False
    ret = states.config(IF, config_dir=minion.config_dir)
    assert ret["changes"]["stopped"] == {"old": IF, "new": None}
    assert ("delete_link", IF) in host.done and ("networkctl", "reload") in host.done
    assert not os.path.exists(layout.netdev(IF)) and not os.path.exists(layout.networkd_keys(IF))
    host.done.clear()
    minion.up = False
    assert states.config(IF, config_dir=minion.config_dir)["changes"] == {}


def test_networkd_absent_removes_files_keys_and_interface_once(states, minion, host, layout):
    config(states, minion)
    host.done.clear()
    states.__opts__["test"] = True
    ret = states.networkd_absent(IF, config_dir=minion.config_dir)
    assert ret["result"] is None and changed(host) == []
    states.__opts__["test"] = False
    ret = states.networkd_absent(IF, config_dir=minion.config_dir)
    assert ret["changes"]["removed"]["old"] == [
        layout.netdev(IF),
        layout.network(IF),
        layout.networkd_keys(IF),
    ]
    assert ("delete_link", IF) in host.done
    assert not os.path.exists(layout.networkd_keys(IF))
    assert not os.path.exists(wgf_layout.NETWORKD_CONF_DROPIN)
    host.done.clear()
    ret = states.networkd_absent(IF, config_dir=minion.config_dir)
    assert ret["changes"] == {} and changed(host) == []


def test_networkds_drop_in_stays_while_another_interface_is_on_networkd(
    states, minion, host, layout
):
    config(states, minion)
    other = f"{wgf_layout.NETWORK_DIR}/50-wireguard-wg9.netdev"
    with open(other, "w", encoding="utf-8") as handle:
        handle.write("[NetDev]\nName=wg9\nKind=wireguard\n")
    states.networkd_absent(IF, config_dir=minion.config_dir)
    assert not os.path.exists(layout.netdev(IF))
    assert os.path.exists(wgf_layout.NETWORKD_CONF_DROPIN)


def test_networkd_absent_leaves_a_wg_quick_interface_alone(states, minion, host):
    minion.pillar["interfaces"][IF]["backend"] = "wg-quick"
    ret = states.networkd_absent(IF, config_dir=minion.config_dir)
    assert ret["result"] is True and ret["changes"] == {} and changed(host) == []


def test_a_refused_pillar_fails_the_state_and_changes_nothing(states, minion, host, layout):
    minion.pillar["interfaces"][IF]["post_up"] = "iptables -A FORWARD -i %i -j ACCEPT"
    ret = config(states, minion)
    assert ret["result"] is False
    assert f"interface '{IF}', key 'post_up': networkd runs no hooks" in ret["comment"]
    assert changed(host) == [] and not os.path.exists(layout.netdev(IF))


# ---------------------------------------------------- confirm and the live engine


def test_confirm_records_networkds_files_and_its_undo_rebuilds_the_interface(
    states, minion, host, layout
):
    import wgf_confirm_run
    import wgf_confirm_undo

    config(states, minion)
    records, restores, _, _ = wgf_confirm_run._records(host, IF, layout, "none", networkd=True)
    assert records["netdev"] == wgf_files.read(layout.netdev(IF))
    assert records["network"] == wgf_files.read(layout.network(IF))
    copies = {r.target: r for r in restores if r.group}
    assert sorted(copies) == sorted([layout.networkd_key(IF), layout.networkd_psk(IF, "hub.psk")])
    assert {r.group for r in copies.values()} == {"systemd-network"}
    script = wgf_confirm_undo.undo_script(IF, restores, NETWORKD, None, "systemd", networkd=True)
    assert f"chgrp systemd-network {layout.networkd_key(IF)} && chmod 0640" in script
    # networkd reads its unit files as systemd-network: they go back 0644, not 0600
    assert f"chmod 0644 {layout.netdev(IF)}" in script
    assert f"chmod 0644 {layout.network(IF)}" in script
    assert f"ip link delete dev {IF}" in script
    assert "systemctl restart systemd-networkd" in script and "networkctl reload" not in script
    assert "systemctl restart wg-quick" not in script
    private, psk = secrets(minion, layout)
    assert private not in script and psk not in script
    # wg-quick's undo is as before
    plain = wgf_confirm_undo.undo_script(IF, restores[:2], WG_QUICK, None, "systemd")
    assert f"systemctl restart {WG_QUICK}" in plain and "networkctl" not in plain


def test_confirm_sees_a_file_change_only_when_networkds_files_change(states, minion, host):
    import wgf_plan
    import wgf_state

    def file_changes():
        live = wgf_state.Minion(minion.functions(), {"test": False}, {}, host)
        iface = live.declared(IF, minion.config_dir)
        return wgf_plan._file_changes(live, iface, minion.config_dir)

    assert file_changes() is True
    config(states, minion)
    assert file_changes() is False
    minion.pillar["interfaces"][IF]["peers"]["hub"]["preshared_key"] = wgf_keys.genpsk()
    assert file_changes() is True  # only a key copy differs


def test_the_live_engine_takes_networkds_mtu_and_leaves_dns_to_it(minion, host):
    import wgf_plan

    iface = minion.pipeline()["interfaces"][IF]
    assert wgf_plan._mtu_unset(host, iface, {"peers": {}}, []) == 1420
    assert not any(a[0] == "endpoint_routes" for a in host.asked)


@pytest.mark.parametrize("name", ["../../etc", "a b", "wg0/..", ""])
def test_networkd_absent_refuses_a_name_that_is_no_interface(states, minion, host, name):
    ret = states.networkd_absent(name, config_dir=minion.config_dir)
    assert ret["result"] is False and changed(host) == []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"table": 1234}, "its table changed from auto to 1234"),
        (
            {
                "peers": {
                    "gw": {
                        "public_key": wgf_keys.pubkey(wgf_keys.genkey()),
                        "allowed_ips": ["0.0.0.0/0"],
                    }
                }
            },
            "its default route",
        ),
    ],
)
def test_what_networkd_keeps_on_a_netdev_makes_the_interface_again(
    states, minion, host, change, why
):
    config(states, minion)
    host.done.clear()
    minion.pillar["interfaces"][IF].update(change)
    ret = config(states, minion)
    assert why in ret["changes"]["restarted"]["why"], ret["changes"]
    assert [d[0] for d in changed(host)] == ["delete_link", "write_networkd", "restart_service"]
    host.done.clear()
    assert config(states, minion)["changes"] == {}


def test_a_disabled_interface_leaving_wg_quick_is_stopped_there(states, minion, host, layout):
    minion.pillar["interfaces"][IF]["backend"] = "wg-quick"
    states.config(IF, config_dir=minion.config_dir, service=WG_QUICK)
    host.units[WG_QUICK] = True
    host.done.clear()
    minion.pillar["interfaces"][IF].update(backend="networkd", enabled=False)
    ret = states.config(IF, config_dir=minion.config_dir)
    assert ret["changes"]["backend"] == {"old": "wg-quick", "new": "networkd"}
    assert ret["changes"]["stopped"] == {"old": IF, "new": None}
    assert "restarted" not in ret["changes"]
    assert ("stop_service", WG_QUICK) in host.done and ("delete_link", IF) not in host.done
    assert not os.path.exists(layout.conf(IF)) and not os.path.exists(layout.netdev(IF))
