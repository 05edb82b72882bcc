"""The cross-checks of ``salt-run wireguard.audit`` and its pictures, on plain data."""

import shutil

import pytest
from salt.exceptions import SaltInvocationError

import wgf_audit
import wgf_audit_report
import wgf_fleet
import wgf_host
from tests.unit.conftest import load

KEYS = {
    m: f"{m}key".ljust(43, "A") + "="
    for m in ("mesh1", "mesh2", "mesh3", "server", "warrior1", "warrior2", "hub", "stranger")
}


def peer(name, allowed, endpoint=None, age=10, tx=1000, keepalive=None, live_endpoint=None):
    return {
        "name": name,
        "endpoint": endpoint,
        "endpoint_resolved": [endpoint] if endpoint else None,
        "live_endpoint": live_endpoint or endpoint,
        "allowed_ips": allowed,
        "latest_handshake_age": age,
        "tx_bytes": tx,
        "persistent_keepalive": keepalive,
        "live": True,
    }


def node(minion, address, underlay, peers, port=51820, forwarding=False, ifname="wg0"):
    return {
        "error": None,
        "underlay": [underlay],
        "local": [],
        "interfaces": {
            ifname: {
                "public_key": KEYS[minion],
                "live": True,
                "listen_port": port,
                "addresses": [address],
                "forwarding": {"ipv4": forwarding, "ipv6": False},
                "service": f"wg-quick@{ifname}",
                "peers": peers,
            }
        },
    }


def mesh():
    """examples/mesh: three servers, each a peer of the other two."""
    nodes = {1: "198.18.0.1", 2: "198.18.0.2", 3: "198.18.0.3"}
    fleet = {}
    for i, underlay in nodes.items():
        peers = {
            KEYS[f"mesh{j}"]: peer(f"mesh{j}", [f"10.10.0.{j}/32"], f"{nodes[j]}:51820")
            for j in nodes
            if j != i
        }
        fleet[f"mesh{i}"] = node(f"mesh{i}", f"10.10.0.{i}/24", underlay, peers)
    return fleet


def road_warriors(forwarding=True):
    server = node(
        "server",
        "10.20.0.1/24",
        "198.18.0.1",
        {
            KEYS["warrior1"]: peer(
                "warrior1", ["10.20.0.11/32"], live_endpoint="198.18.0.101:40001"
            ),
            KEYS["warrior2"]: peer(
                "warrior2", ["10.20.0.12/32"], live_endpoint="198.18.0.102:40002"
            ),
        },
        forwarding=forwarding,
    )
    fleet = {"server": server}
    for n in (1, 2):
        fleet[f"warrior{n}"] = node(
            f"warrior{n}",
            f"10.20.0.1{n}/32",
            "192.168.1.2",
            {
                KEYS["server"]: peer("server", ["10.20.0.0/24"], "198.18.0.1:51820", keepalive=25),
            },
            port=None,
        )
    return fleet


def pairs(result, severities=("error", "warning")):
    return sorted(
        (p["check"], p["minion"], p["peer_minion"])
        for p in result["problems"]
        if p["severity"] in severities
    )


# ------------------------------------------------------------------ healthy


def test_a_healthy_mesh_audits_clean():
    result = wgf_audit.cross_check(mesh())
    assert result["problems"] == [] and result["unknown_peers"] == []
    assert [(link["a"], link["b"], link["state"]) for link in result["links"]] == [
        ("mesh1", "mesh2", "up"),
        ("mesh1", "mesh3", "up"),
        ("mesh2", "mesh3", "up"),
    ]


def test_road_warriors_behind_nat_audit_clean():
    result = wgf_audit.cross_check(road_warriors())
    assert pairs(result, ("error", "warning", "info")) == []
    assert {link["state"] for link in result["links"]} == {"up"}


# ------------------------------------------------------------------ the lab's breaks


def test_a_swapped_key_is_named_once_with_both_minions():
    fleet = mesh()
    wrong = "WrongKeyWrongKeyWrongKeyWrongKeyWrongKey123="
    fleet["mesh1"]["interfaces"]["wg0"]["peers"][wrong] = fleet["mesh1"]["interfaces"]["wg0"][
        "peers"
    ].pop(KEYS["mesh2"])
    result = wgf_audit.cross_check(fleet)
    (problem,) = result["problems"]
    assert (
        problem["check"],
        problem["minion"],
        problem["interface"],
        problem["peer_minion"],
        problem["peer_interface"],
        problem["peer"],
    ) == ("key", "mesh1", "wg0", "mesh2", "wg0", wrong)
    assert problem["message"] == (
        f"mesh1 (wg0) holds the key {wrong[:8]}... for mesh2, but "
        f"the public key of mesh2 (wg0) is {KEYS['mesh2'][:8]}..., "
        "so they cannot handshake"
    )
    assert problem["fix"] == (
        f"Set the public key of peer 'mesh2' of wg0 on mesh1 to "
        f"{KEYS['mesh2']} (or give the peer minion: mesh2 instead of a key)."
    )
    assert result["unknown_peers"] == []
    states = {(link["a"], link["b"]): link["state"] for link in result["links"]}
    assert states == {
        ("mesh1", "mesh2"): "broken",
        ("mesh1", "mesh3"): "up",
        ("mesh2", "mesh3"): "up",
    }


@pytest.mark.parametrize("how", ["endpoint", "address"])
def test_a_wrong_key_is_traced_to_its_minion_without_a_name(how):
    fleet = mesh()
    wrong = "WrongKeyWrongKeyWrongKeyWrongKeyWrongKey123="
    peers = fleet["mesh1"]["interfaces"]["wg0"]["peers"]
    entry = peers.pop(KEYS["mesh2"])
    entry["name"] = "old-server"
    if how == "address":
        entry.update(endpoint=None, endpoint_resolved=None, live_endpoint=None)
    peers[wrong] = entry
    (problem,) = wgf_audit.cross_check(fleet)["problems"]
    assert (problem["check"], problem["minion"], problem["peer_minion"]) == (
        "key",
        "mesh1",
        "mesh2",
    )


def test_narrowed_allowed_ips_are_named():
    fleet = mesh()
    fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["mesh2"]]["allowed_ips"] = ["10.10.0.16/28"]
    (problem,) = wgf_audit.cross_check(fleet)["problems"]
    assert (problem["check"], problem["minion"], problem["peer_minion"]) == (
        "allowed_ips",
        "mesh1",
        "mesh2",
    )
    assert problem["message"] == (
        "The AllowedIPs mesh1 holds for mesh2 on wg0 (10.10.0.16/28) do not cover the "
        "address 10.10.0.2 of mesh2 (wg0), so mesh1 drops its packets"
    )
    assert problem["fix"] == "Add 10.10.0.2/32 to the allowed_ips of peer 'mesh2' of wg0 on mesh1."


def test_an_endpoint_at_the_wrong_port_is_named():
    fleet = mesh()
    fleet["mesh2"]["underlay"].insert(0, "198.19.255.11")  # a management address first
    entry = fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["mesh2"]]
    # the configured endpoint is wrong; the live one was learnt from mesh2's handshakes
    entry.update(
        endpoint="198.18.0.2:51999",
        endpoint_resolved=["198.18.0.2:51999"],
        live_endpoint="198.18.0.2:51820",
    )
    (problem,) = wgf_audit.cross_check(fleet)["problems"]
    assert (problem["check"], problem["severity"], problem["minion"], problem["peer_minion"]) == (
        "endpoint",
        "error",
        "mesh1",
        "mesh2",
    )
    assert problem["message"] == (
        "mesh1 dials mesh2 at 198.18.0.2:51999, but mesh2 (wg0) listens on port 51820"
    )
    assert problem["fix"] == "Set the endpoint of peer 'mesh2' of wg0 on mesh1 to 198.18.0.2:51820."


def test_a_live_endpoint_at_the_wrong_port():
    fleet = road_warriors()
    fleet["warrior1"]["interfaces"]["wg0"]["peers"][KEYS["server"]].update(
        endpoint=None, endpoint_resolved=None, live_endpoint="198.18.0.1:4444"
    )
    problems = pairs(wgf_audit.cross_check(fleet))
    assert problems == [("endpoint", "warrior1", "server")]


@pytest.mark.parametrize(
    "endpoint, severity, words",
    [
        ("203.0.113.9:51820", "info", "fine when it is a NAT router"),
        ("203.0.113.9:4000", "warning", "neither the address nor the port is its own"),
    ],
)
def test_an_endpoint_that_is_not_the_peers_address(endpoint, severity, words):
    fleet = mesh()
    fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["mesh2"]].update(
        endpoint=endpoint, endpoint_resolved=[endpoint]
    )
    (problem,) = wgf_audit.cross_check(fleet)["problems"]
    assert (problem["check"], problem["severity"]) == ("endpoint", severity)
    assert words in problem["message"]


def test_an_endpoint_for_a_peer_without_a_fixed_port():
    fleet = mesh()
    fleet["mesh2"]["interfaces"]["wg0"]["listen_port"] = None
    problems = pairs(wgf_audit.cross_check(fleet))
    assert problems == [("endpoint", "mesh1", "mesh2"), ("endpoint", "mesh3", "mesh2")]


def test_one_side_removed_its_peer():
    fleet = mesh()
    del fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["mesh2"]]
    result = wgf_audit.cross_check(fleet)
    (problem,) = result["problems"]
    assert (problem["check"], problem["minion"], problem["peer_minion"]) == (
        "asymmetric",
        "mesh2",
        "mesh1",
    )
    assert (
        problem["message"]
        == "mesh2 (wg0) holds mesh1 as a peer, but mesh1 (wg0) does not hold mesh2"
    )
    assert problem["fix"] == (
        f"Add mesh2 to the peers of wg0 on mesh1 (public key "
        f"{KEYS['mesh2']}, allowed_ips 10.10.0.2/32), or remove 'mesh1' "
        "from mesh2."
    )
    states = {(link["a"], link["b"]): link["state"] for link in result["links"]}
    assert states[("mesh1", "mesh2")] == "one-way"


# ------------------------------------------------------------------ handshakes


def test_handshake_as_both_ends_see_it():
    fleet = mesh()
    p12 = fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["mesh2"]]
    p21 = fleet["mesh2"]["interfaces"]["wg0"]["peers"][KEYS["mesh1"]]
    p13 = fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["mesh3"]]
    p23 = fleet["mesh2"]["interfaces"]["wg0"]["peers"][KEYS["mesh3"]]
    p32 = fleet["mesh3"]["interfaces"]["wg0"]["peers"][KEYS["mesh2"]]
    p12.update(latest_handshake_age=None)
    p21.update(latest_handshake_age=None)  # never, traffic sent: error
    p13.update(latest_handshake_age=None)  # one end only: warning
    p23.update(latest_handshake_age=500, persistent_keepalive=25)
    p32.update(latest_handshake_age=500)  # stale with a keepalive: error
    result = wgf_audit.cross_check(fleet)
    assert [(p["severity"], p["minion"], p["peer_minion"]) for p in result["problems"]] == [
        ("error", "mesh1", "mesh2"),
        ("error", "mesh2", "mesh3"),
        ("warning", "mesh3", "mesh1"),
    ]
    assert "never completed a handshake" in result["problems"][0]["message"]
    assert "no handshake for 500 s" in result["problems"][1]["message"]
    assert result["problems"][2]["message"] == (
        "mesh3 (wg0) had a handshake with mesh1, but mesh1 (wg0) has none with mesh3: it "
        "restarted since, or runs another key"
    )
    states = {(link["a"], link["b"]): link["state"] for link in result["links"]}
    assert states == {
        ("mesh1", "mesh2"): "never",
        ("mesh1", "mesh3"): "one-sided",
        ("mesh2", "mesh3"): "stale",
    }


def test_idle_and_not_yet_used_links_are_not_problems():
    fleet = mesh()
    for entry in fleet.values():
        for item in entry["interfaces"]["wg0"]["peers"].values():
            item.update(latest_handshake_age=None, tx_bytes=0)
    fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["mesh2"]].update(latest_handshake_age=900)
    fleet["mesh2"]["interfaces"]["wg0"]["peers"][KEYS["mesh1"]].update(latest_handshake_age=900)
    result = wgf_audit.cross_check(fleet)
    assert result["problems"] == []
    assert [link["state"] for link in result["links"]] == ["idle", "never", "never"]


def test_neither_side_can_start_a_handshake():
    fleet = mesh()
    for a, b in (("mesh1", "mesh2"), ("mesh2", "mesh1")):
        fleet[a]["interfaces"]["wg0"]["peers"][KEYS[b]].update(
            endpoint=None, endpoint_resolved=None, live_endpoint=None, latest_handshake_age=None
        )
    assert pairs(wgf_audit.cross_check(fleet)) == [("handshake", "mesh1", "mesh2")]


def test_an_interface_that_is_down():
    fleet = mesh()
    fleet["mesh3"]["interfaces"]["wg0"]["live"] = False
    states = [link["state"] for link in wgf_audit.cross_check(fleet)["links"]]
    assert states == ["up", "down", "down"]


# ------------------------------------------------------------------ forwarding, strangers


def test_a_server_that_should_forward_between_its_peers():
    result = wgf_audit.cross_check(road_warriors(forwarding=False))
    problems = [p for p in result["problems"] if p["check"] == "forwarding"]
    assert sorted((p["minion"], p["peer_minion"]) for p in problems) == [
        ("server", "warrior1"),
        ("server", "warrior2"),
    ]
    assert problems[0]["severity"] == "warning"
    assert problems[0]["message"] == (
        "warrior1 sends 10.20.0.0/24 to server (wg0), which "
        "does not forward (net.ipv4.ip_forward is 0), so that "
        "traffic ends at server"
    )


def test_a_gateway_for_the_whole_internet_must_forward():
    fleet = road_warriors()
    del fleet["warrior2"]
    del fleet["server"]["interfaces"]["wg0"]["peers"][KEYS["warrior2"]]
    fleet["server"]["interfaces"]["wg0"]["forwarding"] = {"ipv4": False, "ipv6": False}
    fleet["warrior1"]["interfaces"]["wg0"]["peers"][KEYS["server"]]["allowed_ips"] = [
        "10.20.0.1/32",
        "0.0.0.0/0",
        "::/0",
    ]
    messages = [p["message"] for p in wgf_audit.cross_check(fleet)["problems"]]
    assert messages == [
        "warrior1 sends 0.0.0.0/0 to server (wg0), which does not forward "
        "(net.ipv4.ip_forward is 0), so that traffic ends at server",
        "warrior1 sends ::/0 to server (wg0), which does not forward "
        "(net.ipv6.conf.all.forwarding is 0), so that traffic ends at server",
    ]


def test_a_client_with_one_server_needs_no_forwarding():
    fleet = road_warriors()
    del fleet["warrior2"]
    del fleet["server"]["interfaces"]["wg0"]["peers"][KEYS["warrior2"]]
    fleet["server"]["interfaces"]["wg0"]["forwarding"] = {"ipv4": False, "ipv6": False}
    assert wgf_audit.cross_check(fleet)["problems"] == []


def test_peers_of_no_minion_are_listed():
    fleet = mesh()
    fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["stranger"]] = peer(
        "phone", ["10.10.0.50/32"], live_endpoint="203.0.113.5:3333"
    )
    result = wgf_audit.cross_check(fleet)
    assert result["problems"] == []
    assert result["unknown_peers"] == [
        {
            "minion": "mesh1",
            "interface": "wg0",
            "peer": KEYS["stranger"],
            "name": "phone",
            "client": None,
            "endpoint": "203.0.113.5:3333",
        }
    ]


def test_a_copied_private_key():
    fleet = mesh()
    fleet["mesh3"]["interfaces"]["wg0"]["public_key"] = KEYS["mesh2"]
    problems = [p for p in wgf_audit.cross_check(fleet)["problems"] if p["check"] == "key"]
    assert [(p["minion"], p["peer_minion"]) for p in problems] == [("mesh2", "mesh3")]
    assert "a copied private key" in problems[0]["message"]


# ------------------------------------------------------------------ raw returns


def raw_returns():
    show = {
        "wg0": {
            "public_key": KEYS["mesh1"],
            "listen_port": 51820,
            "fwmark": None,
            "peers": {
                KEYS["mesh2"]: {
                    "preshared_key": False,
                    "endpoint": "198.18.0.2:51820",
                    "allowed_ips": ["10.10.0.2/32"],
                    "latest_handshake": 1,
                    "latest_handshake_age": 5,
                    "rx_bytes": 1,
                    "tx_bytes": 2,
                    "persistent_keepalive": None,
                }
            },
        }
    }
    check = {
        "ok": False,
        "summary": "",
        "problems": [
            {"severity": "error", "check": "pillar", "peer": None, "message": "m", "fix": "f"}
        ],
        "interfaces": {
            "wg0": {
                "ok": True,
                "problems": [],
                "facts": {
                    "live": True,
                    "public_key": KEYS["mesh1"],
                    "listen_port": 51820,
                    "addresses": ["10.10.0.1/24"],
                    "mtu": 1420,
                    "forwarding": {"ipv4": False, "ipv6": False},
                    "peers": {
                        KEYS["mesh2"]: {
                            "name": "mesh2",
                            "endpoint": "mesh2.lab:51820",
                            "endpoint_resolved": ["198.18.0.2:51820"],
                            "allowed_ips": ["10.10.0.2/32"],
                            "persistent_keepalive": None,
                        }
                    },
                },
            }
        },
    }
    nics = {
        "lo": {"inet": [{"address": "127.0.0.1"}]},
        "eth0": {
            "inet": [{"address": "198.18.0.1"}],
            "inet6": [{"address": "fe80::1"}, {"address": "fd18::1"}],
        },
        "wg0": {"inet": [{"address": "10.10.0.1"}]},
    }
    return {
        "mesh1": {
            "wireguard.show": show,
            "wireguard.public_keys": {"wg0": KEYS["mesh1"]},
            "wireguard.check": check,
            "network.interfaces": nics,
        },
        "mesh2": {
            "wireguard.show": "ERROR: 'wireguard.show' is not available.",
            "wireguard.public_keys": {},
            "wireguard.check": {},
            "network.interfaces": {},
        },
        "mesh3": "Minion did not return",
    }


def test_fleet_from_raw_returns():
    returned = raw_returns()
    facts = returned["mesh1"]["wireguard.check"]["interfaces"]["wg0"]["facts"]
    facts.update(service="wg-quick@wg0", link_states={KEYS["mesh2"]: "up"})
    fleet = wgf_fleet.fleet_from(returned)
    mesh1 = fleet["mesh1"]
    assert mesh1["error"] is None
    assert mesh1["underlay"] == ["198.18.0.1", "fd18::1"]
    assert mesh1["local"] == [
        {
            "severity": "error",
            "check": "pillar",
            "peer": None,
            "message": "m",
            "fix": "f",
            "interface": None,
        }
    ]
    wg0 = mesh1["interfaces"]["wg0"]
    assert wg0["public_key"] == KEYS["mesh1"] and wg0["addresses"] == ["10.10.0.1/24"]
    assert wg0["service"] == "wg-quick@wg0"
    assert wg0["peers"][KEYS["mesh2"]] == {
        "name": "mesh2",
        "endpoint": "mesh2.lab:51820",
        "endpoint_resolved": ["198.18.0.2:51820"],
        "live_endpoint": "198.18.0.2:51820",
        "allowed_ips": ["10.10.0.2/32"],
        "latest_handshake_age": 5,
        "tx_bytes": 2,
        "persistent_keepalive": None,
        "live": True,
        "state": "up",
    }
    assert fleet["mesh2"]["error"].startswith("wireguard.show: ")
    assert "ERROR: 'wireguard.show' is not available." in fleet["mesh2"]["error"]
    assert fleet["mesh3"]["error"].startswith("its answer cannot be read")
    assert "Minion did not return" in fleet["mesh3"]["error"]


def returned_by(fleet):
    """What the minions of ``fleet`` answer the audit's job, each in one piece."""
    returned = {}
    for minion, entry in fleet.items():
        wg0 = entry["interfaces"]["wg0"]
        show = {
            "wg0": {
                "public_key": wg0["public_key"],
                "listen_port": 51820,
                "fwmark": None,
                "peers": {
                    k: {
                        "preshared_key": False,
                        "endpoint": p["live_endpoint"],
                        "allowed_ips": p["allowed_ips"],
                        "latest_handshake": 1,
                        "latest_handshake_age": 3,
                        "rx_bytes": 5,
                        "tx_bytes": 5,
                        "persistent_keepalive": None,
                    }
                    for k, p in wg0["peers"].items()
                },
            }
        }
        facts = {
            "live": True,
            "public_key": wg0["public_key"],
            "listen_port": 51820,
            "addresses": wg0["addresses"],
            "forwarding": wg0["forwarding"],
            "service": "wg-quick@wg0",
            "link_states": dict.fromkeys(wg0["peers"], "up"),
            "peers": {
                k: {
                    "name": p["name"],
                    "endpoint": p["endpoint"],
                    "endpoint_resolved": p["endpoint_resolved"],
                    "allowed_ips": p["allowed_ips"],
                    "persistent_keepalive": None,
                }
                for k, p in wg0["peers"].items()
            },
        }
        returned[minion] = {
            "wireguard.show": show,
            "wireguard.public_keys": {"wg0": wg0["public_key"]},
            "wireguard.check": {
                "problems": [],
                "interfaces": {"wg0": {"problems": [], "facts": facts}},
            },
            "network.interfaces": {"eth0": {"inet": [{"address": entry["underlay"][0]}]}},
        }
    return returned


def audited(returned):
    """The audit's result (the runner's ``report=data``) for the minions' answers."""
    fleet = wgf_fleet.fleet_from(returned)
    crossed = wgf_audit.cross_check(fleet)
    local = {m: e["local"] for m, e in fleet.items() if e["local"]}
    serious = [p for p in crossed["problems"] if p["severity"] in ("error", "warning")]
    return {
        "ok": not serious and not any(e["error"] for e in fleet.values()),
        "problems": crossed["problems"],
        "local": local,
        "links": crossed["links"],
        "unknown_peers": crossed["unknown_peers"],
        "unreachable": [],
        "minions": {
            m: {"error": e["error"], "interfaces": sorted(e["interfaces"])}
            for m, e in fleet.items()
        },
    }


def test_a_healthy_fleets_answers_give_a_clean_readable_report():
    result = audited(returned_by(mesh()))
    assert result["ok"] and result["problems"] == []
    lines = wgf_audit_report.text_report(result).splitlines()
    assert lines[0] == (
        "WireGuard audit: OK: 3 minion(s), 3 link(s); 0 error(s), "
        "0 warning(s) between minions, 0 on single minions"
    )
    assert "  mesh1 (wg0) <-> mesh2 (wg0): up, last handshake 3 s ago" in lines


def test_the_report_names_problems_and_fixes():
    returned = returned_by(mesh())
    del returned["mesh1"]["wireguard.show"]["wg0"]["peers"][KEYS["mesh2"]]
    del returned["mesh1"]["wireguard.check"]["interfaces"]["wg0"]["facts"]["peers"][KEYS["mesh2"]]
    text = wgf_audit_report.text_report(audited(returned))
    assert "WireGuard audit: PROBLEMS" in text
    assert (
        "  [error] asymmetric: mesh2 (wg0) <-> mesh1 (wg0): mesh2 (wg0) holds mesh1 as a "
        "peer, but mesh1 (wg0) does not hold mesh2."
    ) in text
    assert "      fix: Add mesh2 to the peers of wg0 on mesh1" in text


# ------------------------------------------------------------------ untrusted answers


def _answer(returned):
    return returned["mesh3"]


def _check(returned):
    return returned["mesh3"]["wireguard.check"]


def _show(returned):
    return returned["mesh3"]["wireguard.show"]


WRONG_SHAPES = {
    # (where the wrong value goes, the function named in the error, or None for the answer)
    "the whole answer": (lambda r: r.__setitem__("mesh3", "garbage"), None),
    "show": (lambda r: _answer(r).__setitem__("wireguard.show", "wg0"), "wireguard.show"),
    "an interface of show": (lambda r: _show(r).__setitem__("wg0", "up"), "wireguard.show"),
    "the peers of show": (lambda r: _show(r)["wg0"].__setitem__("peers", ["x"]), "wireguard.show"),
    "a peer of show": (
        lambda r: _show(r)["wg0"]["peers"].__setitem__(KEYS["mesh1"], "x"),
        "wireguard.show",
    ),
    "a peer's counters": (
        lambda r: _show(r)["wg0"]["peers"][KEYS["mesh1"]].__setitem__("tx_bytes", "5"),
        "wireguard.show",
    ),
    "a peer's allowed_ips": (
        lambda r: _show(r)["wg0"]["peers"][KEYS["mesh1"]].__setitem__("allowed_ips", "x"),
        "wireguard.show",
    ),
    "check": (lambda r: _answer(r).__setitem__("wireguard.check", "fine"), "wireguard.check"),
    "check's interfaces": (
        lambda r: _check(r).__setitem__("interfaces", ["wg0"]),
        "wireguard.check",
    ),
    "check's problems": (lambda r: _check(r).__setitem__("problems", "none"), "wireguard.check"),
    "a problem without a severity": (
        lambda r: _check(r).__setitem__("problems", [{"message": "m"}]),
        "wireguard.check",
    ),
    "a problem of an interface": (
        lambda r: _check(r)["interfaces"]["wg0"].__setitem__(
            "problems", [{"severity": "fatal", "check": "c", "message": "m", "fix": "f"}]
        ),
        "wireguard.check",
    ),
    "an interface named by a number": (
        lambda r: _show(r).__setitem__(0, _show(r)["wg0"]),
        "wireguard.show",
    ),
    "a peer keyed by a number": (
        lambda r: _check(r)["interfaces"]["wg0"]["facts"]["peers"].__setitem__(7, {}),
        "wireguard.check",
    ),
    "an interface of check": (
        lambda r: _check(r)["interfaces"].__setitem__("wg0", "ok"),
        "wireguard.check",
    ),
    "check facts": (
        lambda r: _check(r)["interfaces"]["wg0"].__setitem__("facts", "x"),
        "wireguard.check",
    ),
    "the peers in the facts": (
        lambda r: _check(r)["interfaces"]["wg0"]["facts"].__setitem__("peers", "x"),
        "wireguard.check",
    ),
    "a peer in the facts": (
        lambda r: _check(r)["interfaces"]["wg0"]["facts"]["peers"].__setitem__(KEYS["mesh1"], "x"),
        "wireguard.check",
    ),
    "the link states": (
        lambda r: _check(r)["interfaces"]["wg0"]["facts"].__setitem__("link_states", "up"),
        "wireguard.check",
    ),
    "public_keys": (
        lambda r: _answer(r).__setitem__("wireguard.public_keys", "k"),
        "wireguard.public_keys",
    ),
    "a public key": (
        lambda r: _answer(r)["wireguard.public_keys"].__setitem__("wg0", 5),
        "wireguard.public_keys",
    ),
}


@pytest.mark.parametrize("where", list(WRONG_SHAPES))
def test_an_answer_of_the_wrong_shape_names_that_minion_and_the_rest_is_audited(where):
    returned = returned_by(mesh())
    spoil, function = WRONG_SHAPES[where]
    spoil(returned)
    result = audited(returned)
    error = result["minions"]["mesh3"]["error"]
    assert error, f"mesh3 is named as unreadable ({where})"
    assert error.startswith(f"{function}: " if function else "its answer cannot be read")
    assert result["minions"]["mesh1"]["error"] is None is result["minions"]["mesh2"]["error"]
    states = {(link["a"], link["b"]): link["state"] for link in result["links"]}
    assert states[("mesh1", "mesh2")] == "up"
    assert not result["ok"]
    assert f"mesh3: could not be audited fully: {error}" in wgf_audit_report.text_report(result)


# ------------------------------------------------------------------ pictures


def test_dot_and_mermaid_show_every_link_with_its_state():
    fleet = mesh()
    del fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["mesh2"]]
    fleet["mesh1"]["interfaces"]["wg0"]["peers"][KEYS["stranger"]] = peer(
        'the "phone"', ["10.10.0.50/32"]
    )
    crossed = wgf_audit.cross_check(fleet)
    dot = wgf_audit_report.dot(fleet, crossed["links"], crossed["unknown_peers"])
    assert dot.startswith("graph wireguard {") and dot.endswith("}\n")
    assert '"mesh1" [label="mesh1\\nwg0 10.10.0.1/24 :51820"];' in dot
    assert (
        '"mesh1" -- "mesh2" [label="wg0-wg0: one-way 10 s (asymmetric)", color=red, '
        "fontcolor=red, style=dashed];"
    ) in dot
    assert '"mesh2" -- "mesh3" [label="wg0-wg0: up 10 s", color=forestgreen' in dot
    assert 'label="the \\"phone\\" (no minion)\\nstranger...' in dot
    mermaid = wgf_audit_report.mermaid(fleet, crossed["links"], crossed["unknown_peers"])
    assert mermaid.startswith("graph LR\n")
    assert '  n0["mesh1<br/>wg0 10.10.0.1/24 :51820"]' in mermaid
    assert '  n0 -.-|"wg0-wg0: one-way 10 s (asymmetric)"| n1' in mermaid
    assert "  linkStyle 0 stroke:red" in mermaid
    assert "the #quot;phone#quot;" in mermaid


@pytest.fixture
def runner():
    """The runner as a plain module, for its dunder-free helpers."""
    return load("_runners/wireguard.py", "wireguard_runner_under_test")


@pytest.mark.skipif(not shutil.which("dot"), reason="Graphviz (dot) is not installed")
def test_svg_is_written_where_graphviz_is_installed(tmp_path):
    crossed = wgf_audit.cross_check(mesh())
    dot = wgf_audit_report.dot(mesh(), crossed["links"], crossed["unknown_peers"])
    path, error = wgf_host.render_svg(dot, tmp_path / "net.svg")
    assert path == str(tmp_path / "net.svg") and error is None
    svg = (tmp_path / "net.svg").read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "mesh1" in svg


def test_without_graphviz_no_svg_and_a_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(wgf_host.shutil, "which", lambda name: None)
    path, error = wgf_host.render_svg("graph x {}", tmp_path / "x.svg")
    assert path is None and "Graphviz is not installed" in error
    assert not (tmp_path / "x.svg").exists()


def test_an_svg_path_in_the_masters_store_is_refused(runner, tmp_path):
    """The runner writes the SVG where it is told, as the master's user: never over the
    store of preshared keys (``<cachedir>/wireguard/psks.json``), however spelled."""
    store = tmp_path / "cache" / "wireguard"
    store.mkdir(parents=True)
    (store / "psks.json").write_text("{}")
    (tmp_path / "link").symlink_to(store)
    runner.__opts__ = {"cachedir": str(tmp_path / "cache")}
    for path in (
        store / "psks.json",
        tmp_path / "cache" / "x" / ".." / "wireguard",
        tmp_path / "link" / "psks.json",
    ):
        with pytest.raises(SaltInvocationError, match="store of preshared keys"):
            runner._graph_into({"links": [], "unknown_peers": []}, {}, None, str(path))
    assert (store / "psks.json").read_text() == "{}"
