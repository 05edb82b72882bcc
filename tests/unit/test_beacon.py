"""The ``wireguard`` beacon (stale and recovered events) and the reactor example."""

import pathlib

import pytest
import salt.config
import salt.utils.templates
import yaml
from salt.exceptions import CommandExecutionError

from tests.unit.conftest import REPO, load

PEER1 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PEER2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="


def peer(age=10, tx=1000, rx=1000, keepalive=None, endpoint="198.51.100.2:51820"):
    return {"preshared_key": False, "endpoint": endpoint, "allowed_ips": ["10.1.0.2/32"],
            "latest_handshake": None if age is None else 1_000_000 - age,
            "latest_handshake_age": age, "rx_bytes": rx, "tx_bytes": tx,
            "persistent_keepalive": keepalive}


class Minion:
    """What the beacon sees: ``wireguard.show`` and the config file's peer names."""

    def __init__(self):
        self.interfaces = {"wg0": {"public_key": "x", "listen_port": 51820, "fwmark": None,
                                   "peers": {PEER1: peer(), PEER2: peer()}}}
        self.fail = False

    def show(self, interface=None):
        if self.fail:
            raise CommandExecutionError("The 'wg' command is missing")
        return {k: {**v, "peers": {p: dict(d) for p, d in v["peers"].items()}}
                for k, v in self.interfaces.items()}

    def config_peers(self, interface):
        if interface != "wg0":
            raise CommandExecutionError("no file")
        return {PEER1: {"name": "hub"}}

    def set(self, key, interface="wg0", **values):
        entry = self.interfaces[interface]["peers"][key]
        entry.update({{"age": "latest_handshake_age", "tx": "tx_bytes", "rx": "rx_bytes",
                       "keepalive": "persistent_keepalive"}[k]: v for k, v in values.items()})
        if "age" in values:
            entry["latest_handshake"] = None if values["age"] is None else 1_000_000 - values["age"]


@pytest.fixture
def minion():
    return Minion()


@pytest.fixture
def beacon(minion, monkeypatch):
    module = load("_beacons/wireguard.py", "wireguard_beacon_under_test")
    module.__salt__ = {"wireguard.show": minion.show,
                       "wireguard.config_peers": minion.config_peers}
    module.__context__ = {}
    clock = {"now": 5000.0}
    monkeypatch.setattr(module.time, "time", lambda: clock["now"])
    module.clock = clock
    return module


def look(beacon, *config):
    config = list(config) or [{"stale_after": 180}]
    return beacon.beacon([*config, {"_beacon_name": "wireguard"}])


# ------------------------------------------------------------------ validate

@pytest.mark.parametrize("config", [
    [],
    [{"interval": 10}],
    [{"interval": 10}, {"stale_after": 300}, {"renotify": 0}, {"interfaces": ["wg0", "wg1"]}],
    [{"disable_during_state_run": True}, {"enabled": True}],
])
def test_valid_configurations(beacon, config):
    assert beacon.validate(config) == (True, "Valid beacon configuration")


@pytest.mark.parametrize("config, words", [
    ({"stale_after": 10}, "must be a list of mappings"),
    ([{"stale_afer": 10}], "unknown key(s) stale_afer"),
    ([{"stale_after": 0}], "stale_after must be a whole number of seconds >= 1"),
    ([{"stale_after": "180"}], "stale_after must be"),
    ([{"stale_after": True}], "stale_after must be"),
    ([{"renotify": -1}], "renotify must be"),
    ([{"interfaces": "wg0"}], "interfaces must be a list"),
    ([{"interfaces": [""]}], "interfaces must be a list"),
])
def test_invalid_configurations(beacon, config, words):
    valid, message = beacon.validate(config)
    assert not valid and words in message


# ------------------------------------------------------------------ events

def test_stale_then_recovered(beacon, minion):
    assert look(beacon) == []  # first look: healthy
    minion.set(PEER1, age=200)
    assert look(beacon) == []  # old handshake, but nothing sent: idle, not stale
    minion.set(PEER1, age=210, tx=1148)
    beacon.clock["now"] += 10
    (event,) = look(beacon)
    assert event == {"tag": "stale", "interface": "wg0", "peer": PEER1, "name": "hub",
                     "endpoint": "198.51.100.2:51820", "age": 210,
                     "latest_handshake": 1_000_000 - 210, "stale_after": 180}
    minion.set(PEER1, age=220, tx=1296)
    beacon.clock["now"] += 10
    assert look(beacon) == []  # fired once, not at every look
    minion.set(PEER1, age=1, rx=1100)
    beacon.clock["now"] += 35
    (event,) = look(beacon)
    assert event["tag"] == "recovered" and event["peer"] == PEER1 and event["age"] == 1
    assert event["stale_for"] == 45
    assert look(beacon) == []


def test_a_stale_peer_that_answers_again_has_recovered(beacon, minion):
    """Found again at a new address, a peer keeps its session: no new handshake, but
    its answers arrive."""
    look(beacon)
    minion.set(PEER1, age=200, tx=2000)
    assert [e["tag"] for e in look(beacon)] == ["stale"]
    minion.set(PEER1, age=205, tx=2500, rx=1400)
    beacon.clock["now"] += 5
    (event,) = look(beacon)
    assert (event["tag"], event["age"], event["stale_for"]) == ("recovered", 205, 5)


def test_counters_from_long_ago_say_nothing(beacon, minion):
    """After a long pause (the beacon was off), the first look is a first look again."""
    look(beacon)
    minion.set(PEER1, age=400, tx=1032)  # a single keepalive sent meanwhile
    beacon.clock["now"] += 3600
    assert look(beacon) == []


def test_a_lone_keepalive_is_not_traffic(beacon, minion):
    look(beacon)
    minion.set(PEER1, age=200, tx=1032)  # the keepalive sent 10 s after an answer
    assert look(beacon) == []
    minion.set(PEER1, age=201, tx=1032 + 148)  # a handshake initiation: someone sends
    assert [e["tag"] for e in look(beacon)] == ["stale"]


def test_a_peer_that_answers_is_not_stale(beacon, minion):
    look(beacon)
    minion.set(PEER1, age=200, tx=5000, rx=5000)  # traffic both ways, no rekey yet
    assert look(beacon) == []


def test_a_keepalive_means_traffic_is_sent(beacon, minion):
    minion.set(PEER2, age=400, keepalive=25)
    (event,) = look(beacon)  # already at the first look
    assert (event["tag"], event["peer"], event["name"]) == ("stale", PEER2, None)


def test_never_handshaked_needs_a_second_look(beacon, minion):
    minion.set(PEER2, age=None, tx=0, rx=0, keepalive=25)
    assert look(beacon) == []  # just added: its first handshake may be on the way
    minion.set(PEER2, tx=148)
    (event,) = look(beacon)
    assert event["tag"] == "stale" and event["age"] is None


def test_a_still_stale_peer_is_reported_again_after_renotify(beacon, minion):
    config = [{"stale_after": 180}, {"renotify": 60}]
    look(beacon, *config)
    minion.set(PEER1, age=300, tx=2000)
    assert [e["tag"] for e in look(beacon, *config)] == ["stale"]
    beacon.clock["now"] += 30
    assert look(beacon, *config) == []
    beacon.clock["now"] += 30
    (again,) = look(beacon, *config)
    assert again["tag"] == "stale" and again["stale_for"] == 60
    beacon.clock["now"] += 30
    assert look(beacon, *[{"stale_after": 180}, {"renotify": 0}]) == []


def test_only_the_configured_interfaces(beacon, minion):
    minion.interfaces["wg1"] = {"public_key": "y", "listen_port": None, "fwmark": None,
                                "peers": {PEER1: peer(age=900, keepalive=5)}}
    events = look(beacon, {"stale_after": 180}, {"interfaces": ["wg1"]})
    assert [(e["interface"], e["name"]) for e in events] == [("wg1", None)]


def test_state_of_removed_peers_is_forgotten(beacon, minion):
    minion.set(PEER1, age=900, keepalive=5)
    assert len(look(beacon)) == 1
    del minion.interfaces["wg0"]["peers"][PEER1]
    look(beacon)
    assert set(beacon.__context__["wireguard.beacon"]) == {f"wg0 {PEER2}"}
    minion.interfaces["wg0"]["peers"][PEER1] = peer(age=900, keepalive=5)
    assert [e["tag"] for e in look(beacon)] == ["stale"]  # a new outage of a new peer


def test_no_wg_means_no_event(beacon, minion, monkeypatch):
    logged = []
    monkeypatch.setattr(beacon.log, "warning", lambda *args: logged.append(args[0] % args[1:]))
    minion.fail = True
    assert look(beacon) == []
    assert logged == ["wireguard beacon: cannot read the live interfaces: "
                      "The 'wg' command is missing"]


def test_judge_is_pure(beacon):
    state, tag = beacon._judge(None, peer(age=5), 180, 0.0)
    assert tag is None and state == {"stale": False, "tx": 1000, "rx": 1000, "since": None,
                                     "notified": None, "at": 0.0}
    state, tag = beacon._judge(state, peer(age=500, tx=1100), 180, 7.0)
    assert tag == "stale" and state["since"] == 7.0
    state, tag = beacon._judge(state, peer(age=2, tx=1200, rx=1100), 180, 9.0)
    assert tag == "recovered" and not state["stale"]


# ------------------------------------------------------------------ reactor example

REACTOR = pathlib.Path(REPO) / "reactor" / "wireguard-stale.sls"


def render_reactor(data):
    opts = salt.config.minion_config(None)
    text = salt.utils.templates.render_jinja_tmpl(
        REACTOR.read_text(), {"data": data, "opts": opts, "saltenv": "base", "sls": "r",
                              "tag": "salt/beacon/x/wireguard/stale"})
    return yaml.safe_load(text)


def test_reactor_reresolves_the_stale_peer_on_the_minion_that_saw_it():
    rendered = render_reactor({"id": "site-a", "interface": "wg0", "peer": PEER1,
                               "name": "hub", "age": 300})
    ((sid, body),) = rendered.items()
    assert body == {"local.wireguard.reresolve": [
        {"tgt": "site-a"}, {"tgt_type": "list"},
        {"args": [{"interface": "wg0"}, {"peer": PEER1}]}]}
    assert sid == "wireguard-reresolve-wg0-xTIBA5rb"


@pytest.mark.parametrize("data", [
    {"id": "site-a", "interface": "wg0\n  - x: y", "peer": PEER1},
    {"id": "site-a", "interface": "wg0", "peer": PEER1 + "\n"},
    {"id": "site-a", "interface": "wg0", "peer": "not a key"},
    {"id": "*", "interface": "wg0", "peer": PEER1},
    {"id": "a,b", "interface": "wg0", "peer": PEER1},
    {"interface": "wg0", "peer": PEER1},
    {"id": "site-a", "interface": ["wg0"], "peer": PEER1},
])
def test_reactor_ignores_events_that_do_not_look_right(data):
    assert render_reactor(data) is None
