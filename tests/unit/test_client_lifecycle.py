"""Client lifecycle (issue 23, part A): groups, ``enabled``, ``expires`` judged at a
``now`` the test sets, ``limits`` parsed, the listing's status, and groups named in
``access`` rules; every bad input refused naming interface, client (or group) and key."""

import datetime
import json
from unittest import mock

import pytest
from salt.exceptions import SaltInvocationError

import wgf_client_record
import wgf_clients
import wgf_conf
import wgf_keys
import wgf_limits
import wgf_pipeline
from tests.support import pipeline

SERVER_PRIV = wgf_keys.genkey()
UTC = datetime.timezone.utc
NOW = datetime.datetime(2027, 1, 31, 12, 0, tzinfo=UTC)


def interface(**extra):
    return {
        "address": ["10.8.0.1/24"],
        "listen_port": 51820,
        "endpoint": "vpn.example.com",
        **extra,
    }


def validate(iface, record=None, now=NOW, firewall="nftables"):
    return pipeline.interfaces(
        {"interfaces": {"wg0": iface}},
        "vpn",
        own_public_keys={"wg0": wgf_keys.pubkey(SERVER_PRIV)},
        client_records={"wg0": json.dumps(record) if record is not None else None},
        firewall=firewall,
        now=now,
    )["wg0"]


def with_keys(iface, now=NOW):
    """The interface once the clients state made every key (a record holds them)."""
    first = validate(iface, now=now)
    made = {
        name: wgf_keys.pubkey(wgf_keys.genkey())
        for name, c in first["clients"].items()
        if not c["absent"] and not c["public_key"]
    }
    record = wgf_client_record.record_of(first, made)
    return validate(iface, record, now=now), record


def refused(iface, *words, firewall="nftables"):
    with pytest.raises(SaltInvocationError) as error:
        validate(iface, firewall=firewall)
    message = str(error.value)
    for word in ["interface 'wg0'", *words]:
        assert word in message, message
    return message


# ------------------------------------------------------------------- groups

GROUPS = {
    "staff": {"allowed_ips": ["10.0.0.0/8"], "dns": ["10.0.0.53"], "limits": {"rate": "50mbit"}},
    "guests": {
        "allowed_ips": ["0.0.0.0/0", "::/0"],
        "limits": {"rate": "5mbit", "quota": "10GiB", "period": "month"},
    },
}


def test_a_client_takes_its_groups_keys_and_its_own_override_them():
    wg0 = validate(
        interface(
            client_defaults={"dns": ["10.8.0.1"], "persistent_keepalive": 25},
            client_groups=GROUPS,
            clients={
                "alice": {"group": "staff"},
                "bob": {"group": "staff", "dns": ["9.9.9.9"], "limits": {"rate": "1gbit"}},
                "contractor": {"group": "guests", "expires": "2027-02-28T18:00:00Z"},
                "loner": {},
            },
        )
    )
    clients = wg0["clients"]
    assert clients["alice"]["allowed_ips"] == ["10.0.0.0/8"]
    assert clients["alice"]["dns"] == ["10.0.0.53"]
    assert clients["alice"]["persistent_keepalive"] == 25  # client_defaults under the group
    assert clients["alice"]["limits"] == {"rate": 50_000_000, "quota": None, "period": None}
    assert clients["bob"]["dns"] == ["9.9.9.9"]
    assert clients["bob"]["limits"] == {"rate": 10**9, "quota": None, "period": None}
    assert clients["contractor"]["allowed_ips"] == ["0.0.0.0/0", "::/0"]
    assert clients["contractor"]["dns"] == ["10.8.0.1"]  # the group sets none
    assert clients["contractor"]["limits"] == {
        "rate": 5_000_000,
        "quota": 10 * 2**30,
        "period": "month",
    }
    assert clients["loner"]["group"] is None and clients["loner"]["limits"] is None
    assert clients["loner"]["allowed_ips"] == ["10.8.0.0/24"]
    assert wg0["client_groups"]["staff"]["clients"] == ["alice", "bob"]


def test_a_group_takes_its_parent_groups_keys_under_its_own():
    wg0 = validate(
        interface(
            client_groups={
                "staff": {"allowed_ips": ["10.0.0.0/8"], "dns": ["10.0.0.53"]},
                "ops": {"group": "staff", "dns": ["10.0.0.54"]},
            },
            clients={"carol": {"group": "ops"}},
        )
    )
    carol = wg0["clients"]["carol"]
    assert (carol["allowed_ips"], carol["dns"]) == (["10.0.0.0/8"], ["10.0.0.54"])


def test_two_clients_of_a_group_export_its_allowed_ips_and_dns():
    wg0, _ = with_keys(
        interface(client_groups=GROUPS, clients={"a": {"group": "staff"}, "b": {"group": "staff"}})
    )
    for name in ("a", "b"):
        text = wgf_clients.client_config(wg0, name, wgf_keys.pubkey(SERVER_PRIV), "PRIV=")
        assert "AllowedIPs = 10.0.0.0/8\n" in text and "DNS = 10.0.0.53\n" in text


@pytest.mark.parametrize(
    ("iface", "words"),
    [
        (
            {"clients": {"x": {"group": "nobody"}}, "client_groups": GROUPS},
            ["client 'x', key 'group'", "no client group 'nobody'"],
        ),
        (
            {"client_groups": {"a": {"group": "b"}, "b": {"group": "a"}}},
            ["client group 'a', key 'group'", "a group cycle: 'a' -> 'b' -> 'a'"],
        ),
        (
            {"client_groups": {"a": {"group": "a"}}},
            ["client group 'a', key 'group'", "a group cycle"],
        ),
        (
            {"client_groups": {"a": {"group": "ghost"}}},
            ["client group 'a', key 'group'", "no client group 'ghost'"],
        ),
        ({"client_groups": {"a": {"colour": "red"}}}, ["client group 'a'", "unknown key 'colour'"]),
        ({"client_groups": {"a": {"address": "10.8.0.9"}}}, ["client group 'a'", "'address'"]),
        ({"client_groups": {"a": ["x"]}}, ["client group 'a'", "a mapping"]),
        (
            {"client_groups": {"x": {}}, "clients": {"x": {}}},
            ["client group 'x'", "the same name"],
        ),
        (
            {"client_groups": {"a": {"allowed_ips": ["bogus"]}}},
            ["client group 'a', key 'allowed_ips'"],
        ),
        (
            {"client_groups": {"a": {"limits": {"rate": "0mbit"}}}},
            ["client group 'a', key 'limits', rate", "not more than 0"],
        ),
    ],
)
def test_bad_groups_are_refused_naming_interface_group_or_client_and_key(iface, words):
    refused(interface(**iface), *words)


# ------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ({"rate": "50mbit"}, {"rate": 50_000_000, "quota": None, "period": None}),
        ({"rate": "1.5Gbit"}, {"rate": 1_500_000_000, "quota": None, "period": None}),
        ({"rate": "64kbit"}, {"rate": 64_000, "quota": None, "period": None}),
        ({"quota": "1MiB"}, {"rate": None, "quota": 2**20, "period": "month"}),
        ({"quota": "2TiB", "period": "day"}, {"rate": None, "quota": 2 * 2**40, "period": "day"}),
        ({"quota": "0.5GiB", "period": "week"}, {"rate": None, "quota": 2**29, "period": "week"}),
        ({}, None),
        (None, None),
    ],
)
def test_limits_are_parsed_into_bits_per_second_and_bytes(value, parsed):
    assert wgf_limits.limits(value, "here") == parsed


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        ({"rate": "50mb"}, ["key 'limits', rate", "no known unit", "kbit, mbit, gbit"]),
        ({"rate": "50MiB"}, ["key 'limits', rate", "no known unit"]),
        ({"rate": 50}, ["key 'limits', rate", "is no rate"]),
        ({"rate": "0mbit"}, ["key 'limits', rate", "not more than 0"]),
        ({"rate": "-5mbit"}, ["key 'limits', rate", "not more than 0"]),
        ({"rate": "fast"}, ["key 'limits', rate", "is no rate"]),
        ({"quota": "10GB"}, ["key 'limits', quota", "MiB, GiB, TiB"]),
        ({"quota": "0GiB"}, ["key 'limits', quota", "not more than 0"]),
        ({"quota": "-1GiB"}, ["key 'limits', quota", "not more than 0"]),
        ({"period": "month"}, ["key 'limits', period", "needs a 'quota'"]),
        ({"rate": "5mbit", "period": "day"}, ["key 'limits', period", "needs a 'quota'"]),
        ({"quota": "1GiB", "period": "year"}, ["key 'limits', period", "not one of"]),
        ({"burst": "1mbit"}, ["key 'limits'", "unknown key 'burst'"]),
        ("5mbit", ["key 'limits'", "a mapping"]),
    ],
)
def test_bad_limits_are_refused_naming_interface_client_and_key(limits, words):
    refused(interface(clients={"x": {"limits": limits}}), "client 'x'", *words)


def test_limits_need_a_firewall_backend():
    iface = interface(
        client_groups=GROUPS, clients={"a": {"group": "staff"}, "b": {"limits": {"rate": "1mbit"}}}
    )
    message = refused(
        iface, "client group 'staff', key 'limits'", "client 'b', key 'limits'", firewall="none"
    )
    assert "not none" in message and "client 'a'" not in message
    validate(interface(clients={"a": {}}), firewall="none")  # no limits: no firewall needed


# ------------------------------------------------------------------- expires


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("2027-01-31T18:00:00Z", "2027-01-31T18:00:00Z"),
        ("2027-01-31T18:00:00", "2027-01-31T18:00:00Z"),  # no zone: UTC
        ("2027-01-31 18:00", "2027-01-31T18:00:00Z"),
        ("2027-01-31", "2027-01-31T00:00:00Z"),  # a date alone: 00:00:00Z
        ("2027-01-31T20:00:00+02:00", "2027-01-31T18:00:00Z"),
        ("2027-01-31T13:00:00-0500", "2027-01-31T18:00:00Z"),
        ("2027-01-31T18:00:00.5Z", "2027-01-31T18:00:00.500000Z"),
        (datetime.date(2027, 1, 31), "2027-01-31T00:00:00Z"),  # what plain YAML makes
        (datetime.datetime(2027, 1, 31, 18), "2027-01-31T18:00:00Z"),
        (
            datetime.datetime(
                2027, 1, 31, 19, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
            ),
            "2027-01-31T18:00:00Z",
        ),
        (None, None),
    ],
)
def test_expires_is_iso_8601_and_utc_when_no_zone_is_given(value, normalised):
    assert wgf_clients.expires(value, "here") == normalised


@pytest.mark.parametrize(
    "value",
    [
        "tomorrow",
        "2027-13-01",
        "2027-02-30",
        "31.01.2027",
        "2027-01-31T25:00",
        1738000000,
        True,
        "2027-01-31T18:00:00+24:00",
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_an_unparseable_expires_is_refused_naming_interface_client_and_key(value):
    refused(interface(clients={"x": {"expires": value}}), "client 'x', key 'expires'", "ISO 8601")


def test_a_client_expires_at_its_instant_and_not_before():
    iface = interface(clients={"c": {"expires": "2027-01-31T18:00:00Z"}, "d": {}})
    before, record = with_keys(iface, now=NOW)
    assert before["clients"]["c"]["status"] == "active" and "c" in before["peers"]
    at = validate(iface, record, now=datetime.datetime(2027, 1, 31, 18, tzinfo=UTC))
    assert at["clients"]["c"]["status"] == "expired"
    assert "c" not in at["peers"] and "d" in at["peers"]
    # the address and key stay on record, and a new client does not get the address
    assert wgf_client_record.record_of(at, {}) == record
    iface["clients"]["e"] = {}
    later = validate(iface, record, now=datetime.datetime(2027, 3, 1, tzinfo=UTC))
    assert later["clients"]["e"]["address"] != later["clients"]["c"]["address"]
    assert later["clients"]["c"]["address"] == before["clients"]["c"]["address"]
    # it stays expired until its expires is moved
    iface["clients"]["c"]["expires"] = "2027-06-01"
    moved = validate(iface, record, now=datetime.datetime(2027, 3, 1, tzinfo=UTC))
    assert moved["clients"]["c"]["status"] == "active" and "c" in moved["peers"]
    assert moved["peers"]["c"]["public_key"] == record["clients"]["c"]["public_key"]


def test_the_export_of_an_expired_client_is_refused_saying_when(tmp_path):
    iface = interface(clients={"c": {"expires": "2027-01-01"}})
    wg0, _ = with_keys(iface)
    with pytest.raises(SaltInvocationError) as error:
        wgf_clients.device_config(wg0, "wg0", "c", str(tmp_path), wgf_keys.pubkey(SERVER_PRIV))
    assert "interface 'wg0', client 'c': expired at 2027-01-01T00:00:00Z" in str(error.value)


def test_the_next_expiry_is_the_earliest_future_one_of_live_clients():
    iface = interface(
        clients={
            "past": {"expires": "2027-01-01"},
            "late": {"expires": "2027-03-01"},
            "soon": {"expires": "2027-02-01T06:30:00+01:00"},
            "off": {"expires": "2027-01-31T13:00:00Z", "enabled": False},
            "gone": {"expires": "2027-01-31T13:00:00Z", "absent": True},
            "never": {},
        }
    )
    wg0 = validate(iface)
    assert wgf_clients.next_expiry(wg0, NOW) == datetime.datetime(2027, 2, 1, 5, 30, tzinfo=UTC)
    assert wgf_pipeline.next_expiry({"wg0": wg0}, NOW) == datetime.datetime(
        2027, 2, 1, 5, 30, tzinfo=UTC
    )
    assert wgf_clients.next_expiry(wg0, datetime.datetime(2027, 3, 1, tzinfo=UTC)) is None
    assert wgf_pipeline.next_expiry({}, NOW) is None


# ------------------------------------------------------------------- enabled


def test_a_disabled_client_keeps_its_address_and_key_and_comes_back_with_them():
    iface = interface(clients={"a": {}, "b": {}})
    on, record = with_keys(iface)
    iface["clients"]["a"]["enabled"] = False
    iface["clients"]["n"] = {}
    off = validate(iface, record)
    assert off["clients"]["a"]["status"] == "disabled"
    assert "a" not in off["peers"] and "b" in off["peers"]
    assert off["clients"]["a"]["address"] == on["clients"]["a"]["address"]
    assert off["clients"]["n"]["address"] != on["clients"]["a"]["address"]
    assert wgf_clients.held_back(off) == {on["peers"]["a"]["public_key"]: ("a", "disabled")}
    conf = wgf_conf.render(off, SERVER_PRIV, {})
    assert on["peers"]["a"]["public_key"] not in conf and on["peers"]["b"]["public_key"] in conf
    record = wgf_client_record.record_of(off, {"n": wgf_keys.pubkey(wgf_keys.genkey())})
    iface["clients"]["a"]["enabled"] = True
    back = validate(iface, record)
    assert back["peers"]["a"] == on["peers"]["a"]
    assert wgf_clients.held_back(back) == {}


def test_enabled_must_be_a_bool():
    refused(interface(clients={"x": {"enabled": "no"}}), "client 'x', key 'enabled'")


# ------------------------------------------------------------------- listing


def test_the_listing_shows_status_expiry_group_limits_and_use():
    iface = interface(
        client_groups=GROUPS,
        clients={
            "alice": {"group": "staff"},
            "contractor": {"group": "guests", "expires": "2027-01-01"},
            "off": {"enabled": False, "expires": "2027-01-01"},
            "heavy": {"limits": {"quota": "1MiB"}},
        },
    )
    wg0, _ = with_keys(iface)
    live = {"peers": {wg0["peers"]["alice"]["public_key"]: {"endpoint": "198.18.0.2:1"}}}
    listed = wgf_clients.listing(wg0, live, NOW)
    assert {n: c["status"] for n, c in listed.items()} == {
        "alice": "active",
        "contractor": "expired",
        "heavy": "active",
        "off": "disabled",
    }
    assert listed["contractor"]["expires"] == "2027-01-01T00:00:00Z"
    assert listed["alice"]["group"] == "staff" and listed["heavy"]["group"] is None
    # the rate and the burst tc lets through at once (50 ms of it)
    assert listed["alice"]["limits"] == {
        "rate": 50_000_000,
        "burst": 312_500,
        "quota": None,
        "period": None,
    }
    assert listed["heavy"]["limits"]["burst"] is None  # a quota, no rate
    assert all(c["use"] is None for c in listed.values())
    assert listed["alice"]["live"] and not listed["heavy"]["live"]
    # the hook the counting of limits fills: over quota is a status of its own
    use = {"heavy": {"over_quota": True, "used": 2**20}}
    listed = wgf_clients.listing(wg0, live, NOW, use=use)
    assert listed["heavy"]["status"] == "over quota" and listed["heavy"]["use"] == use["heavy"]
    assert set(wgf_clients.STATUSES) == {"active", "disabled", "expired", "over quota"}


# ------------------------------------------------------------------- access


def test_an_access_rule_may_name_a_group_for_its_clients_addresses():
    iface = interface(
        client_groups={"staff": {}, "empty": {}},
        clients={
            "a": {"group": "staff", "address": "10.8.0.20"},
            "b": {"group": "staff", "address": "10.8.0.21"},
            "c": {"address": "10.8.0.22"},
        },
        access={
            "rules": [
                {"from": ["staff"], "to": ["192.168.50.0/24"]},
                {"from": ["c", "empty"]},
            ]
        },
    )
    wg0 = validate(iface)
    assert [r["sources"] for r in wg0["access"]["rules"]] == [
        ["10.8.0.20/32", "10.8.0.21/32"],
        ["10.8.0.22/32"],
    ]
    iface["access"]["rules"][0]["from"] = ["stuff"]
    refused(iface, "rule 1, from: 'stuff' names no peer or client (nor client group)")


# ------------------------------------------------------------ the loader's cache


def test_the_loaders_validation_is_judged_again_once_an_expiry_passed(tmp_path):
    """The execution module keeps its validated pillar for the run (``__context__``);
    a client whose ``expires`` passes meanwhile is expired in the next answer."""
    import salt.loader

    from tests.support.minion import minion_opts

    (tmp_path / "wg").mkdir(mode=0o700)
    opts = minion_opts(tmp_path, "minion1")
    opts["pillar"] = {
        "wireguard": {
            "lookup": {"config_dir": str(tmp_path / "wg")},
            "interfaces": {
                "wg0": interface(clients={"c": {"expires": "2027-01-31T18:00:00Z"}, "d": {}})
            },
        }
    }
    modules = salt.loader.minion_mods(opts, utils=salt.loader.utils(opts))
    ask = modules["wireguard.pillar_interfaces"]
    times = iter(
        [NOW, NOW + datetime.timedelta(hours=1), datetime.datetime(2027, 2, 1, tzinfo=UTC)]
    )
    with mock.patch.object(wgf_clients, "utc_now", lambda: next(times)):
        assert ask()["wg0"]["clients"]["c"]["status"] == "active"
        assert ask()["wg0"]["clients"]["c"]["status"] == "active"
        assert ask()["wg0"]["clients"]["c"]["status"] == "expired"
