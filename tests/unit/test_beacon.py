"""The rule the ``wireguard`` beacon fires by (``wgf_staleness.link_states``), its
dunder-free parts (``validate``, ``_transition``), and the reactor example.

The beacon's glue (``__salt__``, ``__context__``, event fields) is tested for real in
tests/functional/test_check.py and tests/e2e/test_audit.py.
"""

import pathlib

import pytest
import salt.config
import salt.utils.templates
import yaml

import wgf_staleness
from tests.unit.conftest import REPO, load

PEER1 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PEER2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="


@pytest.fixture(scope="module")
def beacon():
    """The beacon as a plain module: no dunder is set, only pure functions are called."""
    return load("_beacons/wireguard.py", "wireguard_beacon_under_test")


def peer(age=10, tx=1000, rx=1000, keepalive=None, endpoint="198.51.100.2:51820"):
    """One peer as ``wgf_dump.parse`` gives it."""
    return {
        "preshared_key": False,
        "endpoint": endpoint,
        "allowed_ips": ["10.1.0.2/32"],
        "latest_handshake": None if age is None else 1_000_000 - age,
        "latest_handshake_age": age,
        "rx_bytes": rx,
        "tx_bytes": tx,
        "persistent_keepalive": keepalive,
    }


def shown(**peers):
    """``wireguard.show`` with these peers on wg0."""
    return {"wg0": {"public_key": "x", "listen_port": 51820, "fwmark": None, "peers": peers}}


class Looks:
    """The beacon's successive looks: ``wireguard.link_states`` with the previous result
    as ``since``, and ``_transition`` on each peer's record."""

    def __init__(self, beacon, stale_after=180, renotify=0):
        self.beacon, self.stale_after, self.renotify = beacon, stale_after, renotify
        self.previous, self.records, self.now = None, {}, 5000.0

    def look(self, later=10, **peers):
        self.now += later
        looked = wgf_staleness.link_states(
            shown(**peers), self.now, self.stale_after, self.previous
        )
        self.previous = looked
        events = []
        for key, state in sorted(looked["interfaces"]["wg0"].items()):
            record, tag = self.beacon._transition(
                self.records.get(key), state["state"], self.now, self.renotify
            )
            self.records[key] = record
            if tag:
                events.append((tag, key, state["state"]))
        return events


# ------------------------------------------------------------------ validate


@pytest.mark.parametrize(
    "config",
    [
        [],
        [{"interval": 10}],
        [{"interval": 10}, {"stale_after": 300}, {"renotify": 0}, {"interfaces": ["wg0", "wg1"]}],
        [{"disable_during_state_run": True}, {"enabled": True}],
    ],
)
def test_valid_configurations(beacon, config):
    assert beacon.validate(config) == (True, "Valid beacon configuration")


@pytest.mark.parametrize(
    "config, words",
    [
        ({"stale_after": 10}, "must be a list of mappings"),
        ([{"stale_afer": 10}], "unknown key(s) stale_afer"),
        ([{"stale_after": 0}], "stale_after must be a whole number of seconds >= 1"),
        ([{"stale_after": "180"}], "stale_after must be"),
        ([{"stale_after": True}], "stale_after must be"),
        ([{"renotify": -1}], "renotify must be"),
        ([{"interfaces": "wg0"}], "interfaces must be a list"),
        ([{"interfaces": [""]}], "interfaces must be a list"),
        ([{1: 10}], "every option name is a string"),
        ([{None: 10}, {"stale_after": 5}], "every option name is a string"),
        ([{("stale_after",): 10}], "every option name is a string"),
    ],
)
def test_invalid_configurations(beacon, config, words):
    valid, message = beacon.validate(config)
    assert not valid and words in message


# ------------------------------------------------------------------ the rule, look by look


def test_stale_then_recovered(beacon):
    looks = Looks(beacon)
    assert looks.look(**{PEER1: peer()}) == []  # first look: only the counters
    assert looks.look(**{PEER1: peer(age=200)}) == []  # old handshake, nothing sent: idle
    assert looks.previous["interfaces"]["wg0"][PEER1]["state"] == "idle"
    assert looks.look(**{PEER1: peer(age=210, tx=1148)}) == [("stale", PEER1, "stale")]
    assert looks.look(**{PEER1: peer(age=220, tx=1296)}) == []  # fired once
    assert looks.records[PEER1]["since"] == 5030.0
    assert looks.look(later=35, **{PEER1: peer(age=1, tx=1400, rx=1100)}) == [
        ("recovered", PEER1, "up")
    ]
    assert looks.look(**{PEER1: peer(age=11, tx=1400, rx=1100)}) == []


def test_a_stale_peer_that_answers_again_has_recovered(beacon):
    """Found again at a new address, a peer keeps its session: no new handshake, but
    its answers arrive."""
    looks = Looks(beacon)
    looks.look(**{PEER1: peer()})
    assert looks.look(**{PEER1: peer(age=200, tx=2000)}) == [("stale", PEER1, "stale")]
    assert looks.look(later=5, **{PEER1: peer(age=205, tx=2500, rx=1400)}) == [
        ("recovered", PEER1, "up")
    ]


def test_counters_from_long_ago_say_nothing():
    """A sample older than the rule's window is no sample: the counters may have grown
    by a keepalive a minute for an hour."""
    before = wgf_staleness.link_states(shown(**{PEER1: peer(age=400)}), 1000, 180)
    later = shown(**{PEER1: peer(age=410, tx=1148)})
    assert (
        wgf_staleness.link_states(later, 1010, 180, before)["interfaces"]["wg0"][PEER1]["state"]
        == "stale"
    )
    assert (
        wgf_staleness.link_states(later, 1000 + 3600, 180, before)["interfaces"]["wg0"][PEER1][
            "state"
        ]
        == "idle"
    )
    assert (
        wgf_staleness.link_states(later, 990, 180, before)["interfaces"]["wg0"][PEER1]["state"]
        == "idle"
    )  # a clock that went back


def test_a_lone_keepalive_is_not_traffic(beacon):
    looks = Looks(beacon)
    looks.look(**{PEER1: peer()})
    assert looks.look(**{PEER1: peer(age=200, tx=1032)}) == []  # the keepalive after an answer
    assert looks.look(**{PEER1: peer(age=201, tx=1032 + 148)}) == [
        ("stale", PEER1, "stale")
    ]  # a handshake initiation: someone sends


def test_a_peer_that_answers_is_not_stale(beacon):
    looks = Looks(beacon)
    looks.look(**{PEER1: peer()})
    assert looks.look(**{PEER1: peer(age=200, tx=5000, rx=5000)}) == []  # no rekey yet
    assert looks.previous["interfaces"]["wg0"][PEER1]["state"] == "up"


def test_a_keepalive_means_traffic_is_sent(beacon):
    looks = Looks(beacon)
    assert looks.look(**{PEER2: peer(age=400, keepalive=25)}) == []  # first look
    assert looks.previous["interfaces"]["wg0"][PEER2]["state"] == "stale"
    assert looks.look(**{PEER2: peer(age=410, keepalive=25)}) == [("stale", PEER2, "stale")]


def test_never_handshaked_needs_a_second_look(beacon):
    looks = Looks(beacon)
    # just added: its first handshake may be on the way
    assert looks.look(**{PEER2: peer(age=None, tx=0, rx=0, keepalive=25)}) == []
    assert looks.previous["interfaces"]["wg0"][PEER2]["state"] == "new"
    assert looks.look(**{PEER2: peer(age=None, tx=148, rx=0, keepalive=25)}) == [
        ("stale", PEER2, "never")
    ]


def test_a_still_stale_peer_is_reported_again_after_renotify(beacon):
    looks = Looks(beacon, renotify=60)
    looks.look(**{PEER1: peer()})
    assert looks.look(**{PEER1: peer(age=300, tx=2000)}) == [("stale", PEER1, "stale")]
    assert looks.look(later=30, **{PEER1: peer(age=330, tx=2200)}) == []
    assert looks.look(later=30, **{PEER1: peer(age=360, tx=2400)}) == [("stale", PEER1, "stale")]
    assert looks.records[PEER1]["since"] == 5020.0  # stale since the first event
    looks.renotify = 0
    assert looks.look(later=60, **{PEER1: peer(age=420, tx=2600)}) == []


def test_link_states_gives_what_the_events_carry():
    result = wgf_staleness.link_states(shown(**{PEER1: peer(age=20, tx=7, rx=9)}), 1234.5, 90)
    assert result == {
        "at": 1234.5,
        "stale_after": 90,
        "interfaces": {
            "wg0": {
                PEER1: {
                    "state": "up",
                    "latest_handshake": 1_000_000 - 20,
                    "age": 20,
                    "endpoint": "198.51.100.2:51820",
                    "tx_bytes": 7,
                    "rx_bytes": 9,
                }
            }
        },
    }


def test_transition_is_pure(beacon):
    record, tag = beacon._transition(None, "stale", 0.0)
    assert tag is None and record == {"stale": False, "since": None, "notified": None}
    record, tag = beacon._transition(record, "idle", 5.0)
    assert tag is None and not record["stale"]
    record, tag = beacon._transition(record, "never", 7.0)
    assert tag == "stale" and record == {"stale": True, "since": 7.0, "notified": 7.0}
    same, tag = beacon._transition(record, "stale", 9.0, renotify=300)
    assert tag is None and same == record
    record, tag = beacon._transition(record, "up", 11.0)
    assert tag == "recovered" and not record["stale"]


# ------------------------------------------------------------------ reactor example

REACTOR = pathlib.Path(REPO) / "reactor" / "wireguard-stale.sls"


def render_reactor(data):
    opts = salt.config.minion_config(None)
    text = salt.utils.templates.render_jinja_tmpl(
        REACTOR.read_text(),
        {
            "data": data,
            "opts": opts,
            "saltenv": "base",
            "sls": "r",
            "tag": "salt/beacon/x/wireguard/stale",
        },
    )
    return yaml.safe_load(text)


def test_reactor_reresolves_the_stale_peer_on_the_minion_that_saw_it():
    rendered = render_reactor(
        {"id": "site-a", "interface": "wg0", "peer": PEER1, "name": "hub", "age": 300}
    )
    ((sid, body),) = rendered.items()
    assert body == {
        "local.wireguard.reresolve": [
            {"tgt": "site-a"},
            {"tgt_type": "list"},
            {"args": [{"interface": "wg0"}, {"peer": PEER1}]},
        ]
    }
    assert sid == "wireguard-reresolve-wg0-xTIBA5rb"


@pytest.mark.parametrize(
    "data",
    [
        {"id": "site-a", "interface": "wg0\n  - x: y", "peer": PEER1},
        {"id": "site-a", "interface": "wg0", "peer": PEER1 + "\n"},
        {"id": "site-a", "interface": "wg0", "peer": "not a key"},
        {"id": "*", "interface": "wg0", "peer": PEER1},
        {"id": "a,b", "interface": "wg0", "peer": PEER1},
        {"interface": "wg0", "peer": PEER1},
        {"id": "site-a", "interface": ["wg0"], "peer": PEER1},
    ],
)
def test_reactor_ignores_events_that_do_not_look_right(data):
    assert render_reactor(data) is None
