"""Client rates (issue 23, ``limits.rate``) as tc shaping on the WireGuard interface
(``wgf_tc``): which clients are shaped and how (classes, burst, filters on every
address, IFB for what they send), the live batch from what tc shows, the rates script
and the config's fixed hook lines, ``wireguard.client_rates`` through the fake host, and
the real tc taking the script and the live changes in a scratch network namespace. The
firewall no longer holds rates (quota warnings stay in ``wgf_shaping``)."""

import copy
import ipaddress
import json
import subprocess
import uuid

import pytest

import wgf_conf
import wgf_firewall
import wgf_host
import wgf_iptables
import wgf_keys
import wgf_layout
import wgf_live
import wgf_quota_ipt
import wgf_tc
from tests.support import pipeline
from tests.support.fake_host import FakeHost
from tests.support.fake_minion import IF, FakeMinion, hand_in
from tests.support.netns import Netns
from tests.unit.conftest import StateModule

SERVER_PRIV = wgf_keys.genkey()


RATE_CLIENTS = {
    "alice": {"group": "staff"},
    "guest": {"limits": {"rate": "2mbit", "quota": "1GiB"}},
    "plain": {},
    "off": {"enabled": False, "limits": {"rate": "1mbit"}},
}


def server(firewall="nftables", **extra):
    """wg0 with a 2 mbit/s client of its own, a group's 50 mbit/s client, an unlimited
    client and a disabled limited one (no record: addresses from the pool, in order)."""
    groups = {"staff": {"limits": {"rate": "50mbit"}}}
    clients = copy.deepcopy(RATE_CLIENTS)
    keys = {"clients": clients, "client_groups": groups, **extra}
    return pipeline.client_server(SERVER_PRIV, firewall, **keys)


def addresses(iface, name):
    return iface["clients"][name]["address"]


# ------------------------------------------------------------------ pure


def test_only_present_live_clients_with_a_rate_get_a_class_with_a_small_burst():
    iface = server()
    classes = wgf_tc.classes(iface)
    assert [(c["client"], c["minor"], c["rate"], c["burst"]) for c in classes] == [
        ("alice", 0x10, 50_000_000, 312_500),  # the group's 50 mbit/s: 50 ms of it
        ("guest", 0x11, 2_000_000, 15_000),  # 2 mbit/s: at least ten full packets
    ]
    assert (
        classes[1]["addresses"] == addresses(iface, "guest") and len(classes[1]["addresses"]) == 2
    )
    assert wgf_tc.classes(server(client_groups={}, clients={"plain": {}})) == []


def test_the_burst_keeps_a_megabyte_at_2mbit_over_3_5_seconds():
    assert wgf_tc.burst(2_000_000) == 15_000
    assert (1_000_000 - wgf_tc.burst(2_000_000)) / 250_000 >= 3.5
    assert wgf_tc.burst(8_000) == wgf_tc.MIN_BURST


def test_rates_are_not_in_the_firewall_any_more():
    iface = server(client_groups={}, clients={"guest": {"limits": {"rate": "2mbit"}}})
    assert not wgf_firewall.needs_table(iface)  # a rate alone needs no table
    table = wgf_firewall.nft_table([server(open_port=True)])
    assert "limit rate" not in table and "bytes/second" not in table
    # the output chain is there for guest's quota only
    output = table.split("chain output {", 1)[1].split("}", 1)[0]
    assert all("quota" in line for line in output.splitlines()[2:] if line.strip()), output
    rules = wgf_iptables.iptables_rules([server("iptables", open_port=True)], 4)
    # iptables too: its output chain holds guest's quota counting only
    guest = wgf_quota_ipt.chain("quota_wg0_guest")
    assert list(rules["filter"]) == [
        "WIREGUARD-INPUT",
        "WIREGUARD-FORWARD",
        "WIREGUARD-OUTPUT",
        guest,
    ]
    assert all("quota" in r for r in rules["filter"]["WIREGUARD-OUTPUT"])
    assert not any("hashlimit" in r for chain in rules["filter"].values() for r in chain)


def test_a_new_device_gets_the_ifb_htb_on_both_and_filters_on_every_address():
    iface = server()
    v4, v6 = addresses(iface, "guest")
    before, lines, after = wgf_tc.batch("wg0", wgf_tc.classes(iface))
    assert before == [
        ["ip", "link", "add", "wg0-ifb", "txqueuelen", "1000", "type", "ifb"],
        ["ip", "link", "set", "wg0-ifb", "up"],
    ]
    assert after == []
    for dev, side in (("wg0", "dst"), ("wg0-ifb", "src")):
        assert f"qdisc replace dev {dev} root handle 1: htb default 1" in lines
        assert (
            f"class replace dev {dev} parent 1: classid 1:11 htb rate 2000000bit ceil "
            "2000000bit burst 15000b cburst 15000b quantum 65536"
        ) in lines
        assert f"class replace dev {dev} parent 1: classid 1:1 htb rate 10gbit" in " ".join(lines)
        assert (
            f"filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip {side} {v4}/32 "
            "flowid 1:11"
        ) in lines
        assert (
            f"filter add dev {dev} parent 1: protocol ipv6 prio 2 u32 match ip6 {side} "
            f"{v6}/128 flowid 1:11"
        ) in lines
    assert lines[-2:] == [
        "qdisc add dev wg0 handle ffff: ingress",
        "filter add dev wg0 parent ffff: protocol all prio 1 u32 match u32 0 0 "
        "action mirred egress redirect dev wg0-ifb",
    ]
    assert not any("plain" in line or "off" in line for line in lines)


def test_a_live_change_keeps_the_qdiscs_replaces_filters_and_drops_stale_classes():
    iface = server(client_groups={}, clients={"guest": {"limits": {"rate": "4mbit"}}})
    device = {"root": True, "classes": {1, 0x10, 0x11}}
    live = {"dev": device, "ingress": True, "ifb": dict(device)}
    before, lines, after = wgf_tc.batch("wg0", wgf_tc.classes(iface), live)
    assert before == [] and after == []
    assert not any(line.startswith("qdisc") for line in lines)  # no queue is dropped
    for dev in ("wg0", "wg0-ifb"):
        assert f"filter del dev {dev} parent 1:" in lines
        assert f"class del dev {dev} classid 1:11" in lines
        assert f"class del dev {dev} classid 1:10" not in lines
    assert "class replace dev wg0 parent 1: classid 1:10 htb rate 4000000bit" in "\n".join(lines)
    assert "filter del dev wg0 parent ffff:" in lines


def test_no_rated_client_left_removes_the_ingress_before_the_ifb_and_the_root():
    device = {"root": True, "classes": {1, 0x10}}
    live = {"dev": device, "ingress": True, "ifb": dict(device)}
    assert wgf_tc.batch("wg0", [], live) == (
        [],
        ["qdisc del dev wg0 root", "qdisc del dev wg0 ingress"],
        [["ip", "link", "del", "wg0-ifb"]],
    )
    nothing = {"dev": {"root": False, "classes": set()}, "ingress": False, "ifb": None}
    assert wgf_tc.batch("wg0", [], nothing) == ([], [], [])
    assert wgf_tc.live_matches(nothing, [])


def test_what_tc_shows_is_read_back():
    shown = {
        "qdisc": "qdisc htb 1: root refcnt 2 r2q 10 default 0x1\n"
        "qdisc ingress ffff: parent ffff:fff1 ----------------\n",
        "class": "class htb 1:11 root prio 0 rate 2Mbit ceil 2Mbit burst 15000b\n"
        "class htb 1:1 root prio 0 rate 10Gbit ceil 10Gbit\n",
    }
    live = wgf_tc.parse_live(shown)
    assert live == {"dev": {"root": True, "classes": {1, 0x11}}, "ingress": True, "ifb": None}
    wanted = wgf_tc.classes(server(client_groups={}, clients={"a": {"limits": {"rate": "1mbit"}}}))
    assert not wgf_tc.live_matches(live, wanted)  # no IFB
    live["ifb"] = {"root": True, "classes": {1, 0x10}}
    live["dev"]["classes"] = {1, 0x10}
    assert wgf_tc.live_matches(live, wanted)


def test_the_ifb_name_fits_an_interface_name():
    assert wgf_tc.ifb_name("wg0") == "wg0-ifb"
    long = wgf_tc.ifb_name("wireguard-main0")
    assert (
        len(long) == 15 and long.startswith("ifb-") and long != wgf_tc.ifb_name("wireguard-main1")
    )


def test_the_config_carries_fixed_hook_lines_only_while_a_client_is_rated():
    text = wgf_conf.render(server())
    hooks = wgf_tc.hook_lines("wg0")
    path = "/var/lib/wireguard-formula/rates/wg0.sh"
    assert hooks == {
        "PostUp": f"test ! -f {path} || sh {path} up",
        "PreDown": f"test ! -f {path} || sh {path} down",
    }
    assert f"PostUp = {hooks['PostUp']}\n" in text and f"PreDown = {hooks['PreDown']}\n" in text
    # another rate: the same config
    faster = server(client_groups={}, clients={"guest": {"limits": {"rate": "9mbit"}}})
    assert [line for line in wgf_conf.render(faster).splitlines() if "rates" in line] == [
        f"PostUp = {hooks['PostUp']}",
        f"PreDown = {hooks['PreDown']}",
    ]
    plain = wgf_conf.render(server(client_groups={}, clients={"plain": {}}))
    assert "rates" not in plain
    # their coming and going needs no restart: the state applies the rates live
    assert wgf_live.restart_reasons(plain, text) == []
    assert wgf_live.restart_reasons(text, plain) == []
    assert wgf_tc.is_hook(hooks["PostUp"]) and not wgf_tc.is_hook("sh /tmp/x.sh up")
    assert not wgf_tc.is_hook(f"test ! -f {path} || sh /tmp/other.sh up")


def test_the_script_rebuilds_everything_at_up_and_removes_the_ifb_at_down():
    iface = server()
    script = wgf_tc.script("wg0", wgf_tc.classes(iface))
    assert script.startswith("#!/bin/sh\n")
    assert "# client guest rate 2000000 burst 15000 class 1:11\n" in script
    assert 'if [ "$1" = down ]; then ip link del wg0-ifb 2>/dev/null; exit 0; fi\n' in script
    assert "tc qdisc del dev wg0 root 2>/dev/null\n" in script and script.endswith("exit 0\n")
    _, lines, _ = wgf_tc.batch("wg0", wgf_tc.classes(iface))
    assert "tc -batch - <<'EOF'\n" + "\n".join(lines) + "\nEOF\n" in script
    assert wgf_tc.rates_of(script) == {
        "alice": {"rate": 50_000_000, "burst": 312_500},
        "guest": {"rate": 2_000_000, "burst": 15_000},
    }
    check = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


# ------------------------------------------------------------------ the state


@pytest.fixture
def minion(tmp_path):
    return FakeMinion(tmp_path)


@pytest.fixture
def host():
    return FakeHost()


@pytest.fixture
def root(states, tmp_path, monkeypatch):
    # after the state file is loaded: loading it reloads the utils
    monkeypatch.setattr(wgf_tc, "STATE_ROOT", str(tmp_path / "rates"))
    return tmp_path / "rates"


@pytest.fixture
def states(minion, host, tmp_path, monkeypatch):
    module = StateModule(
        ("wireguard_clients",), minion.functions(), {"test": False}, tag="rates_under_test"
    )
    monkeypatch.setattr(wgf_layout, "RESTART_PENDING_DIR", str(tmp_path / "pending"))
    hand_in(monkeypatch, host)
    return module


def with_clients(states, minion, tmp_path, clients):
    minion.firewall = "iptables"  # limits need a firewall backend; rates are tc's anyway
    minion.pillar["interfaces"][IF].update(endpoint="198.18.0.1:51820", clients=clients)
    ret = states.clients(IF, config_dir=str(tmp_path))
    assert ret["result"] is not False, ret
    return json.loads((tmp_path / f"{IF}.clients.json").read_text())["clients"]


def applied(host):
    return [d for d in host.done if d[0] == "tc_apply"]


def test_rates_apply_live_then_nothing_then_a_change_then_all_goes(
    states, minion, host, tmp_path, root
):
    clients = {"phone": {"limits": {"rate": "2mbit"}}, "laptop": {}}
    with_clients(states, minion, tmp_path, clients)
    ret = states.client_rates(IF, config_dir=str(tmp_path))
    assert ret["result"] is True, ret
    assert ret["changes"] == {"phone": {"old": None, "new": {"rate": 2_000_000, "burst": 15_000}}}
    script = (root / f"{IF}.sh").read_text()
    assert "# client phone rate 2000000 burst 15000 class 1:10" in script
    assert len(applied(host)) == 1 and host.tc[wgf_tc.ifb_name(IF)]["root"]
    # as wanted: nothing is run again
    done = len(host.done)
    ret = states.client_rates(IF, config_dir=str(tmp_path))
    assert ret["changes"] == {} and "as pillar says" in ret["comment"]
    assert len(applied(host)) == 1 and len(host.done) == done
    # a second client rated, the first faster: one batch, classes changed in place
    clients["laptop"] = {"limits": {"rate": "8mbit"}}
    clients["phone"] = {"limits": {"rate": "4mbit"}}
    with_clients(states, minion, tmp_path, clients)
    ret = states.client_rates(IF, config_dir=str(tmp_path))
    assert sorted(ret["changes"]) == ["laptop", "phone"]
    _, lines, _ = applied(host)[-1][1:]
    assert not any(line.startswith("qdisc") for line in lines)
    assert sorted(host.tc[IF]["classes"]) == [1, 0x10, 0x11]
    # the limits gone: the qdiscs, the ingress, the IFB and the script go
    with_clients(states, minion, tmp_path, {"phone": {}, "laptop": {}})
    ret = states.client_rates(IF, config_dir=str(tmp_path))
    assert ret["changes"]["phone"] == {"old": {"rate": 4_000_000, "burst": 25_000}, "new": None}
    assert wgf_tc.ifb_name(IF) not in host.tc and not host.tc[IF]["root"]
    assert IF not in host.tc_ingress and not (root / f"{IF}.sh").exists()
    assert states.client_rates(IF, config_dir=str(tmp_path))["changes"] == {}


def test_test_mode_predicts_and_touches_nothing(states, minion, host, tmp_path, root):
    with_clients(states, minion, tmp_path, {"phone": {"limits": {"rate": "2mbit"}}})
    states.__opts__["test"] = True
    ret = states.client_rates(IF, config_dir=str(tmp_path))
    assert ret["result"] is None and "phone" in ret["changes"]
    assert applied(host) == [] and not root.exists()


def test_shaping_lost_behind_the_formulas_back_is_put_back(states, minion, host, tmp_path, root):
    with_clients(states, minion, tmp_path, {"phone": {"limits": {"rate": "2mbit"}}})
    states.client_rates(IF, config_dir=str(tmp_path))
    host.tc.clear()
    host.tc_ingress.clear()
    ret = states.client_rates(IF, config_dir=str(tmp_path))
    assert ret["changes"] == {"tc": {"old": "drifted", "new": "restored"}}
    assert host.tc[IF]["root"] and IF in host.tc_ingress


def test_a_down_interface_only_gets_its_script(states, minion, host, tmp_path, root):
    with_clients(states, minion, tmp_path, {"phone": {"limits": {"rate": "2mbit"}}})
    minion.up = False
    ret = states.client_rates(IF, config_dir=str(tmp_path))
    assert "(not up)" in ret["comment"] and (root / f"{IF}.sh").exists()
    assert applied(host) == [] and not any(a[0] == "tc_live" for a in host.asked)


# ------------------------------------------- the real tc, in a scratch namespace


@pytest.fixture
def scratch():
    """A network namespace with a TUN device (what wireguard-go makes), and the real
    host adapter whose commands run in it."""
    ns = Netns("tcrates").create()
    try:
        dev = f"t{uuid.uuid4().hex[:6]}"
        ns.run(["ip", "tuntap", "add", "dev", dev, "mode", "tun"])
        ns.ip("link", "set", dev, "up")

        def run_all(argv, stdin=None, **_):
            done = subprocess.run(
                ["ip", "netns", "exec", ns.netns, *argv],
                input=stdin,
                capture_output=True,
                text=True,
                check=False,
            )
            return {"retcode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

        yield ns, dev, wgf_host.Host({"cmd.run_all": run_all})
    finally:
        ns.delete()


def test_tc_takes_the_script_and_the_live_changes(scratch, tmp_path):
    ns, dev, host = scratch
    ifb = wgf_tc.ifb_name(dev)
    rated = server(client_groups={}, clients={"a": {"limits": {"rate": "2mbit"}}, "b": {}})
    wanted = wgf_tc.classes(rated)
    script = tmp_path / "rates.sh"
    script.write_text(wgf_tc.script(dev, wanted))
    for _ in range(2):  # at up, and again: the script starts from scratch each time
        ns.run(["sh", str(script), "up"])
        live = wgf_tc.parse_live(host.tc_live(dev, ifb))
        assert wgf_tc.live_matches(live, wanted), live
    assert "rate 2Mbit ceil 2Mbit burst 15000b" in ns.out(["tc", "class", "show", "dev", ifb])
    filters = ns.out(["tc", "filter", "show", "dev", dev, "parent", "ffff:"])
    assert f"Redirect to device {ifb}" in filters
    # live: another rate, another client, through the batch from what tc shows
    both = server(
        client_groups={},
        clients={"a": {"limits": {"rate": "4mbit"}}, "b": {"limits": {"rate": "1mbit"}}},
    )
    wanted = wgf_tc.classes(both)
    host.tc_apply(*wgf_tc.batch(dev, wanted, live))
    live = wgf_tc.parse_live(host.tc_live(dev, ifb))
    assert wgf_tc.live_matches(live, wanted), live
    classes = ns.out(["tc", "class", "show", "dev", dev])
    assert "class htb 1:10 root prio 0 rate 4Mbit" in classes and "1:11" in classes
    v4 = addresses(both, "b")[0]
    assert f"match {int(ipaddress.ip_address(v4)):08x}/ffffffff at 16" in ns.out(
        ["tc", "filter", "show", "dev", dev, "parent", "1:"]
    )
    # one client fewer, then none
    one = wgf_tc.classes(rated)
    host.tc_apply(*wgf_tc.batch(dev, one, live))
    live = wgf_tc.parse_live(host.tc_live(dev, ifb))
    assert wgf_tc.live_matches(live, one) and live["dev"]["classes"] == {1, 0x10}
    host.tc_apply(*wgf_tc.batch(dev, [], live))
    live = wgf_tc.parse_live(host.tc_live(dev, ifb))
    assert live == {"dev": {"root": False, "classes": set()}, "ingress": False, "ifb": None}
    ns.run(["sh", str(script), "up"])
    ns.run(["sh", str(script), "down"])
    assert ns.ifindex(ifb) is None


def test_a_failing_script_says_so_and_lets_wg_quick_go_on(scratch, tmp_path):
    ns, _, _ = scratch
    wanted = wgf_tc.classes(server(client_groups={}, clients={"a": {"limits": {"rate": "1mbit"}}}))
    script = tmp_path / "rates.sh"
    script.write_text(wgf_tc.script("nosuchdev", wanted))  # no such device to shape
    done = ns.run(["sh", str(script), "up"], check=False)
    assert done.returncode == 0
    assert "wireguard formula: the client rates of nosuchdev are not applied" in done.stderr


def test_clean_takes_the_rates_script_of_each_interface_it_cleans(tmp_path, monkeypatch):
    monkeypatch.setattr(wgf_tc, "STATE_ROOT", str(tmp_path / "rates"))
    config = tmp_path / "etc"
    config.mkdir()
    (config / "wg0.conf").write_text("[Interface]\n")
    (config / "wg1.conf").write_text("[Interface]\n")
    (tmp_path / "rates").mkdir()
    for name in ("wg0", "other"):
        (tmp_path / "rates" / f"{name}.sh").write_text("#!/bin/sh\n")
    removed, _ = wgf_layout.clean(str(config))
    assert str(tmp_path / "rates" / "wg0.sh") in removed
    assert not (tmp_path / "rates" / "wg0.sh").exists()
    assert (tmp_path / "rates" / "other.sh").exists()  # not an interface cleaned here
