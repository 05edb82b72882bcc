"""Every check of ``wireguard.check``, on plain data (no live interface)."""

import copy
import ipaddress
import json

import pytest
from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_checks_net
import wgf_conf
import wgf_findings
import wgf_health

PRIV = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
PUB = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
PEER1 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PEER2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="

CONF = f"""\
# Managed by Salt (wireguard formula): local changes are overwritten.
[Interface]
PrivateKey = {PRIV}
Address = 10.1.0.1/24, fd01::1/64
ListenPort = 51820
MTU = 1420
PostUp = ip route replace 172.16.1.0/24 dev %i proto static

[Peer]
# hub
PublicKey = {PEER1}
PresharedKey = {PSK}
AllowedIPs = 10.1.0.2/32, 172.16.1.0/24
Endpoint = 198.51.100.2:51820
PersistentKeepalive = 25

[Peer]
# laptop
PublicKey = {PEER2}
AllowedIPs = 10.1.0.3/32   # comment after a value
"""


def live_peer(**kwargs):
    peer = {
        "preshared_key": False,
        "endpoint": None,
        "allowed_ips": [],
        "latest_handshake": 1000,
        "latest_handshake_age": 10,
        "rx_bytes": 100,
        "tx_bytes": 100,
        "persistent_keepalive": None,
    }
    peer.update(kwargs)
    return peer


@pytest.fixture
def data():
    """A healthy interface: file, live state and surroundings agree."""
    conf = wgf_conf.parse(CONF)
    return {
        "name": "wg0",
        "config_path": "/etc/wireguard/wg0.conf",
        "conf": conf,
        "conf_error": None,
        "modes": {
            "conf": {"path": "/etc/wireguard/wg0.conf", "mode": 0o600, "uid": 0},
            "key": {"path": "/etc/wireguard/wg0.key", "mode": 0o600, "uid": 0},
            "dir": {"path": "/etc/wireguard", "mode": 0o700, "uid": 0},
        },
        "key_file_public": PUB,
        "pillar": None,
        "rendered": None,
        "conf_masked": None,
        "live": {
            "public_key": PUB,
            "listen_port": 51820,
            "fwmark": None,
            "peers": {
                PEER1: live_peer(
                    preshared_key=True,
                    endpoint="198.51.100.2:51820",
                    allowed_ips=["10.1.0.2/32", "172.16.1.0/24"],
                    persistent_keepalive=25,
                ),
                PEER2: live_peer(allowed_ips=["10.1.0.3/32"], endpoint="203.0.113.7:40000"),
            },
        },
        "samples": None,
        "service": "wg-quick@wg0",
        "init": "systemd",
        "link": {"mtu": 1420, "addresses": ["10.1.0.1/24", "fd01::1/64"]},
        "routes": ["10.1.0.0/24", "172.16.1.0/24", "fd01::/64"],
        "underlay": {
            "198.51.100.2": {"dev": "eth0", "mtu": None, "dev_mtu": 1500, "error": None},
            "203.0.113.7": {"dev": "eth0", "mtu": None, "dev_mtu": 1500, "error": None},
        },
        "resolved": {"198.51.100.2:51820": {"addresses": ["198.51.100.2:51820"], "error": None}},
        "forwarding": {"ipv4": False, "ipv6": False},
    }


def found(data, stale_after=180):
    return wgf_health.check_interface(data, stale_after)


def only(problems, *severities):
    return [p for p in problems if p["severity"] in (severities or ("error", "warning"))]


# ------------------------------------------------------------------ config parser


def test_parse_conf_reads_every_key_and_keeps_no_secret():
    conf = wgf_conf.parse(CONF)
    assert conf["public_key"] == PUB and conf["has_private_key"]
    assert conf["address"] == ["10.1.0.1/24", "fd01::1/64"]
    assert (conf["listen_port"], conf["mtu"]) == (51820, 1420)
    assert conf["routes"] == ["172.16.1.0/24"]
    hub, laptop = conf["peers"]
    assert hub == {
        "name": "hub",
        "public_key": PEER1,
        "allowed_ips": ["10.1.0.2/32", "172.16.1.0/24"],
        "endpoint": "198.51.100.2:51820",
        "persistent_keepalive": 25,
        "has_preshared_key": True,
    }
    assert laptop["name"] == "laptop" and laptop["allowed_ips"] == ["10.1.0.3/32"]
    assert conf["errors"] == []
    assert PRIV not in json.dumps(conf) and PSK not in json.dumps(conf)


def test_parse_conf_reports_bad_lines_without_quoting_keys():
    conf = wgf_conf.parse(
        "[Interface]\nPrivateKey = not-a-key\nListenPort = x\n"
        "garbage\n[Peer]\nAllowedIPs = 10.0.0.300/32\n[Foo]\n"
    )
    assert conf["errors"] == [
        "line 2: PrivateKey is not a valid key",
        "line 3: ListenPort 'x' is not a number",
        "line 4: not a 'Key = value' line of a section",
        "line 6: AllowedIPs: '10.0.0.300/32' is not a valid CIDR",
        "line 7: unknown section (not [Interface] or [Peer])",
    ]


def test_a_healthy_interface_has_no_problem(data):
    assert found(data) == []


# ------------------------------------------------------------------ presence


def test_up_without_a_file_and_down_with_one(data):
    up_only = dict(data, conf=None)
    (problem,) = only(found(up_only))
    assert problem["check"] == "presence" and problem["severity"] == "warning"
    assert "does not come back after a restart" in problem["message"]
    down = dict(data, live=None, link=None, routes=None)
    (problem,) = only(found(down))
    assert problem["severity"] == "error" and "is down although" in problem["message"]
    assert problem["fix"].startswith("Start it: systemctl start wg-quick@wg0")


def test_pillar_absent_disabled_and_declared_but_missing(data):
    pillar = {
        "absent": True,
        "enabled": True,
        "peers": {},
        "routes": [],
        "forwarding": False,
        "masquerade": [],
        "ipv6": False,
    }
    (problem,) = only(found(dict(data, pillar=pillar)))
    assert "Pillar says wg0 is absent, but it is still up" in problem["message"]
    pillar.update(absent=False, enabled=False)
    problems = only(found(dict(data, pillar=pillar)))
    assert [p["message"] for p in problems if p["check"] == "presence"] == [
        "Pillar says wg0 is disabled, but it is up"
    ]
    pillar.update(enabled=True)
    nothing = dict(data, conf=None, live=None, link=None, routes=None, pillar=pillar)
    (problem,) = only(found(nothing))
    assert (
        problem["severity"] == "error" and "has no /etc/wireguard/wg0.conf" in (problem["message"])
    )


def test_unreadable_and_broken_files(data):
    broken = dict(data, conf=None, conf_error="/etc/wireguard/wg0.conf cannot be read: denied")
    assert [p["check"] for p in only(found(broken))] == ["config"]
    conf = copy.deepcopy(data["conf"])
    conf["errors"] = ["line 3: ListenPort 'x' is not a number"]
    (problem,) = only(found(dict(data, conf=conf)))
    assert problem["message"] == "/etc/wireguard/wg0.conf, line 3: ListenPort 'x' is not a number"


# ------------------------------------------------------------------ permissions


@pytest.mark.parametrize(
    "which, mode, severity, words",
    [
        ("conf", 0o644, "error", "readable by everyone"),
        ("conf", 0o640, "error", "readable by its group"),
        ("key", 0o604, "error", "readable by everyone"),
        ("key", 0o620, "error", "writable by others"),
        ("conf", 0o602, "error", "the commands wg-quick runs as root"),
        ("conf", 0o610, "warning", "has mode 0610, not 0600"),
        ("dir", 0o755, "warning", "others can look into it"),
        ("dir", 0o777, "error", "writable by everyone"),
    ],
)
def test_file_modes(data, which, mode, severity, words):
    data["modes"][which]["mode"] = mode
    (problem,) = only(found(data))
    assert problem["check"] == "permissions" and problem["severity"] == severity
    assert words in problem["message"]
    assert problem["fix"].startswith(("chmod 600 ", "chmod 700 "))


def test_files_not_owned_by_root(data):
    data["modes"]["key"]["uid"] = 1000
    (problem,) = only(found(data))
    assert problem["message"] == "/etc/wireguard/wg0.key is owned by uid 1000, not root"


# ------------------------------------------------------------------ drift


def test_interface_drift(data):
    data["live"].update(public_key=PEER2, listen_port=40000, fwmark=0x10)
    data["conf"]["fwmark"] = 0x20
    data["link"] = {"mtu": 1380, "addresses": ["10.1.0.1/24", "10.9.9.9/32"]}
    data["key_file_public"] = PEER1
    messages = [p["message"] for p in only(found(data)) if p["check"] == "drift"]
    assert messages == [
        f"wg0 runs the key of public key {PEER2[:8]}..., but /etc/wireguard/wg0.conf holds "
        f"the key of {PUB[:8]}...",
        "The key file of wg0 and /etc/wireguard/wg0.conf hold different private keys",
        "wg0 listens on port 40000, /etc/wireguard/wg0.conf says 51820",
        "wg0 has fwmark 16, /etc/wireguard/wg0.conf says 32",
        "wg0 has MTU 1380, /etc/wireguard/wg0.conf says 1420",
        "Address fd01::1/64 of /etc/wireguard/wg0.conf is not on wg0",
        "wg0 has address 10.9.9.9/32, which /etc/wireguard/wg0.conf does not list",
    ]


def test_peer_drift(data):
    hub = data["live"]["peers"][PEER1]
    hub.update(
        allowed_ips=["10.1.0.2/32"], persistent_keepalive=None, preshared_key=False, endpoint=None
    )
    stranger = "q5UPfJp/qGk3uXnUz9A0nAdrK3XF1O8wpx6Wm2JwVEM="
    data["live"]["peers"][stranger] = live_peer()
    del data["live"]["peers"][PEER2]
    problems = {
        (p["severity"], p["peer"], p["message"]) for p in found(data) if p["check"] == "drift"
    }
    label = f"peer 'hub' ({PEER1[:8]}...)"
    assert problems == {
        (
            "error",
            PEER1,
            f"{label} has AllowedIPs 10.1.0.2/32 live, /etc/wireguard/wg0.conf "
            "says 10.1.0.2/32, 172.16.1.0/24",
        ),
        (
            "warning",
            PEER1,
            f"{label} has PersistentKeepalive off live, /etc/wireguard/wg0.conf says 25",
        ),
        ("error", PEER1, f"{label} has no preshared key live, /etc/wireguard/wg0.conf has one"),
        (
            "warning",
            PEER1,
            f"{label} has no live endpoint, /etc/wireguard/wg0.conf says 198.51.100.2:51820",
        ),
        (
            "error",
            PEER2,
            f"peer 'laptop' ({PEER2[:8]}...) is in /etc/wireguard/wg0.conf but not on the live wg0",
        ),
        (
            "warning",
            stranger,
            f"peer {stranger[:8]}... is on the live wg0 but not in "
            "/etc/wireguard/wg0.conf: it is gone after the next restart",
        ),
    }


def test_a_roamed_endpoint_is_only_a_note(data):
    data["live"]["peers"][PEER1]["endpoint"] = "198.51.100.99:51820"
    (problem,) = found(data)
    assert problem["severity"] == "info" and "it roamed" in problem["message"]
    assert "wireguard.reresolve wg0" in problem["fix"]


def test_pillar_drift_shows_the_changed_lines_with_keys_masked(data):
    masked = wgf_conf.mask(CONF)
    data.update(conf_masked=masked, rendered=masked.replace("MTU = 1420", "MTU = 1380"))
    (problem,) = found(data)
    assert problem["check"] == "pillar" and problem["severity"] == "warning"
    assert "(2 line(s): -MTU = 1420; +MTU = 1380)" in problem["message"]
    assert PRIV not in masked and PSK not in masked
    data["rendered"] = masked
    assert found(data) == []


# ------------------------------------------------------------------ handshakes


def test_never_handshaked_while_sending_is_an_error(data):
    data["live"]["peers"][PEER2].update(
        latest_handshake=None, latest_handshake_age=None, rx_bytes=0, tx_bytes=592
    )
    (problem,) = found(data)
    assert (problem["severity"], problem["check"], problem["peer"]) == ("error", "handshake", PEER2)
    assert problem["message"] == (
        f"peer 'laptop' ({PEER2[:8]}...) never completed a "
        "handshake, although 592 bytes were sent to it"
    )


def test_never_handshaked_without_traffic_is_a_note(data):
    peer = data["live"]["peers"][PEER2]
    peer.update(latest_handshake=None, latest_handshake_age=None, rx_bytes=0, tx_bytes=0)
    (problem,) = found(data)
    assert problem["severity"] == "info" and "nothing was sent to it" in problem["message"]
    peer["endpoint"] = None
    (problem,) = found(data)
    assert "it must dial in" in problem["message"]


def test_stale_needs_traffic_idle_is_a_note(data):
    laptop = data["live"]["peers"][PEER2]
    laptop["latest_handshake_age"] = 400
    (idle,) = found(data)
    assert idle["severity"] == "info" and "is idle" in idle["message"]
    data["samples"] = {PEER2: {"tx": 148, "rx": 0}}  # a handshake initiation
    (stale,) = found(data)
    assert (
        stale["severity"] == "error"
        and "is stale: its last handshake was 400 s ago" in (stale["message"])
    )
    # with a keepalive traffic is always sent: stale without a second sample
    data["samples"] = None
    data["live"]["peers"][PEER1]["latest_handshake_age"] = 200
    stale = only(found(data))
    assert [(p["peer"], "(persistent keepalive)" in p["message"]) for p in stale] == [(PEER1, True)]
    # the threshold is a parameter
    assert found(data, stale_after=500) == []


def test_a_lone_keepalive_between_samples_is_not_traffic(data):
    laptop = data["live"]["peers"][PEER2]
    laptop["latest_handshake_age"] = 400
    data["samples"] = {PEER2: {"tx": 32, "rx": 0}}
    (idle,) = found(data)
    assert idle["severity"] == "info" and "is idle" in idle["message"]


def test_a_peer_that_answers_between_samples_is_not_stale(data):
    laptop = data["live"]["peers"][PEER2]
    laptop["latest_handshake_age"] = 150
    data["samples"] = {PEER2: {"tx": 500, "rx": 500}}  # replies: the session works
    assert only(found(data, stale_after=120)) == []
    data["samples"] = {PEER2: {"tx": 500, "rx": 0}}
    assert [p["check"] for p in only(found(data, stale_after=120))] == ["handshake"]


def test_handshake_fix_mentions_reresolve_for_host_names(data):
    data["conf"]["peers"][0]["endpoint"] = "hub.example.net:51820"
    data["resolved"] = {
        "hub.example.net:51820": {"addresses": ["198.51.100.2:51820"], "error": None}
    }
    data["live"]["peers"][PEER2]["latest_handshake_age"] = 400
    data["samples"] = {PEER2: {"tx": 10**6, "rx": 0}}
    (stale,) = only(found(data))
    assert "salt-call wireguard.reresolve wg0 re-resolves host-name endpoints." in stale["fix"]


# ------------------------------------------------------------------ AllowedIPs


def test_the_same_prefix_in_two_peers_of_the_file(data):
    data["conf"]["peers"][1]["allowed_ips"].append("172.16.1.0/24")
    (problem,) = [p for p in found(data) if p["check"] == "allowed_ips"]
    assert problem["severity"] == "error" and problem["peer"] == PEER2
    assert "172.16.1.0/24 is in the AllowedIPs of peer 'hub'" in problem["message"]


def test_nested_prefixes_of_live_peers_are_notes(data):
    data["live"]["peers"][PEER2]["allowed_ips"] = ["172.16.1.128/25"]
    data["conf"]["peers"][1]["allowed_ips"] = ["172.16.1.128/25"]
    (problem,) = found(data)
    assert problem["severity"] == "info" and problem["peer"] == PEER2
    assert problem["message"].startswith(
        f"172.16.1.128/25 of peer 'laptop' ({PEER2[:8]}...) lies inside 172.16.1.0/24 of peer 'hub'"
    )


def test_nested_prefix_sweep():
    nets = [
        (ipaddress.ip_network(n), k)
        for n, k in [
            ("0.0.0.0/0", "gw"),
            ("10.0.0.0/8", "a"),
            ("10.1.0.0/16", "a"),
            ("10.1.2.3/32", "b"),
            ("192.168.0.0/24", "c"),
            ("::/0", "gw"),
            ("fd00::1/128", "d"),
        ]
    ]
    pairs = {(str(o), str(i)) for o, _, i, _ in wgf_checks_net.nested_prefixes(nets)}
    assert pairs == {
        ("0.0.0.0/0", "10.0.0.0/8"),
        ("0.0.0.0/0", "10.1.0.0/16"),
        ("10.1.0.0/16", "10.1.2.3/32"),
        ("0.0.0.0/0", "192.168.0.0/24"),
        ("::/0", "fd00::1/128"),
    }


# ------------------------------------------------------------------ MTU


def test_mtu_above_the_path_minus_overhead(data):
    data["underlay"]["198.51.100.2"].update(mtu=1400)  # a route with "mtu 1400"
    (problem,) = found(data)
    assert problem["check"] == "mtu" and problem["severity"] == "warning"
    assert problem["peer"] == PEER1
    assert "carries 1400 bytes, and WireGuard over IPv4 adds 60" in problem["message"]
    assert (
        problem["fix"] == "Set mtu: 1340 for wg0 in pillar and run salt-call state.apply "
        "wireguard on this minion."
    )


def test_mtu_over_an_ipv6_underlay_needs_80_bytes(data):
    data["live"]["peers"][PEER2]["endpoint"] = "[2001:db8::7]:40000"
    data["underlay"]["2001:db8::7"] = {"dev": "eth0", "mtu": None, "dev_mtu": 1480, "error": None}
    (problem,) = found(data)
    assert "WireGuard over IPv6 adds 80" in problem["message"]
    assert "Set mtu: 1400 for wg0" in problem["fix"]
    data["link"]["mtu"] = 1400
    data["conf"]["mtu"] = 1400
    assert found(data) == []


def test_endpoint_routed_into_the_tunnel_itself(data):
    data["underlay"]["203.0.113.7"]["dev"] = "wg0"
    (problem,) = found(data)
    assert problem["severity"] == "error" and "is routed into wg0 itself" in problem["message"]


# ------------------------------------------------------------------ routes, forwarding


def test_routes_missing_live_and_allowed_ips_without_a_route(data):
    data["routes"] = ["10.1.0.0/24", "fd01::/64"]
    problems = {(p["severity"], p["message"]) for p in found(data) if p["check"] == "routes"}
    assert problems == {
        ("error", "The route 172.16.1.0/24 through wg0 is missing"),
        (
            "warning",
            f"Nothing routes 172.16.1.0/24 (peer 'hub' ({PEER1[:8]}...)'s AllowedIPs)"
            " into wg0, so this host never sends traffic for it into the tunnel",
        ),
    }


def test_a_default_route_in_another_table_covers_everything(data):
    data["live"]["peers"][PEER1]["allowed_ips"] = ["0.0.0.0/0", "::/0"]
    data["conf"]["peers"][0]["allowed_ips"] = ["0.0.0.0/0", "::/0"]
    data["conf"]["routes"] = []
    data["routes"] = ["0.0.0.0/0", "::/0"]  # wg-quick's table 51820
    assert only(found(data)) == []


def test_routes_come_from_pillar_when_pillar_has_the_interface(data):
    pillar = {
        "absent": False,
        "enabled": True,
        "peers": {},
        "routes": ["192.168.7.0/24"],
        "forwarding": False,
        "masquerade": [],
        "ipv6": True,
    }
    messages = [p["message"] for p in found(dict(data, pillar=pillar)) if p["check"] == "routes"]
    assert messages == ["The route 192.168.7.0/24 through wg0 is missing"]


@pytest.mark.parametrize(
    "pillar, forwarding, expected",
    [
        (
            {"forwarding": True, "masquerade": [], "ipv6": False},
            {"ipv4": False, "ipv6": False},
            ["net.ipv4.ip_forward"],
        ),
        (
            {"forwarding": True, "masquerade": [], "ipv6": True},
            {"ipv4": True, "ipv6": False},
            ["net.ipv6.conf.all.forwarding"],
        ),
        (
            {"forwarding": False, "masquerade": ["eth0"], "ipv6": False},
            {"ipv4": False, "ipv6": False},
            ["net.ipv4.ip_forward"],
        ),
        ({"forwarding": True, "masquerade": [], "ipv6": True}, {"ipv4": True, "ipv6": True}, []),
        (
            {"forwarding": False, "masquerade": [], "ipv6": False},
            {"ipv4": False, "ipv6": False},
            [],
        ),
    ],
)
def test_forwarding_wanted_but_off(data, pillar, forwarding, expected):
    pillar = dict(pillar, absent=False, enabled=True, peers={}, routes=["172.16.1.0/24"])
    problems = [
        p
        for p in found(dict(data, pillar=pillar, forwarding=forwarding))
        if p["check"] == "forwarding"
    ]
    assert [p["message"].split("but ")[1].split(" is")[0] for p in problems] == expected
    assert all(p["severity"] == "error" for p in problems)


# ------------------------------------------------------------------ endpoints


def test_an_endpoint_that_does_not_resolve(data):
    data["conf"]["peers"][0]["endpoint"] = "gone.example.net:51820"
    data["resolved"] = {
        "gone.example.net:51820": {
            "addresses": [],
            "error": "Endpoint 'gone.example.net:51820' does not resolve",
        }
    }
    (problem,) = found(data)
    assert problem["check"] == "endpoint" and problem["severity"] == "error"
    assert problem["message"] == (
        f"The endpoint gone.example.net:51820 of peer 'hub' ({PEER1[:8]}...) does not resolve"
    )


# ------------------------------------------------------------------ the whole report


def report(data, problems=()):
    """``wireguard.check``'s result for the gathered interface ``data``."""
    return wgf_health.report({"wg0": copy.deepcopy(data)}, list(problems))


def test_check_returns_the_documented_structure(data):
    result = report(data)
    assert set(result) == {"interfaces", "problems", "ok", "summary"}
    assert result["ok"] and result["problems"] == []
    wg0 = result["interfaces"]["wg0"]
    assert wg0["ok"] and wg0["problems"] == []
    facts = wg0["facts"]
    assert facts["public_key"] == PUB and facts["listen_port"] == 51820
    assert facts["service"] == "wg-quick@wg0"
    assert facts["peers"][PEER1] == {
        "name": "hub",
        "endpoint": "198.51.100.2:51820",
        "endpoint_resolved": ["198.51.100.2:51820"],
        "allowed_ips": ["10.1.0.2/32", "172.16.1.0/24"],
        "persistent_keepalive": 25,
    }
    assert facts["link_states"] == {PEER1: "up", PEER2: "up"}
    assert result["summary"] == (
        "wireguard check: OK (0 error(s), 0 warning(s), 0 note(s) on 1 interface(s))\nwg0 (up): ok"
    )
    text = json.dumps(result)
    assert PRIV not in text and PSK not in text


def test_summary_lists_problems_with_their_fix(data):
    data["modes"]["conf"]["mode"] = 0o644
    result = report(data)
    assert not result["ok"] and not result["interfaces"]["wg0"]["ok"]
    assert result["summary"].splitlines() == [
        "wireguard check: PROBLEMS (1 error(s), 0 warning(s), 0 note(s) on 1 interface(s))",
        "wg0 (up): 1 error(s), 0 warning(s)",
        "  [error] permissions: /etc/wireguard/wg0.conf (mode 0644) is readable by everyone,"
        " and it holds the interface's private key. Fix: chmod 600 /etc/wireguard/wg0.conf,"
        " then replace the key if others may have read it.",
    ]


def test_problems_of_the_minion_make_the_report_not_ok(data):
    problems = [
        wgf_findings.problem("error", "pillar", "Invalid wireguard pillar", "Fix it."),
        wgf_findings.problem("error", "live", "The live interfaces cannot be read", "Install wg."),
    ]
    result = report(data, problems)
    assert [p["check"] for p in result["problems"]] == ["pillar", "live"]
    assert not result["ok"] and result["interfaces"]["wg0"]["ok"]
    assert "  [error] Invalid wireguard pillar. Fix: Fix it." in result["summary"]


def test_the_facts_judge_each_peer_with_the_one_rule(data):
    laptop = data["live"]["peers"][PEER2]
    laptop["latest_handshake_age"] = 400
    assert report(data)["interfaces"]["wg0"]["facts"]["link_states"][PEER2] == "idle"
    data["samples"] = {PEER2: {"tx": 148, "rx": 0}}
    assert report(data)["interfaces"]["wg0"]["facts"]["link_states"][PEER2] == "stale"


def test_messages_name_the_minions_real_service(data):
    """Alpine runs wg-quick under OpenRC: the fix says so."""
    down = dict(data, live=None, link=None, routes=None, service="wg-quick.wg0", init="openrc")
    (problem,) = only(found(down))
    assert problem["fix"].startswith("Start it: rc-service wg-quick.wg0 start")


def test_check_arguments_are_refused_by_the_shared_rules():
    """``wireguard.check`` refuses its arguments with the rules of ``wgf_addr``."""
    with pytest.raises(SaltInvocationError, match="interface name"):
        wgf_addr.check_interface_name("bad name!")
    with pytest.raises(SaltInvocationError, match="stale_after"):
        wgf_addr.integer(0, "stale_after", 1, 2**31, "stale_after")
