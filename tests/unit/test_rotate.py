"""Private key rotation: who takes part, and the orders of each step."""

import pytest
import salt.client

import wgf_keys
import wgf_rotate


def mesh(*nodes, interface="wg1", **extra):
    return {
        "interface": interface,
        "nodes": {
            n: {"address": f"10.9.0.{i}/24", "endpoint": f"198.18.9.{i}"}
            for i, n in enumerate(nodes, 1)
        },
        **extra,
    }


def test_plan_names_the_targets_that_are_no_node():
    networks = {"corp": mesh("a", "b", "c"), "lab": mesh("a", "x", interface="wg2")}
    nodes, refused = wgf_rotate.plan(networks, ["a", "b", "stranger"])
    assert nodes == {"a": {"wg1": "corp", "wg2": "lab"}, "b": {"wg1": "corp"}}
    assert refused == ["stranger"]
    nodes, refused = wgf_rotate.plan(networks, ["a", "b"], interface="wg2")
    assert nodes == {"a": {"wg2": "lab"}} and refused == ["b"]
    assert "'b'" in wgf_rotate.refusal(refused, "wg2") and "'wg2'" in wgf_rotate.refusal(
        refused, "wg2"
    )


def test_partners_learn_the_next_key_then_move_the_allowed_ips():
    networks = {"corp": mesh("a", "b", "c")}
    keys = {n: wgf_keys.pubkey(wgf_keys.genkey()) for n in ("old", "next")}
    staged = {"a": {"wg1": {"old": keys["old"], "next": keys["next"]}}}
    nodes = {"a": {"wg1": "corp"}}
    announce = wgf_rotate.announce_orders(networks, nodes, staged)
    assert sorted(announce) == ["b", "c"]
    assert announce["b"] == [
        {
            "interface": "wg1",
            "public_key": keys["next"],
            "replaces": keys["old"],
            "endpoint": "198.18.9.1:51820",
            "persistent_keepalive": None,
        }
    ]
    orders = wgf_rotate.switch_orders(networks, nodes, staged)
    assert orders["a"] == {"private_key": ["wg1"], "peers": [], "wake": ["10.9.0.2", "10.9.0.3"]}
    assert orders["c"] == {
        "private_key": [],
        "wake": [],
        "peers": [
            {
                "interface": "wg1",
                "old": keys["old"],
                "new": keys["next"],
                "allowed_ips": ["10.9.0.1/32"],
            }
        ],
    }


def test_a_spoke_moves_the_hubs_whole_network():
    networks = {"corp": {**mesh("hub", "s1", "s2"), "topology": "hub", "hubs": ["hub"]}}
    staged = {"hub": {"wg1": {"old": "o", "next": "n"}}}
    orders = wgf_rotate.switch_orders(networks, {"hub": {"wg1": "corp"}}, staged)
    assert orders["s1"]["peers"][0]["allowed_ips"] == ["10.9.0.0/24"]


@pytest.mark.parametrize("given, seconds", [("10", 10), (10, 10), (2.5, 3), ("0.2e1", 2)])
def test_a_timeout_reaches_salt_as_whole_seconds(given, seconds):
    """Salt's LocalClient reads any other number as no timeout, and waits salt-run's -t."""
    checked = wgf_rotate.checked_timeout(given)
    assert checked == seconds and type(checked) is int
    client = salt.client.LocalClient.__new__(salt.client.LocalClient)  # no master needed
    client.opts, client.event = {"timeout": 300}, None
    assert client._get_timeout(checked) == seconds
