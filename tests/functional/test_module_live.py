"""The execution module against a real wireguard-go interface (issue 2)."""

import json

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.confs import silent_peer

pytestmark = pytest.mark.functional


def test_show_returns_the_documented_structure_without_secrets(loaders, pair):
    wg = loaders.modules.wireguard
    psk = wg.genpsk()
    b = pair.add_remote(loaders.modules, 2, route=True, psk=psk)
    c = pair.add_remote(loaders.modules, 3)
    wg.set_peer(
        pair.ifname,
        b,
        allowed_ips=["10.77.0.2/32"],
        endpoint="198.18.10.2:51822",
        persistent_keepalive=25,
        preshared_key=psk,
    )
    wg.set_peer(pair.ifname, c, allowed_ips=["10.77.0.3", "fd00:77::3/128"])
    pair.local.run(["ping", "-c", "1", "-W", "2", "10.77.0.2"], check=False)

    shown = wg.show(pair.ifname)
    iface = shown[pair.ifname]
    assert iface["public_key"] == wg.pubkey(pair.local_key)
    assert iface["listen_port"] == 51820
    assert iface["fwmark"] is None
    peer_b, peer_c = iface["peers"][b], iface["peers"][c]
    assert peer_b["endpoint"] == "198.18.10.2:51822"
    assert peer_b["allowed_ips"] == ["10.77.0.2/32"]
    assert peer_b["persistent_keepalive"] == 25
    assert peer_b["preshared_key"] is True
    assert peer_b["latest_handshake"] and peer_b["latest_handshake_age"] >= 0
    assert peer_b["tx_bytes"] > 0
    assert peer_c == silent_peer(["10.77.0.3/32", "fd00:77::3/128"])
    everything = json.dumps(wg.show())
    assert pair.ifname in json.loads(everything)
    for secret in (pair.local_key, psk):
        assert secret not in everything


def test_interfaces_lists_the_live_interface(loaders, pair):
    assert pair.ifname in loaders.modules.wireguard.interfaces()


def test_set_and_remove_peer(loaders, pair):
    wg = loaders.modules.wireguard
    key = wg.pubkey(wg.genkey())
    wg.set_peer(pair.ifname, key, allowed_ips=["10.77.0.9/32"], endpoint="[fd00::9]:4000")
    peer = wg.show(pair.ifname)[pair.ifname]["peers"][key]
    assert peer["endpoint"] == "[fd00::9]:4000"
    wg.set_peer(pair.ifname, key, allowed_ips=[], persistent_keepalive=0)
    assert wg.show(pair.ifname)[pair.ifname]["peers"][key]["allowed_ips"] == []
    wg.remove_peer(pair.ifname, key)
    assert key not in wg.show(pair.ifname)[pair.ifname]["peers"]


def test_apply_peers_batches_many_changes(loaders, pair):
    wg = loaders.modules.wireguard
    keys = [wg.pubkey(wg.genkey()) for _ in range(600)]
    peers = [
        {"public_key": k, "allowed_ips": [f"10.78.{i // 250}.{i % 250 + 1}/32"]}
        for i, k in enumerate(keys)
    ]
    wg.apply_peers(pair.ifname, peers=peers)
    assert set(wg.show(pair.ifname)[pair.ifname]["peers"]) == set(keys)
    wg.apply_peers(pair.ifname, remove=keys[:300])
    assert set(wg.show(pair.ifname)[pair.ifname]["peers"]) == set(keys[300:])


def test_a_bad_change_in_a_batch_changes_nothing(loaders, pair):
    wg = loaders.modules.wireguard
    good = wg.pubkey(wg.genkey())
    with pytest.raises(SaltInvocationError, match="allowed_ips"):
        wg.apply_peers(
            pair.ifname,
            peers=[
                {"public_key": good, "allowed_ips": ["10.1.0.0/24"]},
                {"public_key": wg.pubkey(wg.genkey()), "allowed_ips": ["10.1.0.300/24"]},
            ],
        )
    assert wg.show(pair.ifname)[pair.ifname]["peers"] == {}


def test_missing_interface_is_named(loaders, pair):
    with pytest.raises(CommandExecutionError, match="'nosuchwg0' does not exist"):
        loaders.modules.wireguard.show("nosuchwg0")
