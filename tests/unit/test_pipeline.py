"""The one-way pillar pipeline (wgf_pipeline): what it asks of the minion, the one
value of facts it is fed, the minion-wide settings at the top of its answer, and the
interface options table (wgf_options) that the schema, the renderer and the live
planner all read."""

import collections
import dataclasses
import datetime

import pytest
from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_client_record
import wgf_clients
import wgf_conf
import wgf_iproute
import wgf_keys
import wgf_live
import wgf_options
import wgf_pipeline
from tests.support import pipeline

KEY_A = wgf_keys.pubkey(wgf_keys.genkey())
KEY_B = wgf_keys.pubkey(wgf_keys.genkey())


def wg0(**extra):
    return {"interfaces": {"wg0": {"address": "10.0.0.1/24", "listen_port": 51820, **extra}}}


def peer(allowed, **extra):
    return {"public_key": KEY_A, "allowed_ips": allowed, **extra}


# ------------------------------------------------------------------ settings


def test_the_firewall_backend_is_one_setting_at_the_top():
    got = pipeline.run(
        {"interfaces": {"wg0": {"address": "10.0.0.1/24"}, "wg1": {"address": "10.1.0.1/24"}}},
        firewall="iptables",
    )
    assert got["settings"]["firewall"] == "iptables"
    assert set(got["interfaces"]) == {"wg0", "wg1"}
    # kept on each interface too, for whoever read it there
    assert {i["firewall"] for i in got["interfaces"].values()} == {"iptables"}
    assert pipeline.run({}, firewall="nftables")["settings"] == {
        "firewall": "nftables",
        "needs": {"resolvconf": False, "firewall_tools": False},
        "metrics": None,
    }


@pytest.mark.parametrize(
    ("pillar", "resolvconf", "firewall_tools"),
    [
        (wg0(), False, False),
        (wg0(dns=["10.0.0.53"]), True, False),
        (wg0(dns=["10.0.0.53"], absent=True), False, False),
        (wg0(masquerade=["eth0"]), False, True),
        (wg0(open_port=True), False, True),
        (wg0(access={"default": "drop", "rules": []}), False, True),
        (wg0(peers={"hub": peer(["0.0.0.0/0"])}), False, True),
        (wg0(peers={"hub": peer(["::/0"])}), False, True),
        (wg0(peers={"hub": peer(["0.0.0.0/0"])}, table="off"), False, False),
        (wg0(peers={"hub": peer(["0.0.0.0/0"], absent=True)}), False, False),
        (wg0(peers={"hub": peer(["10.0.0.0/8"])}), False, False),
    ],
)
def test_the_settings_say_what_the_packages_must_bring(pillar, resolvconf, firewall_tools):
    """What package/install.sls maps to packages, decided once in Python."""
    needs = pipeline.run(pillar, firewall="nftables")["settings"]["needs"]
    assert needs == {"resolvconf": resolvconf, "firewall_tools": firewall_tools}


def test_a_default_route_need_is_wg_quicks_own_rule():
    for table, allowed in [("auto", ["0.0.0.0/0"]), ("auto", ["10.0.0.0/8"]), ("7", ["::/0"])]:
        iface = pipeline.interfaces(wg0(table=table, peers={"hub": peer(allowed)}))["wg0"]
        assert wgf_pipeline.settings({"wg0": iface}, "none")["needs"]["firewall_tools"] is (
            wgf_live.default_route_mode(table, allowed)
        )


# --------------------------------------------------------------------- facts


def network(**nodes):
    return {"networks": {"corp": {"interface": "wg1", "nodes": nodes}}}


MESH = network(
    a={"address": "10.5.0.1/24", "endpoint": "a.example.com"},
    b={"address": "10.5.0.2/24"},
    c={"address": "10.5.0.3/24"},
)


def test_needs_names_the_mine_entries_key_files_and_records_the_pillar_wants():
    pillar = {
        **MESH,
        "interfaces": {
            "wg0": {"address": "10.0.0.1/24", "private_key": wgf_keys.genkey()},
            "wg2": {"absent": True},
        },
    }
    compiled = wgf_pipeline.compile_pillar(pillar, "a")
    assert wgf_pipeline.needs(compiled) == {
        "minions": ["b", "c"],
        "key_files": ["wg1", "wg2"],
        "client_records": ["wg1", "wg0"],
    }
    assert wgf_pipeline.compile_pillar(MESH, "elsewhere")["interfaces"] == {}


def test_a_bad_pillar_asks_the_mine_nothing():
    bad = {**MESH, "interfaces": {"wg0": {"address": "not an address"}}}
    compiled = wgf_pipeline.compile_pillar(bad, "a")
    assert compiled["errors"]
    assert wgf_pipeline.needs(compiled)["minions"] == []
    with pytest.raises(SaltInvocationError, match=r"interface 'wg0', key 'address'"):
        wgf_pipeline.resolve(compiled, wgf_pipeline.Facts("a", published_keys={}))


def test_one_value_of_facts_resolves_peers_tables_firewall_and_clients():
    facts = wgf_pipeline.Facts(
        "a",
        published_keys={"b": {"wg1": KEY_A}, "c": {"wg1": "not-a-key"}},
        known_tables={"main", "vpn"},
        firewall="nftables",
        client_records={"wg1": None},
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.firewall = "none"
    pillar = {**MESH, "interfaces": {"wg0": {"address": "10.0.0.1/24", "table": "vpn"}}}
    got = wgf_pipeline.run(pillar, facts)
    wg1 = got["interfaces"]["wg1"]
    assert wg1["peers"]["b"]["public_key"] == KEY_A
    assert "c" not in wg1["peers"]
    assert any("refused the mine value minion 'c'" in w for w in wg1["warnings"])
    assert got["interfaces"]["wg0"]["table"] == "vpn"
    with pytest.raises(SaltInvocationError, match=r"table 'vpn' is not defined on this minion"):
        wgf_pipeline.run(pillar, dataclasses.replace(facts, known_tables={"main"}))


def test_compiling_is_pure_and_resolving_leaves_the_compiled_pillar_alone():
    compiled = wgf_pipeline.compile_pillar(MESH, "a")
    before = repr(compiled)
    wgf_pipeline.resolve(compiled, wgf_pipeline.Facts("a", published_keys={"b": {"wg1": KEY_A}}))
    assert repr(compiled) == before
    assert compiled["interfaces"]["wg1"]["peers"]["b"]["public_key"] is None


def test_the_own_key_is_pillars_else_the_key_files():
    mine = wg0(peers={"me": {"public_key": KEY_B, "allowed_ips": ["10.0.0.2/32"]}})
    assert pipeline.interfaces(mine, own_public_keys={"wg0": KEY_A})["wg0"]["peers"]
    with pytest.raises(SaltInvocationError, match="own public key"):
        pipeline.interfaces(mine, own_public_keys={"wg0": KEY_B})


# ---------------------------------------------------------- interface options


#: An option wg-quick does not have: what adding one takes (a row and this test).
TXQUEUELEN = wgf_options.Option(
    "txqueuelen",
    None,
    lambda v, w: None if v is None else wgf_addr.integer(v, w, 1, 2**32 - 1, "txqueuelen"),
    "TxQueueLen",
    live="link",
    set_word="txqueuelen",
    field="txqlen",
)
GSO = wgf_options.Option("gso", None, lambda v, w: v, "GSO", live="restart")


@pytest.fixture
def new_options(monkeypatch):
    monkeypatch.setattr(wgf_options, "OPTIONS", (*wgf_options.OPTIONS, TXQUEUELEN, GSO))


def link(txqlen):
    return wgf_iproute.link(
        [{"mtu": 1420, "txqlen": txqlen, "addr_info": [{"local": "10.0.0.1", "prefixlen": 24}]}]
    )


def live_state():
    return {"public_key": None, "listen_port": 51820, "fwmark": None}


def test_a_new_option_is_one_row_checked_rendered_and_planned(new_options):
    iface = pipeline.interfaces(wg0(txqueuelen=500))["wg0"]
    assert iface["txqueuelen"] == 500
    text = wgf_conf.render(iface)
    assert "\nMTU" not in text
    assert "ListenPort = 51820\nTxQueueLen = 500\n" in text
    want = wgf_live.wanted(iface, None, [], False, 1420)
    have = wgf_live.running(live_state(), link(1000), [], [], None, False)
    steps, changes = wgf_live.plan(want, have, "wg0")
    assert steps == [
        {
            "name": "set txqueuelen 500",
            "do": [["ip", "link", "set", "txqueuelen", "500", "dev", "wg0"]],
            "undo": [["ip", "link", "set", "txqueuelen", "1000", "dev", "wg0"]],
        }
    ]
    assert changes == {"txqueuelen": {"old": 1000, "new": 500}}
    have = wgf_live.running(live_state(), link(500), [], [], None, False)
    assert wgf_live.plan(want, have, "wg0") == ([], {})


def test_a_new_option_left_out_changes_nothing(new_options):
    iface = pipeline.interfaces(wg0())["wg0"]
    assert iface["txqueuelen"] is None
    assert "TxQueueLen" not in wgf_conf.render(iface)
    want = wgf_live.wanted(iface, None, [], False, 1420)
    have = wgf_live.running(live_state(), link(1000), [], [], None, False)
    assert wgf_live.plan(want, have, "wg0") == ([], {})


def test_a_new_options_bad_value_is_refused_naming_it(new_options):
    with pytest.raises(SaltInvocationError, match=r"interface 'wg0', key 'txqueuelen'"):
        pipeline.interfaces(wg0(txqueuelen="long"))


def test_without_its_row_the_option_is_an_unknown_key():
    with pytest.raises(SaltInvocationError, match=r"interface 'wg0': unknown key 'txqueuelen'"):
        pipeline.interfaces(wg0(txqueuelen=500))


def test_an_option_only_a_restart_applies_is_a_restart_reason(new_options):
    old = wgf_conf.render(pipeline.interfaces(wg0(gso="on"))["wg0"])
    new = wgf_conf.render(pipeline.interfaces(wg0(gso="off"))["wg0"])
    assert "GSO = off" in new
    assert wgf_live.restart_reasons(old, new) == [
        "its GSO changed (wg-quick applies it only at start)"
    ]
    assert wgf_live.restart_reasons(new, new) == []


def test_the_rows_keep_the_rendered_order_and_the_interface_keys():
    assert [row.conf for row in wgf_options.OPTIONS] == [
        "Address",
        "ListenPort",
        "DNS",
        "MTU",
        "Table",
        "FwMark",
    ]
    iface = pipeline.interfaces(
        wg0(dns=["10.0.0.53", "corp"], mtu=1380, table="off", fwmark=51820)
    )["wg0"]
    assert wgf_options.conf_lines(iface) == [
        "Address = 10.0.0.1/24",
        "ListenPort = 51820",
        "DNS = 10.0.0.53, corp",
        "MTU = 1380",
        "Table = off",
        "FwMark = 0xca6c",
    ]


def test_a_copy_of_pillar_data_is_plain_and_shares_nothing():
    """Salt's YAML renderer makes every pillar mapping an OrderedDict; the copy is made
    of dicts and lists (the fast copy's marshal refuses OrderedDicts) and changing it
    changes nothing of the original."""
    original = collections.OrderedDict(
        interfaces=collections.OrderedDict(wg0={"peers": [collections.OrderedDict(a=[1])]})
    )
    copy = wgf_pipeline.copied(original)
    assert copy == original
    assert type(copy) is dict and type(copy["interfaces"]) is dict
    assert type(copy["interfaces"]["wg0"]["peers"][0]) is dict
    copy["interfaces"]["wg0"]["peers"][0]["a"].append(2)
    assert original["interfaces"]["wg0"]["peers"][0]["a"] == [1]
    looped = {"a": []}
    looped["a"].append(looped)  # YAML anchors can make a value hold itself
    assert wgf_pipeline.copied(looped)["a"][0]["a"][0] is not looped


def _hub(count, table=None, extra=()):
    """A hub of ``count`` peers on 10.40.0.0/16 (``extra``: more AllowedIPs for the last)."""
    peers = {
        f"p{i}": {
            "public_key": wgf_keys.pubkey(wgf_keys.genkey()),
            "allowed_ips": [f"10.40.{i // 250}.{i % 250 + 2}/32"],
        }
        for i in range(count)
    }
    peers[f"p{count - 1}"]["allowed_ips"] += list(extra)
    iface = {"address": "10.40.0.1/16", "peers": peers, **({"table": table} if table else {})}
    return pipeline.interfaces({"interfaces": {"wg0": iface}})["wg0"]


@pytest.mark.parametrize(
    ("count", "table", "extra", "off"),
    [
        (wgf_conf.ON_LINK_PEERS + 1, None, (), True),
        (wgf_conf.ON_LINK_PEERS, None, (), False),  # few peers: the file as ever
        (wgf_conf.ON_LINK_PEERS + 1, None, ("10.41.0.0/24",), False),  # wg-quick routes it
        (wgf_conf.ON_LINK_PEERS + 1, None, ("0.0.0.0/0",), False),  # its default-route setup
        (wgf_conf.ON_LINK_PEERS + 1, None, ("::/0",), False),
        (wgf_conf.ON_LINK_PEERS + 1, None, ("10.40.7.0/24",), True),  # inside 10.40.0.0/16
        (wgf_conf.ON_LINK_PEERS + 1, "1234", (), False),  # the table pillar names
    ],
)
def test_a_big_hub_whose_allowed_ips_are_on_link_starts_without_wg_quicks_route_loop(
    count, table, extra, off
):
    """wg-quick asks `ip route show ... match` once per AllowedIP at start (35 s for
    10,000 clients) even where it adds no route: past 200 peers, all on-link, the file
    says Table = off, and a restart builds the same interface (no route either way)."""
    iface = _hub(count, table, extra)
    text = wgf_conf.render(iface)
    assert ("\nTable = off\n" in text) is off
    assert (wgf_conf.ON_LINK_NOTE in text) is off
    if off:  # wg-quick with table auto would have added none either
        allowed = [cidr for peer in iface["peers"].values() for cidr in peer["allowed_ips"]]
        assert wgf_live.derived_routes("auto", allowed, iface["address"]) == {}


def test_the_formulas_own_table_off_is_no_reason_to_restart():
    """Crossing 200 peers, or one AllowedIP off-link, adds or drops the formula's Table =
    off line: live, as wg-quick would add the same routes (none, or the new one's, which
    the interface state adds). A Table = off of pillar's own is still a restart."""
    small, big = wgf_conf.render(_hub(3)), wgf_conf.render(_hub(wgf_conf.ON_LINK_PEERS + 1))
    routed = wgf_conf.render(_hub(wgf_conf.ON_LINK_PEERS + 1, extra=("10.41.0.0/24",)))
    assert wgf_live.restart_reasons(small, big) == []
    assert wgf_live.restart_reasons(big, routed) == []
    assert wgf_live.restart_reasons(routed, big) == []
    pillar_off = wgf_conf.render(_hub(wgf_conf.ON_LINK_PEERS + 1, table="off"))
    assert wgf_live.restart_reasons(big, pillar_off) == ["its table changed from auto to off"]


# ------------------------------------------------------------------ the run's resolution

#: The clients pillar of a hub, step by step: new clients (one bringing its own key,
#: one disabled, one expired), then two added, one revoked and one marked absent, then
#: a client's key made again and the disabled one enabled.
_KEPT = {"c": {"public_key": KEY_B}, "e": {"expires": "2020-01-01T00:00:00Z"}}
CLIENT_STEPS = [
    {"a": {}, "b": {"preshared_key": True}, "d": {"enabled": False}, **_KEPT},
    {"a": {"absent": True}, "d": {"enabled": False}, "f": {}, "g": {}, **_KEPT},
    {"d": {}, "f": {}, "g": {}, **_KEPT},
]


def _hub_pillar(clients, pool=("10.9.0.0/24",)):
    iface = {"address": ["10.9.0.1/24"], "listen_port": 51820, "pool": list(pool)}
    return {"interfaces": {"wg0": {**iface, "endpoint": "hub.example.com", "clients": clients}}}


def _resolve(pillar, record_text):
    facts = wgf_pipeline.Facts(
        "hub",
        own_public_keys={"wg0": KEY_A},
        client_records={"wg0": record_text},
        firewall="nftables",
    )
    return wgf_pipeline.resolve(wgf_pipeline.compile_pillar(pillar, "hub"), facts)


def _write_record(declared, remake=()):
    """What the clients state writes: a new key for each present client the record has
    none for (or named in ``remake``), none for a client bringing its own."""
    made = {
        name: wgf_keys.pubkey(wgf_keys.genkey())
        for name, client in declared["clients"].items()
        if not client["absent"]
        and not client["byo"]
        and (not client["public_key"] or name in remake)
    }
    record = wgf_client_record.record_of(declared, made)
    return made, wgf_client_record.dump_record(record)


@pytest.mark.parametrize("pool", [("10.9.0.0/24",), ("10.9.0.0/24", "fd09::/64")])
def test_the_resolution_carried_over_a_clients_write_is_what_resolving_again_finds(pool):
    context, record, inputs = {}, None, ("inputs",)
    remake = [(), (), ("f",)]
    for step, clients in enumerate(CLIENT_STEPS):
        pillar = _hub_pillar(clients, pool)
        now = wgf_clients.utc_now()
        result = wgf_pipeline.keep(context, inputs, ("before", step), _resolve(pillar, record), now)
        declared = dict(result["interfaces"]["wg0"])
        made, record = _write_record(declared, remake[step])
        wgf_pipeline.carry_over(context, "wg0", declared["clients"], made, ("after", step))
        carried = wgf_pipeline.cached(context, inputs, ("after", step), now)
        assert carried == _resolve(pillar, record), step
        # the resolution the states had read is as it was: the keys are in a copy
        assert all(declared["clients"][name]["public_key"] != key for name, key in made.items())
    peers = carried["interfaces"]["wg0"]["peers"]
    assert sorted(peers) == ["c", "d", "f", "g"]  # e expired: no live peer


def test_nothing_is_carried_over_another_resolution_or_when_pillar_has_no_clients_left():
    context, inputs, now = {}, ("inputs",), wgf_clients.utc_now()
    result = wgf_pipeline.keep(
        context, inputs, "before", _resolve(_hub_pillar({"a": {}}), None), now
    )
    made, record = _write_record(result["interfaces"]["wg0"])
    wgf_pipeline.carry_over(context, "wg0", {"a": {}}, made, "after")  # not what it read
    assert wgf_pipeline.cached(context, inputs, "after", now) is None
    assert wgf_pipeline.cached(context, inputs, "before", now) is result
    wgf_pipeline.carry_over(context, "wg1", result["interfaces"]["wg0"]["clients"], made, "after")
    assert wgf_pipeline.cached(context, inputs, "after", now) is None
    # every client gone from pillar: the record's clients said "managed" before the write
    pillar = _hub_pillar({})
    result = wgf_pipeline.keep(context, inputs, "before", _resolve(pillar, record), now)
    assert result["interfaces"]["wg0"]["clients_managed"]
    wgf_pipeline.carry_over(context, "wg0", result["interfaces"]["wg0"]["clients"], {}, "after")
    assert wgf_pipeline.cached(context, inputs, "after", now) is None


def test_a_resolution_holds_until_a_client_expires():
    context, inputs = {}, ("inputs",)
    pillar = _hub_pillar({"a": {"expires": "2999-01-01T00:00:00Z"}})
    now = wgf_clients.utc_now()
    result = wgf_pipeline.keep(context, inputs, "files", _resolve(pillar, None), now)
    assert wgf_pipeline.cached(context, inputs, "files", now) is result
    assert wgf_pipeline.cached(context, inputs, "other files", now) is None
    later = datetime.datetime(2999, 1, 1, tzinfo=datetime.timezone.utc)
    assert wgf_pipeline.cached(context, inputs, "files", later) is None


@pytest.mark.parametrize("peers_first", [False, True])
def test_past_the_first_peer_only_a_default_route_is_a_restart_reason(peers_first):
    """A hub's peer sections are read for a /0 alone (issue 24); a file whose peers come
    before an [Interface] section (wg-quick takes it) is read line by line, as ever."""
    head = "[Interface]\nAddress = 10.0.0.1/24\nPostUp = logger up\n"
    peers = "".join(
        f"# p{i}\n[Peer]\nPublicKey = {'A' * 43}=\nAllowedIPs = 10.0.0.{i}/32\n"
        for i in range(2, 6)
    )

    def conf(hook="logger up", allowed="10.0.0.5/32", extra=""):
        text = head.replace("logger up", hook) + extra
        text = text.replace("[Interface]", "") if peers_first else text
        body = peers.replace("10.0.0.5/32", allowed)
        return body + "[Interface]" + text if peers_first else text + body

    assert wgf_live.restart_reasons(conf(), conf()) == []
    for default in ("0.0.0.0/0 # all", "::/0", "10.9.0.0/16, 0.0.0.0/0"):
        assert wgf_live.restart_reasons(conf(), conf(allowed=default)) == [
            "its default route (a /0 in AllowedIPs with table auto) changed: "
            "wg-quick sets up fwmark, policy rules and src_valid_mark for it"
        ], default
    assert wgf_live.restart_reasons(conf(), conf(hook="logger other")) == [
        "its PreUp/PostUp/PreDown/PostDown hooks changed (hooks cannot be undone in place)"
    ]
    assert wgf_live.restart_reasons(conf(), conf(extra="Table = 1234\n")) == [
        "its table changed from auto to 1234"
    ]
