"""Property-based fuzz of the formula's untrusted input: the pillar, ``wg show dump``
output, wg-quick config files, the minions' answers to the audit and the beacon's
configuration. Whatever comes in, the code refuses it with Salt's own errors or
handles it, and no private or preshared key placed in the input comes out.

Derandomized: the same examples on every run, so CI is reproducible.
"""

import contextlib
import copy
import inspect
import json

import pytest
import salt.config
import salt.loader
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_audit
import wgf_conf
import wgf_dump
import wgf_keys
import wgf_live
import wgf_schema
from tests.support.minion import minion_opts
from tests.unit.conftest import load

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


def mutate(draw, value):
    """``value`` with one sub-value replaced somewhere: by a random YAML-ish value, by an
    indentation slip (a mapping becomes a list of one-key mappings), wrapped in a list
    or mapping, or with a key renamed. Secrets stay where a secret was."""
    if isinstance(value, dict) and value and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(list(value)))
        return {**value, key: mutate(draw, value[key])}
    if isinstance(value, list) and value and draw(st.integers(0, 3)):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], mutate(draw, value[index]), *value[index + 1 :]]
    how = draw(st.sampled_from(["random", "random", "slip", "wrap", "rename", "drop"]))
    if how == "slip" and isinstance(value, dict):
        return [{k: v} for k, v in value.items()]
    if how == "wrap":
        return draw(st.sampled_from([[value], {"value": value}, [value, value]]))
    if how in ("rename", "drop") and isinstance(value, dict) and value:
        key = draw(st.sampled_from(list(value)))
        rest = {k: v for k, v in value.items() if k != key}
        return rest if how == "drop" else {**rest, draw(DICT_KEYS): value[key]}
    return draw(YAMLISH)


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


def own_public_key(ifname, private_key):
    return wgf_keys.pubkey_or_none(private_key)


def test_the_base_pillars_are_valid():
    """The fuzz starts from pillars that pass, so each mutation is what breaks one."""
    for pillar in PILLARS:
        assert wgf_schema.validate(
            copy.deepcopy(pillar),
            "minion1",
            own_public_key,
            lambda minions: {m: MINE.get(m) for m in minions},
            {"main"},
        )


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


@fuzz(300)
@given(
    pillar=pillars(),
    mine=mines(),
    known_tables=st.sampled_from([None, {"main", "vpn"}, set()]),
    minion=st.sampled_from(["minion1", "m2", "m3"]),
)
def test_mutated_pillars_are_refused_or_valid_and_never_leak_a_key(
    pillar, mine, known_tables, minion
):
    try:
        result = wgf_schema.validate(
            pillar,
            minion,
            own_public_key,
            lambda minions: {m: mine.get(m) for m in minions},
            known_tables,
        )
    except SALTS_OWN as exc:
        event("refused")
        assert_no_secret(str(exc))
        return
    event("valid")
    check_validated(pillar, result)


@fuzz(100)
@given(value=YAMLISH)
def test_a_live_peer_change_is_refused_or_normalised(value):
    for change in (
        value,
        {"public_key": KEY_A, "preshared_key": value},
        {
            "public_key": KEY_A,
            "allowed_ips": value,
            "endpoint": value,
            "persistent_keepalive": value,
        },
    ):
        try:
            wgf_schema.normalise_peer_change("wg0", change)
        except SALTS_OWN as exc:
            assert_no_secret(str(exc))


# ------------------------------------------------------------------ the real loader


@pytest.fixture(scope="module")
def wireguard_module(tmp_path_factory):
    """The execution module as Salt loads it (module_dirs and utils_dirs of this repo)."""
    root = tmp_path_factory.mktemp("loader")
    opts = minion_opts(root, "minion1")
    opts["pillar"] = {}
    modules = salt.loader.minion_mods(opts, utils=salt.loader.utils(opts))
    return modules, str(root / "etc-wireguard")


@fuzz(40)
@given(pillar=pillars())
def test_mutated_pillars_through_the_real_salt_loader(wireguard_module, pillar):
    modules, config_dir = wireguard_module
    try:
        result = modules["wireguard.pillar_interfaces"](pillar=pillar, config_dir=config_dir)
    except SALTS_OWN as exc:
        event("refused")
        assert_no_secret(str(exc))
        return
    event("valid")
    assert_no_secret(repr(result))


# ------------------------------------------------------------------ keys on the command line

#: Keys Salt's command line reads as ``NAME=`` keywords (no ``+`` or ``/``, a letter
#: first), and keys it passes as they are.
CLI_KEYS = (
    "oG2x2LezPQgoco9roDifFiXA0Qy1A0isPnOKrQFbOXU=",
    "CJ13QhgiJdcEb8N0p8VLOI08gSZOvPv0sPDZ46aL200=",
)
ARGV_ITEMS = st.sampled_from(
    [
        *CLI_KEYS,
        PRIV,
        PSK,
        "wg0",
        "[10.0.0.2/32]",
        "25",
        "x",
        "allowed_ips=[10.0.0.3/32]",
        "endpoint=198.51.100.1:51820",
        "peer=hub",
        "test=True",
        "colour=red",
    ]
)


@fuzz(300)
@given(
    function=st.sampled_from(
        ["pubkey", "key_digest", "set_peer", "remove_peer", "apply_peers", "reresolve"]
    ),
    argv=st.lists(ARGV_ITEMS, max_size=8),
)
def test_keys_anywhere_on_the_command_line_are_never_echoed(wireguard_module, function, argv):
    """Salt's own parsing of a ``salt-call`` command line (``parse_input``, then
    ``load_args_and_kwargs``, which refuses unknown keywords quoting them), then the
    function: a refusal never quotes a key, wherever the keys were typed."""
    import salt.minion
    import salt.utils.args

    assert all(len(wgf_keys.decode(key)) == 32 for key in CLI_KEYS)
    modules, _ = wireguard_module
    func = modules[f"wireguard.{function}"]
    module = inspect.unwrap(func.func).__globals__  # under wgf_args.guard
    # and the file of wireguard.show, which reresolve calls through __salt__: Salt 3008
    # loads it again for that (its inner loader), so that load comes first
    inner = getattr(modules, "_dunder_salt", modules)
    shows = inspect.unwrap(inner["wireguard.show"].func).__globals__
    real = [(m, m["_wg"]) for m in (shows, module)]
    module["_wg"] = shows["_wg"] = lambda args: ""  # never the real wg: nothing may touch the host
    try:
        args, kwargs = salt.minion.load_args_and_kwargs(
            func, salt.utils.args.parse_input(argv), {"jid": "1"}
        )
        func(*args, **kwargs)
    except (*SALTS_OWN, TypeError) as exc:  # salt-call prints a TypeError's text too
        event(type(exc).__name__)
        for key in (*CLI_KEYS, PRIV, PSK):
            assert key[:12] not in str(exc) and key[-13:-1] not in str(exc), str(exc)
    finally:
        for namespace, wg in real:
            namespace["_wg"] = wg


# ------------------------------------------------------------------ wg show dump

FIELD = st.one_of(
    st.sampled_from(
        [
            "(none)",
            "off",
            "0",
            "25",
            "0x10",
            "51820",
            "wg0",
            KEY_A,
            "10.0.0.1/32,fd00::1/128",
            "[fd00::1]:51820",
            "1700000000",
            "-1",
            "\uff15",
            "9" * 5000,
        ]
    ),
    st.text(max_size=8),
)


@st.composite
def dumps(draw):
    """``wg show all dump`` (or one interface's) with keys where wg prints them, and
    some fields replaced by random text (tabs and newlines too)."""
    lines = []
    for _ in range(draw(st.integers(0, 3))):
        lines.append(["wg0", PRIV, KEY_A, "51820", "off"])
        for psk in draw(st.lists(st.sampled_from([PSK, PSK2, "(none)"]), max_size=3)):
            lines.append(
                [
                    "wg0",
                    KEY_B,
                    psk,
                    "198.51.100.2:51820",
                    "10.0.0.2/32",
                    "1700000000",
                    "100",
                    "200",
                    "25",
                ]
            )
    single = draw(st.booleans())
    for fields in lines:
        if single:
            del fields[0]
        secret_columns = {1 - single, 2 - single} if fields[2 - single] in SECRETS else {1 - single}
        for index in range(len(fields)):
            if index not in secret_columns and draw(st.integers(0, 9)) == 0:
                fields[index] = draw(FIELD)
    text = "\n".join("\t".join(fields) for fields in lines)
    if draw(st.integers(0, 4)) == 0:
        text += draw(st.text(max_size=30))
    return text, ("wg0" if single else None)


@fuzz(150)
@given(dump=dumps(), psk_digests=st.booleans())
def test_the_dump_parser_refuses_or_reads_and_drops_every_secret(dump, psk_digests):
    text, interface = dump
    try:
        parsed = wgf_dump.parse(text, interface, psk_digests, now=1700000100)
    except SALTS_OWN as exc:
        assert_no_secret(str(exc))
        return
    assert_no_secret(json.dumps(parsed))


@fuzz(200)
@given(text=st.text(max_size=200))
def test_the_dump_parser_takes_any_text(text):
    with contextlib.suppress(*SALTS_OWN):
        wgf_dump.parse(text, psk_digests=True)


# ------------------------------------------------------------------ wg-quick files

WG_SPACE = st.text(" \t\v\f\r", max_size=2)


@st.composite
def secret_lines(draw):
    """A line that ``wg`` reads as PrivateKey or PresharedKey: any case, wg's spaces
    anywhere in it, a comment after it; or the same line commented out, or a key in a
    comment of its own (issue 19: as secret)."""
    word, secret = draw(
        st.sampled_from([("PrivateKey", PRIV), ("PresharedKey", PSK), ("PresharedKey", PSK2)])
    )
    spelled = "".join(draw(WG_SPACE) + draw(st.sampled_from([c.lower(), c.upper()])) for c in word)
    value = secret
    if draw(st.integers(0, 4)) == 0:
        cut = draw(st.integers(1, len(secret) - 1))
        value = secret[:cut] + draw(WG_SPACE) + secret[cut:]
    comment = draw(st.sampled_from(["", " # old", "#x"]))
    commented = draw(st.sampled_from(["", "", "#", "# ", " ;", "# was: "]))
    if commented.endswith(": "):
        return f"{commented}{secret}"
    return f"{commented}{spelled}{draw(WG_SPACE)}={draw(WG_SPACE)}{value}{draw(WG_SPACE)}{comment}"


OTHER_LINES = st.one_of(
    st.sampled_from(
        [
            "[Interface]",
            "[Peer]",
            "[peer]",
            " [Interface] ",
            "[Foo]",
            "# hub",
            "#",
            "",
            "Address = 10.0.0.1/24, fd00::1/64",
            "Address = fe80::1%x",
            "ListenPort = 51820",
            "ListenPort = x",
            "MTU = 1420",
            "Table = off",
            "FwMark = 0x10",
            f"PublicKey = {KEY_A}",
            "PublicKey = short",
            "AllowedIPs = 10.0.0.2/32, 10.9.0.0/16",
            "AllowedIPs = 10.0.0.300/32",
            "Endpoint = 1.2.3.4:51820",
            "PersistentKeepalive = 25",
            "PostUp = ip route replace 10.9.0.0/16 dev %i proto static",
            "PostUp = ip route replace 10.9.0.0/33 dev %i proto static",
            "garbage",
            "= x",
            "Key =",
        ]
    ),
    st.text(max_size=20).map(lambda t: t.replace("\n", " ")),
)


@fuzz(200)
@given(lines=st.lists(st.one_of(secret_lines(), OTHER_LINES), max_size=14))
def test_the_conf_parser_and_masking_never_show_a_secret(lines):
    text = "\n".join(lines)
    masked = wgf_conf.mask(text)
    assert_no_secret(masked)
    assert masked.count("\n") == text.count("\n")
    conf = wgf_conf.parse(text)
    assert_no_secret(json.dumps(conf))
    assert_no_secret(json.dumps(wgf_live.restart_reasons(text, text + "\nPostUp = x\n")))


@fuzz(200)
@given(text=st.text(max_size=300))
def test_the_conf_parser_takes_any_text(text):
    conf = wgf_conf.parse(text)
    assert isinstance(conf["errors"], list)
    assert wgf_conf.mask(text).count("\n") == text.count("\n")


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


@st.composite
def fleets(draw):
    returned = answers()
    for _ in range(draw(st.integers(1, 4))):
        returned = mutate(draw, returned)
    if not isinstance(returned, dict):
        returned = {"mesh1": returned}
    # Salt names each minion by its id, a string
    return {str(minion): funs for minion, funs in returned.items()}


def test_the_healthy_answers_audit_clean():
    crossed = wgf_audit.cross_check(wgf_audit.fleet_from(answers()))
    assert crossed["problems"] == [] and len(crossed["links"]) == 3


@fuzz(250)
@given(returned=fleets())
def test_any_minion_answer_is_audited_or_named_unreadable(returned):
    fleet = wgf_audit.fleet_from(returned)
    assert set(fleet) == set(returned)
    crossed = wgf_audit.cross_check(fleet)
    wgf_audit.dot(fleet, crossed["links"], crossed["unknown_peers"])
    wgf_audit.mermaid(fleet, crossed["links"], crossed["unknown_peers"])
    wgf_audit.text_report(
        {
            "ok": False,
            "problems": crossed["problems"],
            "links": crossed["links"],
            "local": {m: e["local"] for m, e in fleet.items() if e["local"]},
            "unknown_peers": crossed["unknown_peers"],
            "unreachable": [],
            "minions": {
                m: {"error": e["error"], "interfaces": sorted(e["interfaces"])}
                for m, e in fleet.items()
            },
        }
    )
    healthy = answers()
    for minion, entry in fleet.items():
        assert entry["error"] is None or isinstance(entry["error"], str)
        if minion in healthy and returned[minion] == healthy[minion]:  # audited as usual
            assert entry["error"] is None and entry["interfaces"]["wg0"]["live"]


# ------------------------------------------------------------------ the beacon's config


@pytest.fixture(scope="module")
def beacon():
    return load("_beacons/wireguard.py", "wireguard_beacon_under_fuzz")


CONFIG_KEYS = st.one_of(
    st.sampled_from(
        ["interval", "stale_after", "renotify", "interfaces", "enabled", "_beacon_name"]
    ),
    DICT_KEYS,
)


@fuzz(150)
@given(
    config=st.one_of(
        YAMLISH, st.lists(st.dictionaries(CONFIG_KEYS, YAMLISH, max_size=2), max_size=5)
    )
)
def test_the_beacon_validates_any_configuration(beacon, config):
    valid, message = beacon.validate(config)
    assert isinstance(valid, bool) and isinstance(message, str)
