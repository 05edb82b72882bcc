"""Client rates (issue 23, ``limits.rate``) in the formula's firewall (``wgf_shaping``
through ``wgf_firewall``): the rules each backend gets for clients with and without
limits, of a group or their own, IPv4 and IPv6, the bucket, and what the real nft and
iptables-restore make of them in a scratch network namespace."""

import subprocess

import pytest

import wgf_firewall
import wgf_host
import wgf_keys
import wgf_pipeline
import wgf_shaping
from tests.support import pipeline

SERVER_PRIV = wgf_keys.genkey()


def server(firewall="nftables", **extra):
    """wg0 with a 2 mbit/s client of its own, a group's 50 mbit/s client, an unlimited
    client and a disabled limited one (no record: addresses from the pool, in order)."""
    iface = {
        "address": ["10.8.0.1/24", "fd08::1/64"],
        "listen_port": 51820,
        "endpoint": "vpn.example.com",
        "client_groups": {"staff": {"limits": {"rate": "50mbit"}}},
        "clients": {
            "alice": {"group": "staff"},
            "guest": {"limits": {"rate": "2mbit", "quota": "1GiB"}},
            "plain": {},
            "off": {"enabled": False, "limits": {"rate": "1mbit"}},
        },
        **extra,
    }
    return pipeline.interfaces(
        {"interfaces": {"wg0": iface}},
        "vpn",
        own_public_keys={"wg0": wgf_keys.pubkey(SERVER_PRIV)},
        client_records={"wg0": None},
        firewall=firewall,
    )["wg0"]


def addresses(iface, name):
    return iface["clients"][name]["address"]


def test_only_present_live_clients_with_a_rate_are_limited_in_bytes_per_second():
    iface = server()
    rated = wgf_shaping.rated_clients(iface)
    assert [(name, rate) for name, rate, _ in rated] == [
        ("alice", 6_250_000),  # the group's 50 mbit/s
        ("guest", 250_000),  # 2 mbit/s
    ]
    assert rated[1][2] == addresses(iface, "guest") and len(rated[1][2]) == 2  # v4 and v6
    assert wgf_shaping.rated_clients(server(client_groups={}, clients={"plain": {}})) == []


def test_a_client_rate_alone_makes_the_interface_need_the_table():
    iface = server(client_groups={}, clients={"guest": {"limits": {"rate": "2mbit"}}})
    assert not (iface["masquerade"] or iface["open_port"] or iface["access"])
    assert wgf_firewall.needs_table(iface)
    assert not wgf_firewall.needs_table(server(client_groups={}, clients={"plain": {}}))
    settings = wgf_pipeline.settings({"wg0": iface}, "nftables")
    assert settings["needs"]["firewall_tools"] is True


def test_nftables_rules_per_client_direction_and_family_come_first():
    iface = server(open_port=True)
    v4, v6 = addresses(iface, "guest")
    table = wgf_firewall.nft_table([iface])
    lines = [line.strip() for line in table.splitlines()]
    guest_in, guest_out = "rate_wg0_guest_in", "rate_wg0_guest_out"
    for name in (guest_in, guest_out):
        at = lines.index(f"limit {name} {{")
        assert lines[at + 1] == "rate over 250000 bytes/second"  # the bucket: one second
    at = lines.index("limit rate_wg0_alice_in {")
    assert lines[at + 1] == "rate over 6250000 bytes/second"
    comment = 'comment "wg0 client guest rate"'
    frm4 = f'iifname "wg0" ip saddr {v4} limit name "{guest_in}" drop {comment}'
    frm6 = f'iifname "wg0" ip6 saddr {v6} limit name "{guest_in}" drop {comment}'
    to4 = f'oifname "wg0" ip daddr {v4} limit name "{guest_out}" drop {comment}'
    to6 = f'oifname "wg0" ip6 daddr {v6} limit name "{guest_out}" drop {comment}'
    chains = _nft_chains(table)
    assert {frm4, frm6} <= set(chains["input"]) and not {to4, to6} & set(chains["input"])
    assert {frm4, frm6, to4, to6} <= set(chains["forward"])
    assert {to4, to6} <= set(chains["output"]) and not {frm4, frm6} & set(chains["output"])
    # before the open port's accept: no accept lets a packet over its rate past
    assert chains["input"][-1].startswith("udp dport 51820 accept")
    assert "off" not in table and "plain" not in table  # disabled, unlimited


def _nft_chains(table):
    chains, current = {}, None
    for line in table.splitlines():
        line = line.strip()
        if line.startswith("chain "):
            current = chains.setdefault(line.split()[1], [])
        elif current is not None and line not in ("}",) and not line.startswith("type "):
            current.append(line)
    return chains


def test_no_output_chain_without_a_rate():
    iface = server(client_groups={}, clients={"plain": {}}, open_port=True)
    assert "chain output" not in wgf_firewall.nft_table([iface])
    assert "limit " not in wgf_firewall.nft_table([iface])
    rules = wgf_firewall.iptables_rules([iface], 4)
    assert list(rules["filter"]) == ["WIREGUARD-INPUT", "WIREGUARD-FORWARD"]


def test_low_rates_keep_a_bucket_of_two_full_packets():
    iface = server(client_groups={}, clients={"slow": {"limits": {"rate": "8kbit"}}})
    table = wgf_firewall.nft_table([iface])
    assert "rate over 1000 bytes/second burst 2000 bytes" in table
    assert wgf_shaping.MIN_BUCKET == 3000


def test_a_client_name_nft_cannot_take_as_is_gets_a_distinct_object_name():
    assert wgf_shaping.nft_limit_name("wg0", "a=b", "in") == "rate_wg0_a.3db_in"
    assert wgf_shaping.nft_limit_name("wg0", "a+b", "in") == "rate_wg0_a.2bb_in"
    assert wgf_shaping.nft_limit_name("wg-1", "a.b", "out") == "rate_wg.2d1_a.2eb_out"


@pytest.mark.parametrize("version", [4, 6])
def test_iptables_rules_per_client_with_hashlimit(version):
    iface = server("iptables")
    address = addresses(iface, "guest")[0 if version == 4 else 1]
    prefix = 32 if version == 4 else 128
    rules = wgf_firewall.iptables_rules([iface], version)["filter"]
    comment = '-m comment --comment "wg0 client guest rate"'
    frm = (
        f"-s {address}/{prefix} -i wg0 -m hashlimit --hashlimit-above 250000b/s "
        f"--hashlimit-mode srcip --hashlimit-name wgf_wg0_guest_in_250000 {comment} -j DROP"
    )
    to = (
        f"-d {address}/{prefix} -o wg0 -m hashlimit --hashlimit-above 250000b/s "
        f"--hashlimit-mode dstip --hashlimit-name wgf_wg0_guest_out_250000 {comment} -j DROP"
    )
    assert frm in rules["WIREGUARD-INPUT"] and to not in rules["WIREGUARD-INPUT"]
    assert frm in rules["WIREGUARD-FORWARD"] and to in rules["WIREGUARD-FORWARD"]
    assert rules["WIREGUARD-OUTPUT"] == [r for r in rules["WIREGUARD-OUTPUT"] if "-d " in r]
    assert to in rules["WIREGUARD-OUTPUT"]
    assert not any("off" in r or "plain" in r for chain in rules.values() for r in chain)
    other = "10.8.0." if version == 6 else "fd08::"
    assert not any(other in r for chain in rules.values() for r in chain)


def test_iptables_output_chain_is_jumped_to_and_removed_when_no_longer_needed():
    rules = wgf_firewall.iptables_rules([server("iptables")], 4)
    text = wgf_firewall.iptables_restore(rules, set())
    assert ":WIREGUARD-OUTPUT - [0:0]" in text and "-I OUTPUT 1 -j WIREGUARD-OUTPUT" in text
    plain = server("iptables", client_groups={}, clients={"plain": {}}, open_port=True)
    jumps = {("INPUT", "WIREGUARD-INPUT"), ("OUTPUT", "WIREGUARD-OUTPUT")}
    text = wgf_firewall.iptables_restore(wgf_firewall.iptables_rules([plain], 4), jumps)
    assert "-D OUTPUT -j WIREGUARD-OUTPUT\n-F WIREGUARD-OUTPUT\n-X WIREGUARD-OUTPUT" in text
    removal = wgf_firewall.iptables_removal({"WIREGUARD-INPUT", "WIREGUARD-OUTPUT"}, jumps)
    assert "-D OUTPUT -j WIREGUARD-OUTPUT" in removal and "-X WIREGUARD-OUTPUT" in removal


# ------------------------------------------- the real tools, in a scratch namespace


def _run_all(argv, stdin=None, **_):
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    return {"retcode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


@pytest.fixture
def host():
    """The real host adapter, its commands run as the minion's cmd.run_all runs them."""
    return wgf_host.Host({"cmd.run_all": _run_all})


def test_nft_takes_the_rates(host):
    iface = server(open_port=True)
    table = wgf_firewall.nft_table([iface])
    shown = host.nft_canonical(wgf_firewall.TABLE, table)
    v4 = addresses(iface, "guest")[0]
    assert "limit rate_wg0_guest_in {" in shown and "rate over 250000 bytes/second" in shown
    assert f'oifname "wg0" ip daddr {v4} limit name "rate_wg0_guest_out" drop' in shown
    assert "hook output" in shown
    # the same text again is the same table: an apply that changes nothing is a no-op
    assert host.nft_canonical(wgf_firewall.TABLE, table) == shown


@pytest.mark.parametrize("version", [4, 6])
def test_iptables_restore_takes_the_rates(host, version):
    rules = wgf_firewall.iptables_rules([server("iptables")], version)
    saved = host.iptables_canonical(version, wgf_firewall.iptables_restore(rules, set()))
    ours = wgf_firewall.iptables_ours(saved)
    assert ("OUTPUT", "WIREGUARD-OUTPUT") in wgf_firewall.iptables_jumps(ours)
    limited = [line for line in ours if "--hashlimit-above" in line]
    # guest: in (input, forward) and out (forward, output); alice the same
    assert len(limited) == 8
    assert any("--hashlimit-name wgf_wg0_guest_in_250000" in line for line in limited)
