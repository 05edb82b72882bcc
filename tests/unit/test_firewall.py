"""The formula's firewall (wgf_firewall): pillar checks, and the rule sets it renders,
loaded by the real nft and iptables-restore in a throwaway network namespace."""

import shutil
import subprocess

import pytest
from salt.exceptions import SaltInvocationError

import wgf_firewall
import wgf_iptables
from tests.support import pipeline

KEY_A = "scGH95QfjmKl/rjJQD6gDRCe9/fYTWxq2K8a8imo2TE="
KEY_B = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="


def jumpbox(firewall="nftables", **extra):
    pillar = {
        "interfaces": {
            "jump0": {
                "address": ["10.9.0.1/24", "fd09::1/64"],
                "listen_port": 51821,
                "forwarding": True,
                "masquerade": ["vlan50"],
                "peers": {
                    "laptop": {"public_key": KEY_A, "allowed_ips": ["10.9.0.2/32", "fd09::2/128"]},
                    "admin": {"public_key": KEY_B, "allowed_ips": ["10.9.0.3/32"]},
                },
                **extra,
            }
        }
    }
    return pipeline.interfaces(pillar, "jumpbox", firewall=firewall)


ACCESS = {
    "default": "drop",
    "rules": [
        {"from": ["laptop"], "to": ["172.16.50.10/32"], "proto": "tcp", "ports": [22, "8000-8100"]},
        {"from": ["admin", "192.0.2.0/24"], "to": ["172.16.50.0/24"]},
        {"from": ["laptop"], "proto": "icmp"},
    ],
}


def test_peer_names_resolve_to_their_allowed_ips():
    rules = jumpbox(access=ACCESS)["jump0"]["access"]["rules"]
    assert rules[0]["sources"] == ["10.9.0.2/32", "fd09::2/128"]
    assert rules[1]["sources"] == ["10.9.0.3/32", "192.0.2.0/24"]
    assert rules[0]["ports"] == ["22", "8000-8100"] and rules[1]["proto"] == "any"


BAD = [
    (
        {"access": {"rules": [{"from": ["nobody"], "to": ["10.0.0.0/8"]}]}},
        ["interface 'jump0'", "rule 1", "'nobody' names no peer"],
    ),
    (
        {"access": {"rules": [{"from": ["laptop"], "to": ["10.0.0.0/33"]}]}},
        ["interface 'jump0'", "rule 1, to", "not a valid CIDR"],
    ),
    (
        {
            "access": {
                "rules": [
                    {"from": ["laptop"]},
                    {"from": ["laptop"], "proto": "tcp", "ports": [70000]},
                ]
            }
        },
        ["interface 'jump0'", "rule 2, ports", "1-65535"],
    ),
    (
        {"access": {"rules": [{"from": ["laptop"], "proto": "gre"}]}},
        ["interface 'jump0'", "rule 1, proto", "'gre'"],
    ),
    (
        {"access": {"rules": [{"from": ["laptop"], "proto": "icmp", "ports": [22]}]}},
        ["interface 'jump0'", "rule 1, ports", "tcp or udp"],
    ),
    (
        {"access": {"rules": [{"from": ["admin"], "to": ["fd50::/64"]}]}},
        ["interface 'jump0'", "rule 1", "no address family"],
    ),
    ({"access": {"default": "reject"}}, ["interface 'jump0'", "'access', default"]),
    ({"access": {"rules": [{"to": ["10.0.0.0/8"]}]}}, ["interface 'jump0'", "rule 1, from"]),
    ({"open_port": ["198.18.0.0/15", "not-a-cidr"]}, ["interface 'jump0'", "'open_port'"]),
    ({"open_port": True, "listen_port": None}, ["interface 'jump0'", "needs a listen_port"]),
    ({"masquerade": ["eth0 -j ACCEPT"]}, ["interface 'jump0'", "'masquerade'"]),
]


@pytest.mark.parametrize(("extra", "words"), BAD)
def test_bad_firewall_pillar_is_refused_naming_interface_and_rule(extra, words):
    with pytest.raises(SaltInvocationError) as error:
        jumpbox(**extra)
    for word in words:
        assert word in str(error.value)


def test_open_port_and_access_need_a_firewall_backend():
    with pytest.raises(SaltInvocationError, match="'access': needs the formula's firewall"):
        jumpbox("none", access=ACCESS)
    assert wgf_firewall.backend("auto", True) == "nftables"
    assert wgf_firewall.backend(None, False) == "iptables"
    with pytest.raises(SaltInvocationError, match="lookup, key 'firewall'"):
        wgf_firewall.backend("ufw", True)


def test_nftables_table():
    table = wgf_firewall.nft_table(jumpbox(access=ACCESS, open_port=["198.18.0.10"]).values())
    assert table.splitlines() == [
        "table inet wireguard {",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        '\t\tudp dport 51821 ip saddr { 198.18.0.10/32 } accept comment "jump0 open_port"',
        '\t\tudp dport 51821 drop comment "jump0 open_port"',
        *[f"\t\t{rule}" for rule in ACCESS_NFT],
        "\t}",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        *[f"\t\t{rule}" for rule in ACCESS_NFT],
        '\t\toifname "jump0" ct state established,related accept comment "jump0 masquerade"',
        "\t}",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        '\t\toifname "vlan50" ip saddr { 10.9.0.0/24 } masquerade comment "jump0 masquerade"',
        '\t\toifname "vlan50" ip6 saddr { fd09::/64 } masquerade comment "jump0 masquerade"',
        "\t}",
        "}",
    ]


ACCESS_NFT = [
    'iifname "jump0" ct direction reply accept',
    'iifname "jump0" ct state related accept',
    'iifname "jump0" ip saddr { 10.9.0.2/32 } ip daddr { 172.16.50.10/32 } '
    'tcp dport { 22, 8000-8100 } accept comment "jump0 rule 1"',
    'iifname "jump0" ip saddr { 10.9.0.3/32, 192.0.2.0/24 } ip daddr { 172.16.50.0/24 } '
    'accept comment "jump0 rule 2"',
    'iifname "jump0" ip saddr { 10.9.0.2/32 } meta l4proto icmp accept comment "jump0 rule 3"',
    'iifname "jump0" ip6 saddr { fd09::2/128 } meta l4proto ipv6-icmp accept '
    'comment "jump0 rule 3"',
    'iifname "jump0" drop comment "jump0 default drop"',
]


def test_no_table_without_an_interface_that_needs_one():
    plain = {"interfaces": {"wg0": {"address": "10.0.0.1/24"}}}
    assert (
        wgf_firewall.nft_table(pipeline.interfaces(plain, "m", firewall="nftables").values())
        is None
    )
    assert wgf_firewall.nft_table(jumpbox(enabled=False).values()) is None
    assert wgf_iptables.iptables_rules(jumpbox("iptables", absent=True).values(), 4) is None


def test_masquerade_leaves_the_conf_to_the_firewall_backend():
    """With a backend, NAT is the formula's table: the conf has no iptables lines, so a
    masquerade change never changes the [Interface] part (no restart)."""
    import wgf_conf

    assert "iptables" not in wgf_conf.render(jumpbox()["jump0"])
    assert "MASQUERADE" in wgf_conf.render(jumpbox("none")["jump0"])


def _scratch(script):
    return subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft: ./lab setup installs it")
def test_nft_loads_the_table_and_replaces_it_whole(tmp_path):
    """nft takes the rendered text; loading it twice replaces the table, not doubles it."""
    table = wgf_firewall.nft_table(jumpbox(access=ACCESS, open_port=True).values())
    script = tmp_path / "t.nft"
    script.write_text(wgf_firewall.nft_replace(table))
    listing = _scratch(f"nft -f {script} && nft -f {script} && nft list ruleset")
    assert listing.count("table inet wireguard") == 1
    assert listing.count('comment "jump0 rule 1"') == 2  # input and forward
    removal = tmp_path / "r.nft"
    removal.write_text(wgf_firewall.nft_replace(None))
    assert _scratch(f"nft -f {script} && nft -f {removal} && nft list ruleset").strip() == ""


@pytest.mark.parametrize("version", [4, 6])
def test_iptables_chains_load_replace_and_go(tmp_path, version):
    prefix = "iptables" if version == 4 else "ip6tables"
    rules = wgf_iptables.iptables_rules(
        jumpbox("iptables", access=ACCESS, open_port=["198.18.0.10", "fd18::10"]).values(), version
    )
    load = tmp_path / "load"
    load.write_text(wgf_iptables.iptables_restore(rules, set()))
    again = tmp_path / "again"
    jumps = {
        ("INPUT", "WIREGUARD-INPUT"),
        ("FORWARD", "WIREGUARD-FORWARD"),
        ("POSTROUTING", "WIREGUARD-POSTROUTING"),
    }
    again.write_text(wgf_iptables.iptables_restore(rules, jumps))
    saved = _scratch(
        f"{prefix}-restore --noflush {load} && {prefix}-restore --noflush {again} && {prefix}-save"
    )
    ours = wgf_iptables.iptables_ours(saved)
    assert wgf_iptables.iptables_jumps(ours) == jumps
    assert sum("rule 1" in line for line in ours) == (2 if version == 4 else 0)
    assert sum("rule 3" in line for line in ours) == 2
    assert len([line for line in ours if "-j MASQUERADE" in line]) == 1
    removal = tmp_path / "removal"
    chains = {"WIREGUARD-INPUT", "WIREGUARD-FORWARD", "WIREGUARD-POSTROUTING"}
    removal.write_text(wgf_iptables.iptables_removal(chains, jumps))
    saved = _scratch(
        f"{prefix}-restore --noflush {load} && {prefix}-restore --noflush "
        f"{removal} && {prefix}-save"
    )
    assert "WIREGUARD" not in saved


SAVED = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:WIREGUARD-INPUT - [0:0]
:KEEP-MINE - [0:0]
-A INPUT -j WIREGUARD-INPUT
-A INPUT -i eth0 -j WIREGUARD-INPUT
-A INPUT -p tcp -m comment --comment "WIREGUARD-ish" -j ACCEPT
-A WIREGUARD-INPUT -p udp -m udp --dport 51820 -m comment --comment "wg0 open_port" -j ACCEPT
-A WIREGUARD-INPUT -i wg0 -m comment --comment "wg0 default" -j DROP
-A KEEP-MINE -j ACCEPT
COMMIT
*mangle
:WIREGUARD-FORWARD - [0:0]
-A FORWARD -j WIREGUARD-FORWARD
COMMIT
"""


def test_the_recorded_chains_and_plain_jumps_are_the_formulas_only():
    """What an undo keeps: the formula's chains and its own kind of jump (``-I <builtin>
    1 -j <chain>``), in the tables IPTABLES_CHAINS names; a chain of that name in another
    table, or a jump with a match, is not the formula's."""
    chains, jumps = wgf_iptables.iptables_recorded(wgf_iptables.iptables_ours(SAVED))
    assert chains == {("filter", "WIREGUARD-INPUT")}
    assert jumps == {("filter", "INPUT", "WIREGUARD-INPUT")}
    assert wgf_iptables.iptables_recorded([]) == (set(), set())


def test_the_put_back_record_declares_every_chain_and_fills_the_recorded_ones():
    text = wgf_iptables.iptables_put_back(wgf_iptables.iptables_ours(SAVED))
    assert text == (
        "*filter\n"
        ":WIREGUARD-INPUT - [0:0]\n"
        ":WIREGUARD-FORWARD - [0:0]\n"
        ":WIREGUARD-OUTPUT - [0:0]\n"
        '-A WIREGUARD-INPUT -p udp -m udp --dport 51820 -m comment --comment "wg0 open_port" '
        "-j ACCEPT\n"
        '-A WIREGUARD-INPUT -i wg0 -m comment --comment "wg0 default" -j DROP\n'
        "COMMIT\n"
        "*nat\n"
        ":WIREGUARD-POSTROUTING - [0:0]\n"
        "COMMIT\n"
    )
    # nothing recorded: every chain declared (to be flushed and removed), none filled
    assert "-A " not in wgf_iptables.iptables_put_back([])


@pytest.mark.parametrize("version", [4, 6])
def test_the_put_back_record_loads_over_changed_chains(tmp_path, version):
    """Loaded over chains a change refilled, the record leaves exactly the recorded rules
    in them, however often it is loaded."""
    prefix = "iptables" if version == 4 else "ip6tables"
    box = jumpbox("iptables", access=ACCESS, open_port=["198.18.0.10", "fd18::10"]).values()
    before = tmp_path / "before"
    before.write_text(
        wgf_iptables.iptables_restore(wgf_iptables.iptables_rules(box, version), set())
    )
    recorded = wgf_iptables.iptables_ours(
        _scratch(f"{prefix}-restore --noflush {before} && {prefix}-save")
    )
    change = tmp_path / "change"
    changed = wgf_iptables.iptables_rules(jumpbox("iptables", open_port=True).values(), version)
    change.write_text(wgf_iptables.iptables_restore(changed, set()))
    back = tmp_path / "back"
    back.write_text(wgf_iptables.iptables_put_back(recorded))
    saved = _scratch(
        f"{prefix}-restore --noflush {before} && {prefix}-restore --noflush {change} && "
        f"{prefix}-restore --noflush {back} && {prefix}-restore --noflush {back} && "
        f"{prefix}-save"
    )
    chain_lines = [line for line in recorded if " -A WIREGUARD-" in line]
    assert (
        chain_lines
        and [line for line in wgf_iptables.iptables_ours(saved) if " -A WIREGUARD-" in line]
        == chain_lines
    )


def test_a_peer_not_yet_in_the_mine_or_absent_is_still_a_name():
    """A rule may name a peer whose key the mine has not published yet (left out of this
    run) or an absent one (no address): neither is a bad name."""
    pillar = {
        "interfaces": {
            "wg0": {
                "address": "10.0.0.1/24",
                "listen_port": 51820,
                "peers": {
                    "backup": {"minion": "backup-gw", "allowed_ips": ["10.0.0.3/32"]},
                    "old": {"public_key": KEY_A, "allowed_ips": ["10.0.0.4/32"], "absent": True},
                },
                "access": {"rules": [{"from": ["backup"]}, {"from": ["old"]}]},
            }
        }
    }
    got = pipeline.interfaces(pillar, "hub", lambda minions: {}, firewall="nftables")
    assert "backup" not in got["wg0"]["peers"]
    assert [r["sources"] for r in got["wg0"]["access"]["rules"]] == [["10.0.0.3/32"], []]


def test_access_rules_name_clients_by_their_addresses():
    iface = {
        "address": "10.8.0.1/24",
        "listen_port": 51820,
        "endpoint": "vpn.example.com",
        "clients": {"phone": {"address": "10.8.0.20/32"}},
        "access": {"default": "drop", "rules": [{"from": ["phone"], "to": ["192.168.50.10/32"]}]},
    }
    got = pipeline.interfaces({"interfaces": {"wg0": iface}}, "m", firewall="nftables")
    assert got["wg0"]["access"]["rules"][0]["sources"] == ["10.8.0.20/32"]
    iface["access"]["rules"][0]["from"] = ["tablet"]
    with pytest.raises(SaltInvocationError, match="'tablet' names no peer or client"):
        pipeline.interfaces({"interfaces": {"wg0": iface}}, "m", firewall="nftables")
