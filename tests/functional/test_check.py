"""``wireguard.check``, ``wireguard.reresolve`` and the ``wireguard`` beacon against real
wireguard-go interfaces in network namespaces (issue 7)."""

import json
import os
import socket
import subprocess
import time

import pytest
import salt.loader

from tests.support.confs import write_conf
from tests.support.minion import REPO

pytestmark = pytest.mark.functional

FAKE_DOMAIN = ".wgtest.invalid"


@pytest.fixture
def fake_dns(monkeypatch):
    """Names under .wgtest.invalid resolve to what the test says (or not at all)."""
    table = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host.endswith(FAKE_DOMAIN):
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", (table[host], int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def write_with_r2(config_dir, pair, remote2, peers=None, **kwargs):
    """The conf of ``pair``'s interface: its healthy peer r2 first, then ``peers``
    (``{name: (public key, allowed_ips, endpoint)}``), as ``write_conf`` writes them."""
    r2 = {"r2": (remote2, ["10.77.0.2/32"], "198.18.10.2:51822")}
    write_conf(config_dir, pair, {**r2, **(peers or {})}, **kwargs)


def pillar_with_r2(pair, remote2, persistent_keepalive=None, **options):
    """Pillar of ``pair``'s interface with its peer r2 (and r2's keepalive, if any),
    plus the interface ``options``."""
    r2 = {"public_key": remote2, "allowed_ips": ["10.77.0.2/32"], "endpoint": "198.18.10.2:51822"}
    if persistent_keepalive:
        r2["persistent_keepalive"] = persistent_keepalive
    iface = {"address": "10.77.0.1/24", "listen_port": 51820, "peers": {"r2": r2}, **options}
    return {"wireguard": {"interfaces": {pair.ifname: iface}}}


def problems_of(result, ifname, severities=("error", "warning")):
    return [p for p in result["interfaces"][ifname]["problems"] if p["severity"] in severities]


def checks(problems):
    return sorted({p["check"] for p in problems})


def test_a_healthy_interface_is_ok_and_no_secret_is_returned(loaders, pair, config_dir, remote2):
    result = loaders.modules.wireguard.check(pair.ifname, config_dir=str(config_dir))
    assert result["ok"], result["summary"]
    iface = result["interfaces"][pair.ifname]
    assert iface["problems"] == [] and iface["ok"]
    facts = iface["facts"]
    assert facts["live"] and facts["listen_port"] == 51820
    assert facts["addresses"] == ["10.77.0.1/24"] and facts["mtu"] == 1420
    assert facts["public_key"] == loaders.modules.wireguard.pubkey(pair.local_key)
    assert facts["peers"][remote2]["name"] == "r2"
    assert facts["peers"][remote2]["endpoint_resolved"] == ["198.18.10.2:51822"]
    assert facts["forwarding"] == {"ipv4": False, "ipv6": False}
    assert result["summary"].startswith("wireguard check: OK")
    assert pair.local_key not in json.dumps(result)
    assert pair.keys[2] not in json.dumps(result)


def test_drift_between_the_file_and_the_live_interface(loaders, pair, config_dir, remote2):
    wg = loaders.modules.wireguard
    stranger = wg.pubkey(wg.genkey())
    wg.set_peer(pair.ifname, stranger, allowed_ips=["10.77.0.50/32"])
    wg.set_peer(
        pair.ifname, remote2, allowed_ips=["10.77.0.2/32", "10.77.9.0/24"], persistent_keepalive=15
    )
    pair.local.run(["ip", "address", "add", "10.77.1.1/24", "dev", pair.ifname])
    pair.local.run(["wg", "set", pair.ifname, "listen-port", "51999"])
    missing = wg.pubkey(wg.genkey())
    write_with_r2(
        config_dir,
        pair,
        remote2,
        {"gone": (missing, ["10.77.0.60/32"], None)},
        extra="MTU = 1380",
    )

    result = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    drift = [p for p in problems_of(result, pair.ifname) if p["check"] == "drift"]
    messages = "\n".join(p["message"] for p in drift)
    by_peer = {(p["severity"], p["peer"]): p["message"] for p in drift if p["peer"]}
    assert by_peer[("warning", stranger)].endswith("gone after the next restart")
    assert by_peer[("error", missing)].startswith(f"peer 'gone' ({missing[:8]}...) is in ")
    assert "has AllowedIPs 10.77.0.2/32, 10.77.9.0/24 live" in messages
    assert "has PersistentKeepalive 15 live, " in messages
    assert "listens on port 51999" in messages and "says 51820" in messages
    assert "has MTU 1420" in messages and "says 1380" in messages
    assert "has address 10.77.1.1/24, which" in messages
    assert not result["ok"]
    for problem in problems_of(result, pair.ifname):
        assert problem["fix"] and problem["fix"].endswith(".")


def test_group_or_world_readable_files_are_errors(loaders, pair, config_dir, remote2):
    wg = loaders.modules.wireguard
    conf = config_dir / f"{pair.ifname}.conf"
    key = config_dir / f"{pair.ifname}.key"
    key.write_text(pair.local_key + "\n")
    for conf_mode, key_mode, expected in (
        (0o644, 0o600, {str(conf)}),
        (0o600, 0o640, {str(key)}),
        (0o600, 0o600, set()),
    ):
        os.chmod(conf, conf_mode)
        os.chmod(key, key_mode)
        result = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
        errors = [p for p in problems_of(result, pair.ifname) if p["check"] == "permissions"]
        assert {p["message"].split(" ")[0] for p in errors} == expected
        assert all(p["severity"] == "error" and "readable by" in p["message"] for p in errors)
        assert all(p["fix"].startswith("chmod 600 ") for p in errors)
    os.chmod(config_dir, 0o755)
    result = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    assert [p["message"] for p in problems_of(result, pair.ifname)] == [
        f"{config_dir} has mode 0755: others can look into it"
    ]


def test_a_peer_that_never_answers_is_an_error(loaders, pair, config_dir, remote2):
    wg = loaders.modules.wireguard
    dead = wg.pubkey(wg.genkey())
    wg.set_peer(pair.ifname, dead, allowed_ips=["10.77.0.3/32"], endpoint="198.18.10.2:9")
    write_with_r2(
        config_dir,
        pair,
        remote2,
        {"dead": (dead, ["10.77.0.3/32"], "198.18.10.2:9")},
    )
    pair.local.run(["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.77.0.3"], check=False)
    result = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    (problem,) = problems_of(result, pair.ifname)
    assert problem["check"] == "handshake" and problem["peer"] == dead
    assert problem["message"].startswith(f"peer 'dead' ({dead[:8]}...) never completed")


def test_stale_and_idle_peers(loaders, pair, config_dir, remote2):
    """No handshake for longer than stale_after: stale while traffic is sent, idle
    otherwise (the transfer counters are sampled twice)."""
    wg = loaders.modules.wireguard
    time.sleep(3.2)
    idle = wg.check(pair.ifname, config_dir=str(config_dir), stale_after=2, sample=0.5)
    assert idle["ok"], idle["summary"]
    (note,) = idle["interfaces"][pair.ifname]["problems"]
    assert note["severity"] == "info" and "is idle" in note["message"]

    pair.remote.run(["ip", "link", "del", f"{pair.ifname[:11]}r2"])
    pinger = pair.local.popen(
        ["ping", "-i", "0.2", "10.77.0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        stale = wg.check(pair.ifname, config_dir=str(config_dir), stale_after=2, sample=1)
    finally:
        pinger.kill()
        pinger.wait()
    (problem,) = problems_of(stale, pair.ifname)
    assert problem["check"] == "handshake" and problem["peer"] == remote2
    assert "is stale: its last handshake was" in problem["message"]
    assert not stale["ok"]


def test_allowed_ips_in_two_peers_and_nested(loaders, pair, config_dir, remote2):
    wg = loaders.modules.wireguard
    wide = wg.pubkey(wg.genkey())
    wg.set_peer(pair.ifname, wide, allowed_ips=["10.77.0.0/28"])
    other = wg.pubkey(wg.genkey())
    write_with_r2(
        config_dir,
        pair,
        remote2,
        {"wide": (wide, ["10.77.0.0/28"], None), "other": (other, ["10.77.0.2/32"], None)},
    )
    result = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    mine = [p for p in result["interfaces"][pair.ifname]["problems"] if p["check"] == "allowed_ips"]
    severities = sorted((p["severity"], p["peer"]) for p in mine)
    assert severities == [("error", other), ("info", remote2)], mine
    nested = next(p for p in mine if p["severity"] == "info")
    assert "10.77.0.2/32 of peer 'r2'" in nested["message"]
    assert "inside 10.77.0.0/28 of peer 'wide'" in nested["message"]


def test_mtu_above_what_the_path_to_the_endpoint_carries(loaders, pair, config_dir, remote2):
    wg = loaders.modules.wireguard
    route = json.loads(pair.local.run(["ip", "-j", "route", "get", "198.18.10.2"]).stdout)[0]
    pair.local.run(["ip", "route", "add", "198.18.10.2/32", "dev", route["dev"], "mtu", "1400"])
    result = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    (problem,) = problems_of(result, pair.ifname)
    assert problem["check"] == "mtu" and problem["severity"] == "warning"
    assert "carries 1400 bytes, and WireGuard over IPv4 adds 60" in problem["message"]
    assert problem["fix"].startswith(f"Set mtu: 1340 for {pair.ifname} in pillar")
    pair.local.run(["ip", "link", "set", pair.ifname, "mtu", "1340"])
    after = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    assert after["ok"], after["summary"]


def test_routes_and_forwarding_that_pillar_wants(loaders, pair, config_dir, remote2, set_pillar):
    pair.local.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
    set_pillar(
        pillar_with_r2(
            pair,
            remote2,
            private_key=pair.local_key,
            routes=["172.31.0.0/24"],
            forwarding=True,
        )
    )
    wg = loaders.modules.wireguard
    assert loaders.states.wireguard.config(pair.ifname, config_dir=str(config_dir))["result"]
    wg.set_peer(pair.ifname, remote2, allowed_ips=["10.77.0.2/32", "172.30.0.0/24"])

    result = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    found = {(p["check"], p["severity"]): p for p in problems_of(result, pair.ifname)}
    assert set(found) == {
        ("routes", "error"),
        ("routes", "warning"),
        ("forwarding", "error"),
        ("drift", "error"),
    }, result["summary"]
    assert found[("routes", "error")]["message"] == (
        f"The route 172.31.0.0/24 through {pair.ifname} is missing"
    )
    assert found[("routes", "warning")]["message"].startswith("Nothing routes 172.30.0.0/24")
    assert "net.ipv4.ip_forward is 0" in found[("forwarding", "error")]["message"]

    wg.set_peer(pair.ifname, remote2, allowed_ips=["10.77.0.2/32"])
    pair.local.run(["ip", "route", "add", "172.31.0.0/24", "dev", pair.ifname, "proto", "static"])
    pair.local.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    fixed = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    assert fixed["ok"], fixed["summary"]


def test_pillar_and_file_that_differ(loaders, pair, config_dir, remote2, set_pillar):
    set_pillar(pillar_with_r2(pair, remote2, persistent_keepalive=25))
    wg = loaders.modules.wireguard
    result = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    (problem,) = problems_of(result, pair.ifname)
    assert problem["check"] == "pillar" and "+PersistentKeepalive = 25" in problem["message"]
    assert pair.local_key not in json.dumps(result)


def test_an_endpoint_that_does_not_resolve(loaders, pair, config_dir, remote2, fake_dns):
    wg = loaders.modules.wireguard
    lost = wg.pubkey(wg.genkey())
    wg.set_peer(pair.ifname, lost, allowed_ips=["10.77.0.4/32"])
    write_with_r2(
        config_dir,
        pair,
        remote2,
        {"lost": (lost, ["10.77.0.4/32"], f"gone{FAKE_DOMAIN}:51820")},
    )
    result = wg.check(pair.ifname, config_dir=str(config_dir), sample=0)
    found = {p["check"]: p for p in problems_of(result, pair.ifname)}
    assert found["endpoint"]["message"] == (
        f"The endpoint gone{FAKE_DOMAIN}:51820 of peer 'lost' ({lost[:8]}...) does not resolve"
    )
    assert found["endpoint"]["peer"] == lost
    assert found["drift"]["message"].endswith(
        f"has no live endpoint, {config_dir / pair.ifname}.conf says gone{FAKE_DOMAIN}:51820"
    )


def test_reresolve_finds_a_peer_whose_name_moved(loaders, pair, config_dir, remote2, fake_dns):
    wg = loaders.modules.wireguard
    name = f"r2{FAKE_DOMAIN}"
    write_conf(config_dir, pair, {"r2": (remote2, ["10.77.0.2/32"], f"{name}:51822")})
    # the peer "moved": its name now points to 198.18.10.2, the live endpoint is the old one
    wg.set_peer(pair.ifname, remote2, endpoint="198.18.10.77:51822")
    fake_dns[name] = "198.18.10.2"

    predicted = wg.reresolve(pair.ifname, config_dir=str(config_dir), test=True)
    assert predicted[pair.ifname]["r2"]["result"] == "would change"
    assert wg.show(pair.ifname)[pair.ifname]["peers"][remote2]["endpoint"] == ("198.18.10.77:51822")

    done = wg.reresolve(pair.ifname, peer="r2", config_dir=str(config_dir))
    assert done == {
        pair.ifname: {
            "r2": {
                "public_key": remote2,
                "endpoint": f"{name}:51822",
                "old": "198.18.10.77:51822",
                "new": "198.18.10.2:51822",
                "result": "changed",
                "comment": f"{name}:51822 resolved to 198.18.10.2:51822",
            }
        }
    }
    assert wg.show(pair.ifname)[pair.ifname]["peers"][remote2]["endpoint"] == ("198.18.10.2:51822")
    again = wg.reresolve(config_dir=str(config_dir))
    assert again[pair.ifname]["r2"]["result"] == "unchanged"
    # an address endpoint is not a name: nothing to re-resolve for that peer
    write_with_r2(config_dir, pair, remote2)
    assert wg.reresolve(pair.ifname, config_dir=str(config_dir)) == {pair.ifname: {}}
    skipped = wg.reresolve(pair.ifname, peer=remote2, config_dir=str(config_dir))
    assert skipped[pair.ifname]["r2"]["result"] == "skipped"
    assert skipped[pair.ifname]["r2"]["comment"] == (
        "Nothing to re-resolve: its endpoint 198.18.10.2:51822 is an address, not a name"
    )
    with pytest.raises(Exception, match="no peer 'nobody' in the config of"):
        wg.reresolve(pair.ifname, peer="nobody", config_dir=str(config_dir))


@pytest.fixture
def beacon(loaders, minion_opts, config_dir):
    opts = dict(minion_opts, beacons_dirs=[str(REPO / "_beacons")])
    beacons = salt.loader.beacons(opts, loaders.modules)
    assert beacons["wireguard.validate"]([{"stale_after": 2}, {"interval": 1}])[0]

    def look():
        return beacons["wireguard.beacon"]([{"stale_after": 2}, {"_beacon_name": "wireguard"}])

    return look


def test_beacon_fires_when_a_peer_goes_stale_and_when_it_recovers(loaders, pair, remote2, beacon):
    assert beacon() == []
    name = f"{pair.ifname[:11]}r2"
    pair.remote.run(["ip", "link", "del", name])
    pinger = pair.local.popen(
        ["ping", "-i", "0.2", "10.77.0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        events = []
        deadline = time.monotonic() + 20
        while not events and time.monotonic() < deadline:
            time.sleep(0.5)
            events = beacon()
        (stale,) = events
        assert stale["tag"] == "stale" and stale["interface"] == pair.ifname
        assert stale["peer"] == remote2 and stale["age"] > 2
        assert stale["endpoint"] == "198.18.10.2:51822" and stale["stale_after"] == 2
        assert beacon() == []  # fired once, not at every look

        # the peer comes back (same key and port) and dials in
        pair.remote.wireguard(name, pair.keys[2], "10.77.0.2/32", 51822)
        pair.remote.run(
            [
                "wg",
                "set",
                name,
                "peer",
                loaders.modules.wireguard.pubkey(pair.local_key),
                "allowed-ips",
                "10.77.0.1/32",
                "endpoint",
                "198.18.10.1:51820",
            ]
        )
        pair.remote.run(["ip", "route", "add", "10.77.0.1/32", "dev", name])
        pair.remote.run(["ping", "-c", "1", "-W", "5", "10.77.0.1"], check=False)
        events = []
        deadline = time.monotonic() + 20
        while not events and time.monotonic() < deadline:
            events = beacon()
            time.sleep(0.2)
        (recovered,) = events
        assert recovered["tag"] == "recovered" and recovered["peer"] == remote2
        assert recovered["age"] <= 2 and recovered["stale_for"] >= 0
    finally:
        pinger.kill()
        pinger.wait()


def test_key_age_is_reported_and_past_max_key_age_warned(
    loaders, pair, config_dir, remote2, set_pillar
):
    key_path = config_dir / f"{pair.ifname}.key"
    key_path.write_text(pair.local_key + "\n")
    os.chmod(key_path, 0o600)
    forty_days_ago = time.time() - 40 * 86400
    os.utime(key_path, (forty_days_ago, forty_days_ago))

    def key_age(max_key_age):
        set_pillar(pillar_with_r2(pair, remote2, max_key_age=max_key_age))
        result = loaders.modules.wireguard.check(pair.ifname, config_dir=str(config_dir), sample=0)
        assert pair.local_key not in json.dumps(result)
        iface = result["interfaces"][pair.ifname]
        return iface["facts"]["key_age_days"], [
            p for p in iface["problems"] if p["check"] == "key_age"
        ]

    age, warned = key_age(30)
    assert 39.9 <= age <= 40.1
    (problem,) = warned
    assert problem["severity"] == "warning"
    assert "40 days old, older than max_key_age (30 days)" in problem["message"]
    assert key_age(60)[1] == []
