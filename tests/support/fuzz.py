"""What the property-based fuzz tests share (tests/unit/test_fuzz*.py): the planted
secrets and the check that none leaks, hypothesis settings, YAML-ish values and the
mutations of a healthy value, the healthy pillars and mine they start from, and the
audit's healthy minion answers."""

import copy

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_conf
import wgf_schema

PRIV = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="
PSK2 = "kHxkbo6CxmT0E5tFk7Y+v+Jq+mdQm9eb4iXKahkEoAE="
#: The key ``wireguard`` generates into <interface>.key when pillar gives none.
GENERATED = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
SECRETS = (PRIV, PSK, PSK2, GENERATED)
KEY_A = "scGH95QfjmKl/rjJQD6gDRCe9/fYTWxq2K8a8imo2TE="
KEY_B = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
KEY_C = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
KEY_M2 = "q5UPfJp/qGk3uXnUz9A0nAdrK3XF1O8wpx6Wm2JwVEM="
KEY_M3 = "4MVu+Y/eM0PbZeZQw+e8nqrm9R3HeYsry+yQATUQrTE="
SALTS_OWN = (SaltInvocationError, CommandExecutionError)


def fuzz(examples):
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def assert_no_secret(text):
    """No 16 characters in a row of any secret (a key is 44)."""
    for secret in SECRETS:
        for start in range(len(secret) - 15):
            assert secret[start : start + 16] not in text, f"a key leaked: {text[:2000]}"


# ------------------------------------------------------------------ YAML-ish values

#: Values that sit on the edges of the rules.
EDGES = [
    "",
    " ",
    "wg0",
    "wg0\n",
    "wg1",
    "eth0",
    "..",
    "minion1",
    "m2",
    "m3",
    "hub",
    "mesh",
    "auto",
    "off",
    "main",
    "0x10",
    "-1",
    "0",
    "65535",
    "65536",
    "\uff11\uff12",
    "12\u0663",
    "10.0.0.1/24",
    "10.1.0.0/16",
    "fd00::1/64",
    "fe80::1%x,10.0.0.1/24",
    "fe80::1%eth0",
    "1.1.1.1",
    "corp.lan",
    "vpn.example.com:51820",
    "[fd00::1]:51820",
    "1.2.3.4",
    "1.2.3.4:\uff15\uff11",
    "a\u2028b",
    "a\u2029b",
    "a\x85b",
    "b\nPostUp = touch /x",
    "x" * 300,
    KEY_A,
    KEY_B,
    KEY_C,
    KEY_A[:-1],
    "None",
    "true",
    "~",
    "%i",
]
TEXT = st.one_of(
    st.sampled_from(EDGES),
    st.text(max_size=12),
    st.text(st.characters(codec="utf-8", categories=["Cc", "Zl", "Zp", "Nd", "Zs"]), max_size=6),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 25, 51820, 65535, 65536, 2**32]),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
DICT_KEYS = st.one_of(
    TEXT, st.integers(-5, 70000), st.none(), st.booleans(), st.floats(allow_nan=False)
)
YAMLISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(DICT_KEYS, inner, max_size=4)
    ),
    max_leaves=8,
)


#: How ``mutate`` may change a value.
MUTATIONS = ("random", "random", "slip", "wrap", "rename", "drop")


def mutate(draw, value, values=YAMLISH, keys=DICT_KEYS, hows=MUTATIONS, wraps=3):
    """``value`` with one sub-value replaced somewhere: by a random value of ``values``,
    by an indentation slip (a mapping becomes a list of one-key mappings), wrapped in a
    list or mapping (the first ``wraps`` of three ways), or with a key renamed (to one of
    ``keys``) or dropped; ``hows`` says which of these may happen. Secrets stay where a
    secret was."""
    more = {"values": values, "keys": keys, "hows": hows, "wraps": wraps}
    if isinstance(value, dict) and value and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(list(value)))
        return {**value, key: mutate(draw, value[key], **more)}
    if isinstance(value, list) and value and draw(st.integers(0, 3)):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], mutate(draw, value[index], **more), *value[index + 1 :]]
    how = draw(st.sampled_from(hows))
    if how == "slip" and isinstance(value, dict):
        return [{k: v} for k, v in value.items()]
    if how == "wrap":
        return draw(st.sampled_from([[value], {"value": value}, [value, value]][:wraps]))
    if how in ("rename", "drop") and isinstance(value, dict) and value:
        key = draw(st.sampled_from(list(value)))
        rest = {k: v for k, v in value.items() if k != key}
        return rest if how == "drop" else {**rest, draw(keys): value[key]}
    return draw(values)


# ------------------------------------------------------------------ the pillar

STATIC = {
    "interfaces": {
        "wg0": {
            "address": ["10.1.1.11/24", "fd00::11/64"],
            "listen_port": 51820,
            "private_key": PRIV,
            "dns": ["1.1.1.1", "corp.lan"],
            "mtu": 1420,
            "table": "auto",
            "fwmark": "0x10",
            "post_up": ["echo up %i"],
            "routes": ["172.16.1.0/24"],
            "masquerade": ["eth0"],
            "forwarding": True,
            "purge_peers": True,
            "peers": {
                "hub": {
                    "public_key": KEY_A,
                    "allowed_ips": ["10.1.1.0/24"],
                    "endpoint": "vpn.example.com:51820",
                    "persistent_keepalive": 25,
                    "preshared_key": PSK,
                },
                "laptop": {
                    "public_key": KEY_B,
                    "allowed_ips": "10.1.1.20/32",
                    "preshared_key": PSK2,
                },
                "server": {
                    "minion": "m2",
                    "minion_interface": "wg1",
                    "allowed_ips": ["10.1.1.2/32"],
                },
                "old": {"absent": True, "public_key": KEY_C},
            },
        }
    }
}
NODES = {
    "minion1": {
        "address": "10.2.0.1/24",
        "endpoint": "198.51.100.1",
        "allowed_ips": ["192.168.10.0/24"],
    },
    "m2": {"address": "10.2.0.2/24", "endpoint": "198.51.100.2:4000"},
    "m3": {"address": "fd02::3/64", "persistent_keepalive": 15},
}
MESH = {
    "networks": {
        "corp": {
            "interface": "wg1",
            "listen_port": 51821,
            "topology": "mesh",
            "nodes": NODES,
            "mtu": 1380,
            "purge_peers": False,
        }
    }
}
HUB = {
    "networks": {"star": {"interface": "wg2", "topology": "hub", "hubs": ["m2"], "nodes": NODES}}
}
PILLARS = [
    STATIC,
    MESH,
    HUB,
    {**STATIC, **MESH},
    {"interfaces": STATIC["interfaces"], "networks": {**MESH["networks"], **HUB["networks"]}},
]
MINE = {
    "m2": {"wg1": KEY_M2, "wg2": KEY_M2},
    "m3": {"wg1": KEY_M3, "wg2": KEY_M3},
    "minion1": {"wg1": KEY_C, "wg2": KEY_C},
}


@st.composite
def pillars(draw):
    pillar = copy.deepcopy(draw(st.sampled_from(PILLARS)))
    for _ in range(draw(st.integers(1, 3))):
        pillar = mutate(draw, pillar)
    return pillar


@st.composite
def mines(draw):
    mine = copy.deepcopy(MINE)
    if draw(st.booleans()):
        mine = mutate(draw, mine)
    return mine if isinstance(mine, dict) else {}


def check_validated(pillar, result):
    """What a validated pillar must give: no secret, and files the parser reads back."""
    assert_no_secret(repr(result))
    for iface in result.values():
        secrets = wgf_schema.secrets_of(pillar, iface)
        masked = wgf_conf.render(iface)
        assert_no_secret(masked)
        text = wgf_conf.render(
            iface, secrets["private_key"] or GENERATED, secrets["preshared_keys"]
        )
        assert wgf_conf.mask(text, wgf_conf.known_public(pillar=iface)) == masked
        conf = wgf_conf.parse(text)
        assert conf["errors"] == [], (text, conf["errors"])
        assert len(conf["peers"]) == text.count("\n[Peer]\n")


# ------------------------------------------------------------------ the audit


def answers():
    """Three minions' answers to the audit's job, as healthy minions give them."""
    keys = {"mesh1": KEY_A, "mesh2": KEY_B, "mesh3": KEY_C}
    returned = {}
    for number, (minion, key) in enumerate(sorted(keys.items()), 1):
        others = {k: (m, i) for i, (m, k) in enumerate(sorted(keys.items()), 1) if m != minion}
        show = {
            "wg0": {
                "public_key": key,
                "listen_port": 51820,
                "fwmark": None,
                "peers": {
                    k: {
                        "preshared_key": False,
                        "endpoint": f"198.18.0.{i}:51820",
                        "allowed_ips": [f"10.10.0.{i}/32"],
                        "latest_handshake": 1,
                        "latest_handshake_age": 3,
                        "rx_bytes": 5,
                        "tx_bytes": 5,
                        "persistent_keepalive": None,
                    }
                    for k, (_, i) in others.items()
                },
            }
        }
        facts = {
            "live": True,
            "public_key": key,
            "listen_port": 51820,
            "addresses": [f"10.10.0.{number}/24"],
            "mtu": 1420,
            "forwarding": {"ipv4": False, "ipv6": False},
            "service": "wg-quick@wg0",
            "link_states": dict.fromkeys(others, "up"),
            "peers": {
                k: {
                    "name": m,
                    "endpoint": f"{m}.lab:51820",
                    "endpoint_resolved": [f"198.18.0.{i}:51820"],
                    "allowed_ips": [f"10.10.0.{i}/32"],
                    "persistent_keepalive": None,
                }
                for k, (m, i) in others.items()
            },
        }
        returned[minion] = {
            "wireguard.show": show,
            "wireguard.public_keys": {"wg0": key},
            "wireguard.check": {
                "ok": True,
                "summary": "",
                "problems": [],
                "interfaces": {"wg0": {"ok": True, "problems": [], "facts": facts}},
            },
            "network.interfaces": {"eth0": {"inet": [{"address": f"198.18.0.{number}"}]}},
        }
    return returned
