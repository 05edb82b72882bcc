"""``wireguard.interface`` on a real wireguard-go interface in a network namespace:
addresses, MTU, listen port, fwmark, private key and routes change in place (same
ifindex, peers kept), a second run changes nothing, test mode predicts, and a step
that fails puts back what the run had changed."""

import json

import pytest

from tests.functional.conftest import pillar_for


def live(pair):
    ns = pair.local
    link = json.loads(ns.run(["ip", "-j", "addr", "show", "dev", pair.ifname]).stdout)[0]
    routes = json.loads(
        ns.run(["ip", "-j", "-4", "route", "show", "table", "all", "dev", pair.ifname]).stdout
    )
    return {
        "ifindex": link["ifindex"],
        "mtu": link["mtu"],
        "addresses": sorted(
            f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a.get("scope") != "link"
        ),
        "routes": sorted(
            (r["dst"], r.get("table", "main"), r.get("protocol", "boot"))
            for r in routes
            if r.get("table") != "local" and r.get("protocol") != "kernel"
        ),
        "wg": ns.run(["wg", "show", pair.ifname, "dump"]).stdout.split("\n")[0].split("\t")[1:],
        "peers": ns.run(["wg", "show", pair.ifname, "peers"]).stdout.split(),
    }


@pytest.fixture
def state(loaders, pair, config_dir, remote2, set_pillar):
    def run(test=False, **settings):
        set_pillar(pillar_for(pair, pair.local_key, remote2, **settings))
        return loaders.states.wireguard.interface(
            pair.ifname, config_dir=str(config_dir), test=test
        )

    return run


def test_interface_settings_change_in_place(loaders, pair, state, remote2):
    before = live(pair)
    new_key = loaders.modules.wireguard.genkey()
    settings = {
        "address": ["10.77.0.1/24", "10.78.0.1/16"],
        "mtu": 1380,
        "listen_port": 51833,
        "fwmark": "0x1234",
        "private_key": new_key,
        "routes": ["172.31.5.0/24"],
    }
    predicted = state(test=True, **settings)
    assert predicted.result is None, predicted
    assert set(predicted.changes) == {
        "address",
        "mtu",
        "listen_port",
        "fwmark",
        "public_key",
        "routes",
    }, predicted
    assert live(pair) == before, "test mode touched nothing"

    ret = state(**settings)
    assert ret.result is True, ret
    assert ret.changes["mtu"] == {"old": before["mtu"], "new": 1380}
    assert ret.changes["listen_port"] == {"old": 51820, "new": 51833}
    after = live(pair)
    assert after["ifindex"] == before["ifindex"] and after["peers"] == [remote2]
    assert after["addresses"] == ["10.77.0.1/24", "10.78.0.1/16"]
    assert after["mtu"] == 1380
    assert after["wg"][0] == loaders.modules.wireguard.pubkey(new_key)
    assert after["wg"][1:] == ["51833", "0x1234"]
    assert ("172.31.5.0/24", "main", "static") in after["routes"]
    assert new_key not in json.dumps(ret.changes) + ret.comment

    again = state(**settings)
    assert again.result is True and again.changes == {}, again


def test_routes_follow_allowed_ips_as_wg_quick_derives_them(loaders, pair, state, remote2):
    def peers(*allowed):
        return {
            "r2": {
                "public_key": remote2,
                "allowed_ips": list(allowed),
                "endpoint": "198.18.10.2:51822",
            }
        }

    predicted = state(test=True, peers=peers("10.77.0.2/32", "10.99.7.7/32"))
    assert predicted.changes["routes"] == {"old": [], "new": ["10.99.7.7/32"]}, (
        "test mode predicts the routes of AllowedIPs the peer states have not set yet"
    )
    assert loaders.states.wireguard.peer(
        name=remote2, interface=pair.ifname, allowed_ips=["10.77.0.2/32", "10.99.7.7/32"]
    ).result
    ret = state(peers=peers("10.77.0.2/32", "10.99.7.7/32"))
    assert ret.result is True, ret
    # 10.77.0.2 is covered by the address's connected route: no route; 10.99.7.7 is not
    assert live(pair)["routes"] == [("10.99.7.7", "main", "boot")]
    assert ret.changes["routes"] == {"old": [], "new": ["10.99.7.7/32"]}
    ret = state()
    assert live(pair)["routes"] == [] and ret.changes["routes"]["new"] == []
    ret = state(table="1234")
    assert ret.result is True, ret
    assert live(pair)["routes"] == [("10.77.0.2", "1234", "boot")]
    ret = state(table="off")
    assert live(pair)["routes"] == []


def test_a_step_that_fails_puts_back_what_the_run_changed(pair, state):
    before = live(pair)
    pair.local.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{pair.ifname}.disable_ipv6=1"])
    ret = state(address=["10.77.0.1/24", "10.79.0.1/24", "fd77::1/64"], mtu=1300)
    assert ret.result is False, ret
    assert "the live step 'add address fd77::1/64' failed" in ret.comment, ret.comment
    assert "were undone" in ret.comment
    assert live(pair) == before, "the interface is as it was before the run"
