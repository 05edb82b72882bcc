"""What a restart builds (wgf_live.wanted/derived_routes), what only a restart changes
(restart_reasons), and the plan of live steps: plain data, as wg-quick decides it."""

import ipaddress
import pathlib
import random
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "_utils"))
import wgf_addr  # the formula's utils
import wgf_live


def test_auto_table_routes_what_no_connected_route_covers():
    routes = wgf_live.derived_routes(
        "auto",
        ["10.0.0.2/32", "10.9.0.0/24", "fd00::2/128", "0.0.0.0/0"],
        ["10.0.0.1/24", "fd00::1/64", "192.168.9.9/32"],
    )
    assert routes == {("10.9.0.0/24", "main"): "boot"}


def test_a_table_gets_every_allowed_ip_and_off_none():
    allowed = ["10.0.0.2/32", "0.0.0.0/0"]
    assert wgf_live.derived_routes("1234", allowed, ["10.0.0.1/24"]) == {
        ("10.0.0.2/32", "1234"): "boot",
        ("0.0.0.0/0", "1234"): "boot",
    }
    assert wgf_live.derived_routes("off", allowed, ["10.0.0.1/24"]) == {}


def test_link_local_covers_fe80():
    assert wgf_live.derived_routes("auto", ["fe80::5/128"], [], link_local=True) == {}
    assert wgf_live.derived_routes("auto", ["fe80::5/128"], []) == {("fe80::5/128", "main"): "boot"}


def _reference_routes(allowed_ips, addresses):
    """wg-quick's rule for ``table: auto``, spelt with ipaddress alone."""
    connected = [
        ipaddress.ip_interface(a).network
        for a in addresses
        if ipaddress.ip_interface(a).network.prefixlen < ipaddress.ip_interface(a).max_prefixlen
    ]
    return {
        (str(net), "main"): "boot"
        for net in (ipaddress.ip_network(c, strict=False) for c in allowed_ips)
        if net.prefixlen
        and not any(net.version == c.version and net.subnet_of(c) for c in connected)
    }


def test_auto_routes_agree_with_ipaddress_on_random_networks():
    rng = random.Random(24)
    for _ in range(200):
        cidrs = []
        for _ in range(12):
            if rng.random() < 0.5:
                cidrs.append(
                    f"10.{rng.randrange(3)}.{rng.randrange(4)}.{rng.randrange(256)}/{rng.randrange(33)}"
                )
            else:
                cidrs.append(
                    f"fd00:{rng.randrange(3):x}::{rng.randrange(65536):x}/{rng.randrange(129)}"
                )
        allowed, addresses = cidrs[:8], cidrs[8:]
        assert wgf_live.derived_routes("auto", allowed, addresses) == _reference_routes(
            allowed, addresses
        ), (allowed, addresses)


def test_the_fast_cidr_parse_answers_as_ipaddress_does():
    spellings = ["10.0.0.1/24", "1.2.3.4", "::1", "::ffff:1.2.3.4/100", "10.0.0.0/08", "::1/0128"]
    refused = ["1.2.3.4/", "10.0.0.1/33", "01.2.3.4/24", "1.2.3/24", "::1/129", "10.0.0.1/-1"]
    refused += ["10.0.0.1/ 24", "10.0.0.1/24 ", "10.0.0.1/\u0662", "", "/24", "10.0.0.1/24/1"]
    for cidr in spellings:
        net = ipaddress.ip_network(cidr, strict=False)
        assert wgf_addr.cidr_sort_key(cidr) == (
            net.version,
            int(net.network_address),
            net.prefixlen,
        )
    for cidr in refused:
        with pytest.raises(ValueError):
            wgf_addr.cidr_sort_key(cidr)


def conf(hooks="", table="", allowed="10.0.0.2/32", fwmark=""):
    return (
        "[Interface]\nAddress = 10.0.0.1/24\n"
        + hooks
        + table
        + fwmark
        + "PostUp = ip route replace 172.16.0.0/24 dev %i proto static\n"
        + f"\n[Peer]\nPublicKey = x\nAllowedIPs = {allowed}\n"
    )


def test_only_hooks_table_and_default_route_need_a_restart():
    base = conf()
    assert wgf_live.restart_reasons(base, base.replace("10.0.0.1/24", "10.0.1.1/24")) == []
    assert wgf_live.restart_reasons(base, base.replace("172.16.0.0/24", "172.17.0.0/24")) == [], (
        "routes are live"
    )
    assert wgf_live.restart_reasons(None, base) == []
    (hook,) = wgf_live.restart_reasons(base, conf(hooks="PostUp = echo hi\n"))
    assert "hooks changed" in hook
    (table,) = wgf_live.restart_reasons(base, conf(table="Table = off\n"))
    assert table == "its table changed from auto to off"
    (default,) = wgf_live.restart_reasons(base, conf(allowed="0.0.0.0/0"))
    assert "default route" in default
    full = conf(allowed="0.0.0.0/0")
    assert wgf_live.restart_reasons(full, conf(allowed="0.0.0.0/0, 10.9.0.0/24")) == []
    assert wgf_live.restart_reasons(full, conf(allowed="0.0.0.0/0", fwmark="FwMark = 7\n"))


def state(**changes):
    base = {
        "public_key": "K",
        "listen_port": 51820,
        "fwmark": None,
        "addresses": ["10.0.0.1/24"],
        "mtu": 1420,
        "dns": None,
        "routes": {("10.9.0.0/24", "main"): "boot"},
        "default_route": False,
    }
    base.update(changes)
    return base


def test_nothing_to_do_is_no_step():
    assert wgf_live.plan(state(), state(), "wg0") == ([], {})


def test_plan_orders_steps_and_undoes_each():
    want = state(
        addresses=["10.0.1.1/24"],
        mtu=1380,
        listen_port=51821,
        routes={("10.9.0.0/24", "main"): "static", ("10.8.0.0/24", "7"): "boot"},
        dns={"nameservers": ["10.0.0.53"], "search": ["corp"]},
    )
    steps, changes = wgf_live.plan(want, state(), "wg0")
    assert [s["name"] for s in steps] == [
        "add address 10.0.1.1/24",
        "set mtu 1380",
        "remove address 10.0.0.1/24",
        "add route 10.8.0.0/24 table 7",
        "replace route 10.9.0.0/24",
        "set DNS",
        "wg set listen_port",
    ]
    assert steps[0]["undo"] == [["ip", "-4", "address", "del", "10.0.1.1/24", "dev", "wg0"]]
    assert steps[3]["do"] == [
        ["ip", "-4", "route", "add", "10.8.0.0/24", "dev", "wg0", "table", "7"]
    ]
    assert steps[4]["undo"] == [["ip", "-4", "route", "replace", "10.9.0.0/24", "dev", "wg0"]]
    assert changes["mtu"] == {"old": 1420, "new": 1380}
    assert changes["routes"] == {
        "old": ["10.9.0.0/24"],
        "new": ["10.8.0.0/24 table 7", "10.9.0.0/24"],
    }
    assert wgf_live.dns_text(want["dns"]) == "nameserver 10.0.0.53\nsearch corp\n"


def test_unset_listen_port_and_default_route_fwmark_are_left_alone():
    steps, _ = wgf_live.plan(state(listen_port=None), state(listen_port=40000), "wg0")
    assert steps == []
    steps, _ = wgf_live.plan(state(fwmark=None, default_route=True), state(fwmark=51820), "wg0")
    assert steps == []


def test_running_reads_ip_json_as_wg_quick_left_it():
    have = wgf_live.running(
        {"public_key": "K", "listen_port": 1, "fwmark": None},
        {"mtu": 1420, "addresses": ["10.0.0.1/24"]},
        [
            {"dst": "10.0.0.0/24", "protocol": "kernel"},
            {"dst": "10.9.0.0/24"},
            {"dst": "default", "table": "51820"},
            {"type": "local", "dst": "10.0.0.1", "table": "local"},
        ],
        [{"dst": "fd09::/64", "protocol": "static"}],
        "nameserver 1.1.1.1\n",
        default_route=True,
    )
    assert have["routes"] == {("10.9.0.0/24", "main"): "boot", ("fd09::/64", "main"): "static"}
    assert have["dns"] == {"nameservers": ["1.1.1.1"], "search": []}


def test_networkds_routes_are_its_own_protocol_and_need_no_step():
    """networkd adds a [Route] with proto static: the live engine wants the derived
    routes of a networkd interface so, and leaves what networkd built alone."""
    import wgf_networkd

    iface = {row.key: None for row in wgf_live.wgf_options.rows()}
    iface.update(table="auto", address=["10.0.0.1/24"], routes=[], dns=[], mtu=1420)
    want = wgf_live.wanted(iface, "K", ["10.9.0.0/24"], False, None, wgf_networkd.ROUTE_PROTOCOL)
    assert want["routes"] == {("10.9.0.0/24", "main"): "static"}
    built = wgf_live.running(
        {"public_key": "K", "listen_port": None, "fwmark": None},
        {"mtu": 1420, "addresses": ["10.0.0.1/24"]},
        [{"dst": "10.9.0.0/24", "protocol": "static"}],
        [],
        None,
        default_route=False,
    )
    assert [s for s in wgf_live.plan(want, built, "wg0")[0] if "route" in s["name"]] == []
    boot = wgf_live.wanted(iface, "K", ["10.9.0.0/24"], False, None)
    assert boot["routes"] == {("10.9.0.0/24", "main"): "boot"}  # wg-quick's


def test_mtu_from_routes_like_wg_quick():
    links = {"eth0": 1500, "eth1": 9000}
    assert wgf_live.mtu_from_routes([{"dev": "eth0"}, {"dev": "eth1"}], links, None) == 8920
    assert (
        wgf_live.mtu_from_routes([{"dev": "eth0", "metrics": [{"mtu": 1400}]}], links, None) == 1320
    )
    assert wgf_live.mtu_from_routes([], links, {"dev": "eth1"}) == 8920
    assert wgf_live.mtu_from_routes([], links, None) == 1420


def test_resolvconf_name_follows_interface_order():
    assert wgf_live.resolvconf_name("wg0", None) == "wg0"
    assert wgf_live.resolvconf_name("wg0", "lo.inet6\ntun*\neth*\n") == "tun.wg0"
