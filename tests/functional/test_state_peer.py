"""wireguard.peer, peer_absent, peers_purged and routes on a real interface (issue 3)."""

import json
import subprocess
import time

import pytest

pytestmark = pytest.mark.functional


def live_peers(loaders, pair):
    return loaders.modules.wireguard.show(pair.ifname)[pair.ifname]["peers"]


def new_key(loaders):
    return loaders.modules.wireguard.pubkey(loaders.modules.wireguard.genkey())


def test_add_then_idempotent_regardless_of_order_and_host_bits(loaders, pair):
    key = new_key(loaders)
    peer = loaders.states.wireguard.peer
    same = {
        "name": key,
        "interface": pair.ifname,
        "endpoint": "198.18.10.2:51900",
        "persistent_keepalive": 25,
    }
    ret = peer(allowed_ips=["10.77.5.0/24", "10.77.0.4/32"], **same)
    assert ret.result is True
    assert ret.changes["allowed_ips"] == {"old": None, "new": ["10.77.0.4/32", "10.77.5.0/24"]}
    live = live_peers(loaders, pair)[key]
    assert sorted(live["allowed_ips"]) == ["10.77.0.4/32", "10.77.5.0/24"]
    assert live["endpoint"] == "198.18.10.2:51900" and live["persistent_keepalive"] == 25

    again = peer(allowed_ips=["10.77.5.9/24", "10.77.0.4"], **same)
    assert again.result is True and again.changes == {}


@pytest.mark.parametrize(
    ("attribute", "before", "after", "expected"),
    [
        (
            "allowed_ips",
            ["10.77.6.0/24"],
            ["10.77.6.0/24", "10.77.7.0/24"],
            {"old": ["10.77.6.0/24"], "new": ["10.77.6.0/24", "10.77.7.0/24"]},
        ),
        (
            "endpoint",
            "198.18.10.2:1000",
            "198.18.10.2:2000",
            {"old": "198.18.10.2:1000", "new": "198.18.10.2:2000"},
        ),
        ("persistent_keepalive", 25, 0, {"old": 25, "new": None}),
        ("persistent_keepalive", None, 15, {"old": None, "new": 15}),
    ],
)
def test_each_attribute_change(loaders, pair, attribute, before, after, expected):
    key = new_key(loaders)
    base = {"name": key, "interface": pair.ifname, "allowed_ips": ["10.77.6.0/24"]}
    assert loaders.states.wireguard.peer(**{**base, attribute: before}).result is True
    ret = loaders.states.wireguard.peer(**{**base, attribute: after})
    assert ret.result is True
    assert ret.changes == {attribute: expected}
    live = live_peers(loaders, pair)[key]
    if attribute == "allowed_ips":
        assert sorted(live["allowed_ips"]) == expected["new"]
    else:
        assert live[attribute] == expected["new"]


def test_keepalive_zero_off_and_none_are_the_same(loaders, pair):
    key = new_key(loaders)
    peer = loaders.states.wireguard.peer
    assert peer(name=key, interface=pair.ifname, persistent_keepalive=0).result is True
    for value in ("off", None, 0):
        ret = peer(name=key, interface=pair.ifname, persistent_keepalive=value)
        assert ret.result is True and ret.changes == {}


def test_hostname_endpoint_is_resolved_before_comparing(loaders, pair):
    key = new_key(loaders)
    peer = loaders.states.wireguard.peer
    assert peer(name=key, interface=pair.ifname, endpoint="localhost:4000").result is True
    assert live_peers(loaders, pair)[key]["endpoint"] in ("127.0.0.1:4000", "[::1]:4000")
    ret = peer(name=key, interface=pair.ifname, endpoint="localhost:4000")
    assert ret.changes == {}


def test_preshared_key_is_compared_but_never_shown(loaders, pair):
    wg = loaders.modules.wireguard
    key, psk1, psk2 = new_key(loaders), wg.genpsk(), wg.genpsk()
    peer = loaders.states.wireguard.peer
    first = peer(name=key, interface=pair.ifname, preshared_key=psk1)
    assert first.changes["preshared_key"] == {"old": "unset", "new": "set"}
    assert peer(name=key, interface=pair.ifname, preshared_key=psk1).changes == {}
    second = peer(name=key, interface=pair.ifname, preshared_key=psk2)
    assert second.changes == {"preshared_key": {"old": "set", "new": "changed"}}
    third = peer(name=key, interface=pair.ifname)
    assert third.changes == {"preshared_key": {"old": "set", "new": "unset"}}
    assert live_peers(loaders, pair)[key]["preshared_key"] is False
    text = json.dumps([first.full_return, second.full_return, third.full_return])
    assert psk1 not in text and psk2 not in text


def test_preshared_key_from_pillar(loaders, pair, write_pillar):
    psk = loaders.modules.wireguard.genpsk()
    key = new_key(loaders)
    write_pillar({"wireguard": {"interfaces": {"wg0": {"peers": {"hub": {"preshared_key": psk}}}}}})
    ret = loaders.states.wireguard.peer(
        name=key,
        interface=pair.ifname,
        preshared_key_pillar="wireguard:interfaces:wg0:peers:hub:preshared_key",
    )
    assert ret.result is True and ret.changes["preshared_key"]["new"] == "set"
    assert psk not in json.dumps(ret.full_return)


def test_test_mode_predicts_and_touches_nothing(loaders, pair):
    key = new_key(loaders)
    ret = loaders.states.wireguard.peer(
        name=key, interface=pair.ifname, allowed_ips=["10.77.9.0/24"], test=True
    )
    assert ret.result is None
    assert ret.changes["allowed_ips"] == {"old": None, "new": ["10.77.9.0/24"]}
    assert key not in live_peers(loaders, pair)
    loaders.states.wireguard.peer(name=key, interface=pair.ifname, allowed_ips=["10.77.9.0/24"])
    unchanged = loaders.states.wireguard.peer(
        name=key, interface=pair.ifname, allowed_ips=["10.77.9.0/24"], test=True
    )
    assert unchanged.result is True and unchanged.changes == {}


def test_absent(loaders, pair):
    key = new_key(loaders)
    loaders.states.wireguard.peer(name=key, interface=pair.ifname)
    pending = loaders.states.wireguard.peer_absent(name=key, interface=pair.ifname, test=True)
    assert pending.result is None and key in live_peers(loaders, pair)
    ret = loaders.states.wireguard.peer_absent(name=key, interface=pair.ifname)
    assert ret.result is True and ret.changes == {"peer": {"old": key, "new": None}}
    assert key not in live_peers(loaders, pair)
    again = loaders.states.wireguard.peer_absent(name=key, interface=pair.ifname)
    assert again.result is True and again.changes == {}


def test_purge_removes_only_undeclared_peers(loaders, pair):
    keep, extra = new_key(loaders), new_key(loaders)
    loaders.modules.wireguard.apply_peers(
        pair.ifname, peers=[{"public_key": keep}, {"public_key": extra}]
    )
    pending = loaders.states.wireguard.peers_purged(name=pair.ifname, keep=[keep], test=True)
    assert pending.result is None and extra in live_peers(loaders, pair)
    ret = loaders.states.wireguard.peers_purged(name=pair.ifname, keep=[keep])
    assert ret.result is True and ret.changes == {"removed": {"old": [extra], "new": []}}
    assert set(live_peers(loaders, pair)) == {keep}
    assert loaders.states.wireguard.peers_purged(name=pair.ifname, keep=[keep]).changes == {}


def test_peers_sets_every_pillar_peer_in_one_state_and_then_changes_nothing(
    loaders, pair, set_pillar
):
    """``wireguard.peers`` (issue 24: the one state of an interface with more than 200
    peers): pillar's peers live with their attributes and preshared keys, an absent one
    removed, a second run changes nothing."""
    psk = loaders.modules.wireguard.genpsk()
    keys = [new_key(loaders) for _ in range(250)]
    gone = new_key(loaders)
    loaders.modules.wireguard.apply_peers(pair.ifname, peers=[{"public_key": gone}])
    peers = {
        f"p{i}": {"public_key": key, "allowed_ips": [f"10.78.{i // 200}.{i % 200 + 2}/32"]}
        for i, key in enumerate(keys)
    }
    peers["p0"].update(endpoint="198.18.10.2:51900", persistent_keepalive=25, preshared_key=psk)
    peers["old"] = {"public_key": gone, "absent": True}
    interface = {"address": "10.78.0.1/16", "peers": peers}
    set_pillar({"wireguard": {"interfaces": {pair.ifname: interface}}})
    pending = loaders.states.wireguard.peers(name=pair.ifname, test=True)
    assert pending.result is None and len(pending.changes) == 251
    assert gone in live_peers(loaders, pair)
    ret = loaders.states.wireguard.peers(name=pair.ifname)
    assert ret.result is True, ret.comment
    assert ret.changes["old"] == {"peer": {"old": gone, "new": None}}
    assert ret.changes["p0"]["preshared_key"] == {"old": "unset", "new": "set"}
    assert psk not in json.dumps(ret.full_return)
    live = live_peers(loaders, pair)
    assert set(keys) <= set(live) and gone not in live
    assert live[keys[0]]["endpoint"] == "198.18.10.2:51900"
    assert live[keys[0]]["persistent_keepalive"] == 25
    assert live[keys[249]]["allowed_ips"] == ["10.78.1.51/32"]
    loaders.reset_state()  # a new run: the live interface read again
    again = loaders.states.wireguard.peers(name=pair.ifname)
    assert again.result is True and again.changes == {}, again.changes
    purge = loaders.states.wireguard.peers_purged(name=pair.ifname, keep_declared=True)
    assert purge.result is True and purge.changes == {}


def test_missing_interface_fails_and_names_it(loaders, pair):
    ret = loaders.states.wireguard.peer(name=new_key(loaders), interface="wgmissing9")
    assert ret.result is False
    assert "'wgmissing9' is not up" in ret.comment


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "not-a-key"}, "not valid base64"),
        ({"name": "AAAA"}, "decodes to 3 bytes"),
        ({"allowed_ips": ["10.0.0.0/33"]}, "not a valid CIDR"),
        ({"endpoint": "198.18.0.1"}, "has no port"),
        ({"endpoint": "fd00::1:51820"}, "without brackets"),
        ({"persistent_keepalive": 70000}, "out of range"),
    ],
)
def test_bad_arguments_fail_clearly_and_change_nothing(loaders, pair, arguments, message):
    existing = new_key(loaders)
    loaders.states.wireguard.peer(
        name=existing, interface=pair.ifname, allowed_ips=["10.77.8.0/24"]
    )
    before = live_peers(loaders, pair)
    call = {"name": new_key(loaders), "interface": pair.ifname, **arguments}
    ret = loaders.states.wireguard.peer(**call)
    assert ret.result is False
    assert message in ret.comment and pair.ifname in ret.comment
    assert live_peers(loaders, pair) == before


def test_peer_changes_lose_no_packet_to_an_unchanged_peer(loaders, pair):
    """20 pings a second to peer B while peer C is added, changed in every attribute
    and removed: no packet is lost and the interface is never recreated."""
    wg = loaders.modules.wireguard
    b = pair.add_remote(loaders.modules, 2, route=True)
    loaders.states.wireguard.peer(
        name=b, interface=pair.ifname, allowed_ips=["10.77.0.2/32"], endpoint="198.18.10.2:51822"
    )
    assert (
        pair.local.run(["ping", "-c", "3", "-i", "0.2", "10.77.0.2"], check=False).returncode == 0
    )
    ifindex = pair.local.ifindex(pair.ifname)
    ping = pair.local.popen(
        ["ping", "-i", "0.05", "-c", "100", "-W", "1", "10.77.0.2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        c = new_key(loaders)
        peer = loaders.states.wireguard.peer
        steps = [
            {"allowed_ips": ["10.77.0.3/32"]},
            {"allowed_ips": ["10.77.0.3/32", "10.77.33.0/24"]},
            {"allowed_ips": ["10.77.0.3/32"], "endpoint": "198.18.10.2:51823"},
            {
                "allowed_ips": ["10.77.0.3/32"],
                "endpoint": "198.18.10.2:51823",
                "persistent_keepalive": 10,
            },
            {
                "allowed_ips": ["10.77.0.3/32"],
                "endpoint": "198.18.10.2:51823",
                "persistent_keepalive": 10,
                "preshared_key": wg.genpsk(),
            },
        ]
        for step in steps:
            assert peer(name=c, interface=pair.ifname, **step).changes
            time.sleep(0.4)
        assert loaders.states.wireguard.peer_absent(name=c, interface=pair.ifname).changes
        out, _ = ping.communicate(timeout=30)
    finally:
        if ping.poll() is None:
            ping.kill()
    assert "100 packets transmitted, 100 received" in out, out
    assert pair.local.ifindex(pair.ifname) == ifindex


def test_test_mode_on_an_interface_not_up_yet_predicts_instead_of_failing(loaders, pair):
    for ret in (
        loaders.states.wireguard.peer(name=new_key(loaders), interface="wgnotyet0", test=True),
        loaders.states.wireguard.peers_purged(name="wgnotyet0", keep=[], test=True),
    ):
        assert ret.result is None
        assert "wgnotyet0 is not up yet" in ret.comment


def test_wg_calls_do_not_grow_with_unchanged_peers(loaders, pair, tmp_path, monkeypatch):
    """One run reads the live state once; unchanged peers cost no `wg` call."""
    log = tmp_path / "wg.log"
    shim = tmp_path / "bin" / "wg"
    shim.parent.mkdir()
    real = subprocess.run(
        ["sh", "-c", "command -v wg"], capture_output=True, text=True, check=True
    ).stdout.strip()
    shim.write_text(f'#!/bin/sh\necho "$1 $2" >> {log}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}:{__import__('os').environ['PATH']}")

    def sls(count):
        return "\n".join(
            f"peer{i}:\n  wireguard.peer:\n    - name: {keys[i]}\n"
            f"    - interface: {pair.ifname}\n    - allowed_ips: [10.79.{i}.0/24]\n"
            f"    - persistent_keepalive: 25\n"
            for i in range(count)
        )

    def calls(count):
        log.write_text("")
        ret = loaders.modules.state.template_str(sls(count))
        assert all(r.result for r in ret), ret
        return log.read_text().splitlines()

    keys = [new_key(loaders) for _ in range(40)]
    assert len(calls(40)) == 41  # read once, then one `wg set` per added peer
    few, many = calls(2), calls(40)
    assert few == many, (few, many)
    assert many == [f"show {pair.ifname}"], many  # one `wg show <if> dump`, nothing else
