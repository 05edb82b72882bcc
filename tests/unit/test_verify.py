"""Reachability assertions (issue 22): pillar ``wireguard:expect`` refused naming the
assertion and the key, and the static decision on hand-built facts of the jumpbox,
hub-with-LAN and mesh shapes, each failure named with its first failing hop."""

import copy
import itertools
import re

import pytest
from salt.exceptions import SaltInvocationError

import wgf_firewall
import wgf_pipeline
import wgf_verify
import wgf_verify_report
from tests.support.minion import master_opts
from tests.unit.conftest import runner_with_stand_ins

KEYS = {name: f"{name[:1].upper()}{'A' * 42}=" for name in ("jumpbox", "hub", "a", "b", "c")}
KEYS.update({f"m{n}": f"M{n:02d}{'B' * 40}=" for n in range(30)})
LAPTOP_KEY = "L" + "C" * 42 + "="


def peer(allowed, key=None, minion=None, client=False):
    return {
        "public_key": key,
        "allowed_ips": list(allowed),
        "pillar_allowed_ips": list(allowed),
        "live": True,
        "minion": minion,
        "minion_interface": None,
        "client": client,
    }


def iface(address, peers, key, access=None, masquerade=()):
    return {
        "address": list(address),
        "listen_port": 51820,
        "public_key": key,
        "up": True,
        "masquerade": list(masquerade),
        "access": access,
        "firewall": "nftables",
        "peers": peers,
    }


def node(interfaces, lans=(), forwarding=True, expect=()):
    """A minion's facts: wg-quick's routes (one per AllowedIP, table auto) and the
    connected routes of its addresses."""
    routes, addresses = [], ["127.0.0.1/8"]
    for name, i in interfaces.items():
        addresses += i["address"]
        for address in i["address"]:
            net = wgf_verify.ipaddress.ip_interface(address).network
            if net.num_addresses > 1:
                routes.append({"dst": str(net), "dev": name, "table": "main"})
        for p in i["peers"].values():
            routes += [{"dst": c, "dev": name, "table": "main"} for c in p["allowed_ips"]]
    for dev, address in lans:
        addresses.append(address)
        net = wgf_verify.ipaddress.ip_interface(address).network
        routes.append({"dst": str(net), "dev": dev, "table": "main"})
    routes.append({"dst": "default", "dev": "eth0", "table": "main"})
    return {
        "interfaces": interfaces,
        "routes": routes,
        "addresses": addresses,
        "forwarding": {"ipv4": forwarding, "ipv6": forwarding},
        "expect": list(expect),
    }


def access(default, *rules):
    """``access`` as the pipeline leaves it: checked, ``from`` names resolved."""
    checked = wgf_firewall.access({"default": default, "rules": list(rules)}, "access")
    names = {"laptop": ["10.0.0.2/32"]}
    for rule in checked["rules"]:
        rule["sources"] = [c for f in rule["from"] for c in names.get(f, [f])]
    return checked


def jumpbox(masquerade=("eth1",), forwarding=True, expect=()):
    """A laptop (no minion) reaches the LAN 192.168.61.0/24 behind the jumpbox, which
    lets it to 192.168.61.10 tcp/22 and to ICMP only."""
    rules = access(
        "drop",
        {"from": "laptop", "to": "192.168.61.10", "proto": "tcp", "ports": 22},
        {"from": "laptop", "proto": "icmp"},
    )
    wg0 = iface(
        ["10.0.0.1/24"],
        {"laptop": peer(["10.0.0.2/32"], LAPTOP_KEY)},
        KEYS["jumpbox"],
        access=rules,
        masquerade=masquerade,
    )
    return {
        "jumpbox": node(
            {"wg0": wg0}, lans=[("eth1", "192.168.61.1/24")], forwarding=forwarding, expect=expect
        )
    }


def hub_with_lan(b_allowed=("10.1.0.0/24",), hub_forwarding=True):
    """hub 10.1.0.1/24 with the spokes a (10.1.0.2) and b (10.1.0.3, its LAN
    192.168.62.0/24 routed behind it); each spoke's peer ``hub`` holds ``b_allowed``
    (b's) or the whole tunnel (a's)."""
    hub = iface(
        ["10.1.0.1/24"],
        {
            "a": peer(["10.1.0.2/32"], KEYS["a"]),
            "b": peer(["10.1.0.3/32", "192.168.62.0/24"], KEYS["b"]),
        },
        KEYS["hub"],
    )
    a = iface(
        ["10.1.0.2/24"], {"hub": peer(["10.1.0.0/24", "192.168.62.0/24"], KEYS["hub"])}, KEYS["a"]
    )
    b = iface(["10.9.9.3/32"], {"hub": peer(list(b_allowed), KEYS["hub"])}, KEYS["b"])
    b["address"] = ["10.1.0.3/32"]
    return {
        "hub": node({"wg0": hub}, forwarding=hub_forwarding),
        "a": node({"wg0": a}, forwarding=False),
        "b": node({"wg0": b}, lans=[("eth1", "192.168.62.1/24")], forwarding=True),
    }


def masqueraded(facts, minion, dev="eth1"):
    facts[minion]["interfaces"]["wg0"]["masquerade"] = [dev]
    return facts


def decide(facts, **assertion):
    fleet = wgf_verify.Fleet(facts)
    item = wgf_verify.expect([assertion])[0]
    fleet.check_names([{**item, "declared_by": "test"}])
    return wgf_verify.decide(fleet, item)


# ------------------------------------------------------------------ the jumpbox


def test_the_jumpbox_lets_the_laptop_to_the_host_its_rule_names():
    got = decide(jumpbox(), **{"from": "laptop", "to": "192.168.61.10", "proto": "tcp", "port": 22})
    assert got["static"] == "allow"
    assert got["path"] == ["laptop", "jumpbox", "192.168.61.0/24"]
    assert "masquerade" in got["reason"]
    assert got["sender"] is None  # no minion: static only


def test_an_access_rule_that_blocks_names_the_jumpbox_and_the_packet():
    got = decide(
        jumpbox(), **{"from": "laptop", "to": "192.168.61.20", "proto": "tcp", "port": 8080}
    )
    assert got["static"] == "block"
    assert got["reason"] == (
        "jumpbox: access default drop, no rule matches laptop->192.168.61.20 tcp/8080"
    )
    assert got["path"] == ["laptop", "jumpbox"]


def test_the_icmp_rule_lets_ping_through_to_any_lan_host():
    got = decide(jumpbox(), **{"from": "laptop", "to": "192.168.61.20"})
    assert got["static"] == "allow"


def test_masquerade_missing_is_named_at_the_jumpbox():
    got = decide(jumpbox(masquerade=()), **{"from": "laptop", "to": "192.168.61.20"})
    assert got["static"] == "block"
    assert got["reason"].startswith("jumpbox: no masquerade of wg0 on eth1")
    assert "masquerade missing" in got["reason"]


def test_forwarding_off_is_named_at_the_jumpbox():
    got = decide(jumpbox(forwarding=False), **{"from": "laptop", "to": "192.168.61.20"})
    assert (got["static"], got["reason"]) == ("block", "jumpbox: IPv4 forwarding off")


def test_the_jumpbox_itself_is_reached_by_the_rule_for_icmp_but_not_tcp():
    assert decide(jumpbox(), **{"from": "laptop", "to": "jumpbox"})["static"] == "allow"
    got = decide(jumpbox(), **{"from": "laptop", "to": "10.0.0.1", "proto": "tcp", "port": 80})
    assert got["reason"] == "jumpbox: access default drop, no rule matches laptop->10.0.0.1 tcp/80"


# ------------------------------------------------------------------ hub with a LAN


def test_spoke_to_spoke_through_the_hub():
    got = decide(hub_with_lan(), **{"from": "a", "to": "b"})
    assert (got["static"], got["path"]) == ("allow", ["a", "hub", "b"])
    assert got["source"] == "10.1.0.2" and got["sender"] == "a"


def test_a_missing_allowed_ip_on_the_way_back_is_named_at_the_spoke():
    got = decide(hub_with_lan(b_allowed=["10.1.0.1/32"]), **{"from": "a", "to": "b"})
    assert got["static"] == "block"
    assert got["reason"] == "b: AllowedIPs of hub lack 10.1.0.0/24 (no return path)"


def test_the_way_there_needs_the_allowed_ips_too():
    facts = hub_with_lan()
    facts["hub"]["interfaces"]["wg0"]["peers"]["a"]["allowed_ips"] = ["10.1.0.9/32"]
    got = decide(facts, **{"from": "a", "to": "b"})
    assert got["reason"] == "hub: AllowedIPs of a lack 10.1.0.0/24 (no return path)"
    assert got["path"] == ["a", "hub"]


def test_the_hub_without_forwarding_drops_it():
    got = decide(hub_with_lan(hub_forwarding=False), **{"from": "a", "to": "b"})
    assert (got["static"], got["reason"]) == ("block", "hub: IPv4 forwarding off")


def test_the_lan_behind_a_spoke_is_reached_through_its_masquerade_only():
    to_lan = {"from": "a", "to": "192.168.62.10", "proto": "udp", "port": 53}
    got = decide(hub_with_lan(), **to_lan)
    assert got["static"] == "block" and "masquerade missing" in got["reason"]
    assert got["reason"].startswith("b: no masquerade of wg0 on eth1")
    got = decide(masqueraded(hub_with_lan(), "b"), **to_lan)
    assert (got["static"], got["path"]) == ("allow", ["a", "hub", "b", "192.168.62.0/24"])


def test_a_destination_no_peer_routes_is_blocked_at_the_sender():
    got = decide(hub_with_lan(), **{"from": "a", "to": "10.77.0.1"})
    assert got["reason"] == "a: 10.77.0.1 is not routed into a tunnel (via eth0)"


def test_a_down_interface_has_no_routes():
    facts = hub_with_lan()
    facts["hub"]["routes"] = [r for r in facts["hub"]["routes"] if r["dev"] != "wg0"]
    got = decide(facts, **{"from": "a", "to": "b"})
    assert got["static"] == "block" and got["reason"].startswith("hub: ")


# ------------------------------------------------------------------ a mesh


def mesh(count):
    names = [f"m{n}" for n in range(count)]
    facts = {}
    for n, name in enumerate(names):
        peers = {
            other: peer([f"10.2.{m // 250}.{m % 250 + 1}/32"], KEYS[other])
            for m, other in enumerate(names)
            if other != name
        }
        facts[name] = node(
            {"wg0": iface([f"10.2.{n // 250}.{n % 250 + 1}/32"], peers, KEYS[name])},
            forwarding=False,
        )
    return facts


def test_every_pair_of_a_mesh_is_one_hop():
    facts = mesh(4)
    for a, b in itertools.permutations(facts, 2):
        got = decide(facts, **{"from": a, "to": b})
        assert (got["static"], got["path"]) == ("allow", [a, b]), got


def test_a_mesh_node_that_lost_a_peer_blocks_the_reply():
    facts = mesh(3)
    del facts["m1"]["interfaces"]["wg0"]["peers"]["m0"]
    got = decide(facts, **{"from": "m0", "to": "m1"})
    assert got["static"] == "block"
    assert got["reason"] == "m1: has no peer for m0 (wg0)"


# ------------------------------------------------------------------ the verdicts


def test_static_allow_and_live_block_is_a_finding_of_its_own():
    static = decide(hub_with_lan(), **{"from": "a", "to": "b"})
    assertion = wgf_verify.expect([{"from": "a", "to": "b"}])[0]
    row = wgf_verify.verdict(assertion, static, "block")
    assert row["pass"] is False
    assert row["static"] == "allow" and row["live"] == "block"
    assert "outside the formula's model" in row["reason"]
    assert set(row) == {
        "from", "to", "proto", "port", "allow", "static", "live", "pass", "path", "reason"
    }  # fmt: skip
    assert wgf_verify.verdict(assertion, static, "allow")["pass"] is True


def test_an_assertion_that_must_be_blocked_passes_when_it_is():
    blocked = decide(
        jumpbox(), **{"from": "laptop", "to": "192.168.61.20", "proto": "tcp", "port": 80}
    )
    assertion = wgf_verify.expect(
        [{"from": "laptop", "to": "192.168.61.20", "proto": "tcp", "port": 80, "allow": False}]
    )[0]
    row = wgf_verify.verdict(assertion, blocked, None)
    assert row["pass"] is True and row["live"] is None
    assert "static check only: laptop is not a Salt minion" in row["reason"]
    row = wgf_verify.verdict({**assertion, "allow": True}, blocked, None)
    assert row["pass"] is False
    assert row["reason"].startswith("jumpbox: access default drop, no rule matches laptop->")


def test_the_fleet_run_plans_probes_for_minions_only_and_counts():
    facts = jumpbox(expect=[{"from": "laptop", "to": "192.168.61.10", "proto": "tcp", "port": 22}])
    facts.update(hub_with_lan())
    facts["a"]["expect"] = [{"from": "a", "to": "b"}, {"from": "a", "to": "b", "allow": False}]
    assertions, decisions = wgf_verify_report.static(facts)
    planned = wgf_verify_report.probes(assertions, decisions)
    assert list(planned) == ["a"]
    assert [p["to"] for p in planned["a"]] == ["10.1.0.3", "10.1.0.3"]
    live, notes = wgf_verify_report.live_of(
        {"a": {"results": [{"id": p["id"], "live": "allow"} for p in planned["a"]]}}, planned
    )
    verified = wgf_verify_report.result(assertions, decisions, live, notes)
    assert (verified["passed"], verified["failed"]) == (2, 1)
    table = wgf_verify_report.text_table(verified)
    assert re.search(
        r"^a -> b icmp \(must block\) +allow +allow +FAIL +reachable, but must be blocked",
        table,
        re.M,
    )
    assert table.splitlines()[0] == "WireGuard verify: 2 passed, 1 failed"


def test_a_minion_that_does_not_answer_the_probe_leaves_live_empty_and_says_so():
    facts = hub_with_lan()
    facts["a"]["expect"] = [{"from": "a", "to": "b"}]
    assertions, decisions = wgf_verify_report.static(facts)
    planned = wgf_verify_report.probes(assertions, decisions)
    live, notes = wgf_verify_report.live_of({}, planned)
    row = wgf_verify_report.result(assertions, decisions, live, notes)["assertions"][0]
    assert row["live"] is None and row["pass"] is True
    assert "live check: a did not answer" in row["reason"]


def test_the_probes_a_minion_runs_are_its_own_and_checked():
    probe = {"id": 0, "to": "10.1.0.3", "proto": "tcp", "port": 22, "source": "10.1.0.2"}
    assert wgf_verify_report.checked_probes([probe], ["10.1.0.2"])[0]["port"] == 22
    with pytest.raises(SaltInvocationError, match="no tunnel address of this minion"):
        wgf_verify_report.checked_probes([probe], ["10.1.0.9"])
    with pytest.raises(SaltInvocationError, match="needs a port"):
        wgf_verify_report.checked_probes([{**probe, "port": None}], ["10.1.0.2"])
    got = wgf_verify_report.probe_results(
        [{**probe, "allow": True, "static": "allow"}, {**probe, "allow": True, "static": "allow"}],
        [True, False],
        now=100,
    )
    assert got["last"] == {"time": 100, "passed": 1, "failed": 1}


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"from": "laptop", "to": "10.0.0.1", "port": 22},
            "wireguard:expect, assertion 1 (laptop->10.0.0.1), key 'port': a port needs "
            "proto tcp or udp, not icmp",
        ),
        (
            {"from": "laptop", "to": "10.0.0.1", "proto": "sctp", "port": 1},
            "wireguard:expect, assertion 1 (laptop->10.0.0.1), key 'proto': 'sctp' is not one "
            "of icmp, tcp, udp",
        ),
        (
            {"from": "laptop", "to": "10.0.0.300"},
            "wireguard:expect, assertion 1 (laptop->10.0.0.300), key 'to': '10.0.0.300' is not "
            "an address",
        ),
        (
            {"from": "laptop", "to": "10.0.0.0/24"},
            "key 'to': '10.0.0.0/24' is not an address (no prefix)",
        ),
        (
            {"from": "laptop", "to": "db", "proto": "tcp"},
            "assertion 1 (laptop->db), key 'port': proto tcp needs a port (1-65535)",
        ),
        (
            {"from": "laptop", "to": "db", "proto": "udp", "port": 70000},
            "assertion 1 (laptop->db), key 'port': 70000 is out of range; a port is 1-65535",
        ),
        ({"from": "laptop", "to": "db", "allow": "yes"}, "key 'allow': true or false"),
        ({"from": "10.0.0.2", "to": "db"}, "key 'from': '10.0.0.2' is not a minion id"),
        ({"from": "laptop", "to": "db", "poort": 1}, "key 'poort': unknown"),
    ],
)
def test_bad_assertions_are_refused_naming_the_assertion_and_the_key(item, message):
    with pytest.raises(SaltInvocationError) as refused:
        wgf_verify.expect([{"from": "a", "to": "b"}, item][1:])
    assert message in str(refused.value)


def test_the_second_assertion_is_named_by_its_number():
    with pytest.raises(SaltInvocationError, match=r"assertion 2 \(b->a\), key 'port'"):
        wgf_verify.expect([{"from": "a", "to": "b"}, {"from": "b", "to": "a", "port": 1}])


def test_an_unknown_from_is_refused_by_the_runner_naming_the_minion_and_assertion():
    facts = hub_with_lan()
    facts["a"]["expect"] = [{"from": "a", "to": "b"}, {"from": "phone", "to": "b"}]
    with pytest.raises(SaltInvocationError) as refused:
        wgf_verify_report.static(facts)
    assert (
        "a: wireguard:expect, assertion 2 (phone->b), key 'from': unknown: 'phone' is no "
        "minion id, peer, client or network node name the runner knows"
    ) in str(refused.value)


def test_an_unknown_to_is_refused_too():
    facts = hub_with_lan()
    facts["b"]["expect"] = [{"from": "b", "to": "printer"}]
    with pytest.raises(SaltInvocationError, match=r"b: .*assertion 1 \(b->printer\), key 'to'"):
        wgf_verify_report.static(facts)


def test_the_pillar_pipeline_refuses_a_bad_assertion_so_state_apply_changes_nothing():
    pillar = {"expect": [{"from": "laptop", "to": "10.0.0.1", "port": 22}]}
    with pytest.raises(SaltInvocationError) as refused:
        wgf_pipeline.run(pillar, wgf_pipeline.Facts(minion_id="m1"))
    assert "wireguard:expect, assertion 1 (laptop->10.0.0.1), key 'port'" in str(refused.value)
    good = {"expect": [{"from": "laptop", "to": "10.0.0.1", "proto": "tcp", "port": 22}]}
    assert wgf_pipeline.run(good, wgf_pipeline.Facts(minion_id="m1"))["interfaces"] == {}


def test_a_minion_that_answers_with_an_error_is_refused_and_named():
    with pytest.raises(SaltInvocationError, match="m1: Passed invalid arguments"):
        wgf_verify_report.facts_from({"m1": "Passed invalid arguments: bad expect", "m2": None})


# ------------------------------------------------------------------ the minion's facts


def test_the_facts_name_live_peers_by_pillar_and_keep_unknown_ones_by_key():
    declared = {
        "wg0": {
            "absent": False,
            "address": ["10.1.0.2/24"],
            "listen_port": None,
            "masquerade": [],
            "access": None,
            "firewall": "nftables",
            "peers": {
                "hub": {
                    "public_key": KEYS["hub"],
                    "allowed_ips": ["10.1.0.0/24"],
                    "minion": "hub",
                    "minion_interface": None,
                    "absent": False,
                }
            },
        }
    }
    live = {
        "wg0": {
            "public_key": KEYS["a"],
            "listen_port": 40000,
            "peers": {
                KEYS["hub"]: {"allowed_ips": ["10.1.0.1/32"]},
                LAPTOP_KEY: {"allowed_ips": ["10.1.0.50/32"]},
            },
        }
    }
    links = [
        {
            "ifname": "wg0",
            "addr_info": [
                {"local": "fe80::1", "prefixlen": 64},  # wireguard-go's: never a source
                {"local": "10.1.0.2", "prefixlen": 24},
            ],
        }
    ]
    routes = [{"dst": "10.1.0.0/24", "dev": "wg0"}, {"dst": "10.1.0.0/24", "type": "broadcast"}]
    got = wgf_verify_report.facts(
        declared, live, {}, routes, links, {"ipv4": True, "ipv6": False}, []
    )
    wg0 = got["interfaces"]["wg0"]
    assert wg0["peers"]["hub"]["allowed_ips"] == ["10.1.0.1/32"]  # live wins
    assert wg0["peers"]["hub"]["pillar_allowed_ips"] == ["10.1.0.0/24"]
    assert wg0["peers"][f"key:{LAPTOP_KEY[:8]}"]["allowed_ips"] == ["10.1.0.50/32"]
    assert wg0["public_key"] == KEYS["a"] and wg0["up"] is True
    assert got["routes"] == [{"dst": "10.1.0.0/24", "dev": "wg0", "table": "main"}]
    assert wgf_verify_report.tunnel_addresses(got) == ["10.1.0.2"]
    assert wg0["address"] == ["10.1.0.2/24"]


def test_the_decision_does_not_change_the_facts():
    facts = masqueraded(hub_with_lan(), "b")
    before = copy.deepcopy(facts)
    decide(facts, **{"from": "a", "to": "192.168.62.10"})
    assert facts == before


# ------------------------------------------------------------------ the runner


@pytest.fixture
def runner(tmp_path, monkeypatch):
    return runner_with_stand_ins("wireguard_verify_under_test", master_opts(tmp_path), monkeypatch)


def fleet_with_assertions():
    facts = jumpbox(expect=[{"from": "laptop", "to": "192.168.61.10", "proto": "tcp", "port": 22}])
    facts.update(hub_with_lan())
    facts["a"]["expect"] = [{"from": "a", "to": "b"}, {"from": "a", "to": "hub", "allow": False}]
    return facts


def test_salt_run_verify_decides_probes_in_one_job_and_exits_non_zero(runner):
    facts = fleet_with_assertions()
    minions = runner.use(
        {
            "wireguard.verify_facts": facts,
            "wireguard.verify_probe": {
                "a": {"results": [{"id": 0, "live": "allow"}, {"id": 1, "live": "block"}]}
            },
        }
    )
    got = runner.verify(report="data")
    assert set(got) == {"assertions", "passed", "failed", "retcode"}
    rows = {(r["from"], r["to"]): r for r in got["assertions"]}
    assert rows[("a", "b")]["live"] == "allow" and rows[("a", "b")]["pass"] is True
    # a must not reach the hub, but the hub answers: static and live agree, it fails
    assert rows[("a", "hub")]["static"] == "allow" and rows[("a", "hub")]["live"] == "block"
    assert "outside the formula's model" in rows[("a", "hub")]["reason"]
    assert rows[("laptop", "192.168.61.10")]["live"] is None
    assert "static check only" in rows[("laptop", "192.168.61.10")]["reason"]
    assert (got["passed"], got["failed"], got["retcode"]) == (2, 1, 1)
    assert runner.__context__["retcode"] == 1
    probes = [job for job in minions.jobs if job[0] == "wireguard.verify_probe"]
    assert len(probes) == 1 and probes[0][1] == ["a"]


def test_salt_run_verify_live_false_asks_no_probe_and_passes(runner):
    facts = fleet_with_assertions()
    facts["a"]["expect"] = [{"from": "a", "to": "b"}]
    minions = runner.use({"wireguard.verify_facts": facts})
    got = runner.verify(live=False, report="data")
    assert (got["passed"], got["failed"], got["retcode"]) == (2, 0, 0)
    assert [job[0] for job in minions.jobs] == ["wireguard.verify_facts"]
    assert all(r["live"] is None for r in got["assertions"])


def test_salt_run_verify_refuses_an_unknown_name_before_probing(runner):
    facts = fleet_with_assertions()
    facts["b"]["expect"] = [{"from": "printer", "to": "a"}]
    minions = runner.use({"wireguard.verify_facts": facts})
    with pytest.raises(
        SaltInvocationError, match=r"b: wireguard:expect, assertion 1 \(printer->a\)"
    ):
        runner.verify()
    assert [job[0] for job in minions.jobs] == ["wireguard.verify_facts"]


def test_salt_run_verify_prints_the_table_and_returns_the_retcode(runner, capsys):
    runner.use({"wireguard.verify_facts": fleet_with_assertions()})
    got = runner.verify(live=False)
    printed = capsys.readouterr().out
    assert printed.startswith("WireGuard verify: 2 passed, 1 failed")
    assert re.search(r"^assertion +static +live +result +reason$", printed, re.M)
    assert got == {"passed": 2, "failed": 1, "retcode": 1}


def test_salt_run_audit_includes_the_static_verdicts(runner):
    answers = {m: {"wireguard.verify_facts": f} for m, f in fleet_with_assertions().items()}
    runner._ask_minions = lambda *_: (answers, [])
    got = runner.audit(report="data")
    assert (got["verify"]["passed"], got["verify"]["failed"]) == (2, 1)
    assert got["ok"] is False
    text = runner.audit(report="text")["data"]
    assert "Reachability, static (salt-run wireguard.verify probes live too):" in text
    assert re.search(r"a -> hub icmp \(must block\) +allow +- +FAIL", text)


def test_the_access_matcher_reads_the_rules_as_the_renderer_writes_them():
    rules = access(
        "drop",
        {"from": "laptop", "to": "172.16.0.0/16", "proto": "tcp", "ports": ["8000-8100", 22]},
        {"from": "10.0.0.0/24", "to": "fd00::/64"},  # no common family: never matches
        {"from": "laptop", "to": "172.17.0.1", "proto": "any"},
    )
    verdict = wgf_firewall.access_verdict
    assert verdict(rules, "10.0.0.2", "172.16.1.1", "tcp", 8050) == ("accept", 1)
    assert verdict(rules, "10.0.0.2", "172.16.1.1", "tcp", 22) == ("accept", 1)
    assert verdict(rules, "10.0.0.2", "172.16.1.1", "tcp", 8101) == ("drop", None)
    assert verdict(rules, "10.0.0.2", "172.16.1.1", "udp", 8050) == ("drop", None)
    assert verdict(rules, "10.0.0.3", "172.16.1.1", "tcp", 22) == ("drop", None)
    assert verdict(rules, "10.0.0.2", "172.17.0.1", "udp", 53) == ("accept", 3)
    assert verdict(rules, "10.0.0.2", "172.17.0.1", "icmp") == ("accept", 3)
    assert verdict({**rules, "default": "accept"}, "10.0.0.9", "1.1.1.1", "icmp") == (
        "accept",
        None,
    )
