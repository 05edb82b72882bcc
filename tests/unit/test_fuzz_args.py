"""Property-based fuzz (issue 19) of two doors a user or a careless admin opens:

- the pillar, with what YAML and ``#!py`` renderers can put there that the base fuzz
  (test_fuzz.py) does not: numbers too long to show, names with ':', preshared keys of
  networks, and secrets planted where secrets go;
- every public function of the execution modules, with arguments as ``salt-call``
  parses them (``salt.utils.args.parse_input`` on generated strings, then
  ``salt.minion.load_args_and_kwargs``), called through the real Salt loader.

Whatever comes in, only Salt's own errors come out, and no planted key shows in any
message or return. Derandomized, as test_fuzz.py.
"""

import contextlib
import copy
import inspect
import json
import socket
from unittest import mock

import pytest
import salt.config
import salt.loader
import salt.minion
import salt.utils.args
import salt.utils.path
from hypothesis import assume, event, given
from hypothesis import strategies as st

from tests.support import pipeline
from tests.support.fuzz import (
    DICT_KEYS,
    KEY_A,
    KEY_B,
    KEY_C,
    MINE,
    PILLARS,
    PRIV,
    PSK,
    PSK2,
    SALTS_OWN,
    SCALARS,
    assert_no_secret,
    check_validated,
    fuzz,
)
from tests.support.fuzz import mutate as fuzz_mutate
from tests.support.minion import minion_opts

HUGE = [10**5000, -(10**1300), 2**4097]
#: Built when drawn: hypothesis shows its strategies, and repr() of these raises.
HUGE_INTS = st.builds(lambda index: HUGE[index], st.integers(0, len(HUGE) - 1))
#: Values the pillar's renderers can give beyond the base fuzz's.
MORE_SCALARS = st.one_of(SCALARS, HUGE_INTS, st.sampled_from(["a:b", ":", "m2:", "corp:x"]))
MORE_KEYS = st.one_of(DICT_KEYS, HUGE_INTS, st.sampled_from(["a:b", "m2:x", ":"]))
VALUES = st.recursive(
    MORE_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(MORE_KEYS, inner, max_size=4)
    ),
    max_leaves=8,
)

#: A network with preshared keys, and their keys as the ext_pillar gives them.
PSK_NET = {
    "networks": {
        "corp": {
            "interface": "wg3",
            "preshared_keys": True,
            "topology": "mesh",
            "nodes": {
                "minion1": {"address": "10.3.0.1/24", "endpoint": "198.51.100.1"},
                "m2": {"address": "10.3.0.2/24"},
                "m3": {"address": "10.3.0.3/24"},
            },
        }
    },
    "network_psks": {"corp": {"m2": PSK, "m3": PSK2}},
}
#: Clients and the formula's firewall (its keys need a firewall backend).
SERVED = {
    "interfaces": {
        "wg5": {
            "address": ["10.5.0.1/24", "fd05::1/64"],
            "listen_port": 51825,
            "private_key": PRIV,
            "endpoint": "vpn.example.com",
            "masquerade": ["eth0"],
            "open_port": ["198.51.100.0/24"],
            "access": {
                "default": "drop",
                "rules": [
                    {
                        "from": ["branch"],
                        "to": ["192.168.50.10/32"],
                        "proto": "tcp",
                        "ports": [22, 443],
                    },
                    {"from": ["phone", "10.5.0.0/24"], "to": ["192.168.50.0/24"]},
                ],
            },
            "pool": ["10.5.0.128/25"],
            "client_defaults": {"dns": ["10.5.0.1"], "persistent_keepalive": 25},
            "clients": {
                "phone": {},
                "laptop": {"address": "10.5.0.200/32", "preshared_key": True},
                "byo": {"public_key": KEY_B},
                "old": {"absent": True},
            },
            "peers": {
                "branch": {
                    "public_key": KEY_A,
                    "allowed_ips": ["10.5.0.2/32"],
                    "preshared_key": PSK,
                }
            },
        }
    }
}
MORE_PILLARS = [*PILLARS, PSK_NET, {**PILLARS[0], **PSK_NET}, SERVED]


def mutate(draw, value):
    """``value`` with one sub-value replaced (as tests.support.fuzz.mutate, with these
    values), or a mapping key renamed to one of them: a node id ``a:b``, a huge number."""
    return fuzz_mutate(
        draw, value, VALUES, MORE_KEYS, ("random", "random", "wrap", "rename", "rename"), 2
    )


@st.composite
def pillars(draw):
    pillar = copy.deepcopy(draw(st.sampled_from(MORE_PILLARS)))
    for _ in range(draw(st.integers(1, 3))):
        pillar = mutate(draw, pillar)
    if isinstance(pillar, dict) and draw(st.booleans()):
        # the ext_pillar's keys follow the nodes, renamed ones too
        net = (
            (pillar.get("networks") or {}).get("corp")
            if isinstance(pillar.get("networks"), dict)
            else None
        )
        nodes = net.get("nodes") if isinstance(net, dict) else None
        if isinstance(nodes, dict):
            pillar["network_psks"] = {"corp": dict.fromkeys(nodes, PSK)}
    return pillar


def test_the_base_pillars_with_preshared_keys_clients_and_firewall_are_valid():
    for pillar in MORE_PILLARS:
        result = pipeline.interfaces(
            copy.deepcopy(pillar),
            "minion1",
            lambda minions: {m: MINE.get(m) for m in minions},
            known_tables={"main"},
            firewall="nftables",
        )
        check_validated(pillar, result)


@fuzz(250)
@given(
    pillar=pillars(),
    minion=st.sampled_from(["minion1", "m2", "a:b"]),
    firewall=st.sampled_from(["nftables", "iptables", "none"]),
)
def test_any_pillar_is_refused_or_valid_and_its_secrets_are_found(pillar, minion, firewall):
    """Validation refuses what it cannot use, or every interface it returns renders, its
    keys found by their pillar paths (the private_key and config states read them so)."""
    try:
        result = pipeline.interfaces(
            pillar,
            minion,
            lambda minions: {m: MINE.get(m) for m in minions},
            known_tables={"main"},
            firewall=firewall,
        )
    except SALTS_OWN as exc:
        event("refused")
        assert_no_secret(str(exc))
        return
    event("valid")
    check_validated(pillar, result)


# ------------------------------------------------------------------ the CLI's arguments

#: Strings a user types after the function name: YAML the CLI parses, names, keys
#: (those with '+' or '/': Salt's CLI reads other keys as NAME= keywords, which
#: test_cli.py covers), numbers too long for Python to show, paths under the test's
#: own directory (@TMP@).
TOKENS = st.one_of(
    st.sampled_from(
        [
            "wg0",
            "wg1",
            "eth0",
            "phone",
            "laptop",
            "hub",
            "[wg0]",
            "{}",
            "[]",
            "[x]",
            "{a: 1}",
            '{"interfaces": "x"}',
            '{"at": 1, "interfaces": {"wg0": 5}}',
            '{"at": 1e400, "interfaces": {}}',
            "5",
            "0",
            "-1",
            "1e400",
            ".inf",
            ".nan",
            "null",
            "~",
            "true",
            "false",
            "yes",
            "''",
            '""',
            "9" * 5000,
            "1" + "0" * 400,
            "1" + "0" * 4000,
            "[1" + "0" * 4000 + "]",
            "0x10",
            "10.0.0.1/24",
            "172.16.1.0/24",
            "fd00::/64",
            "1.2.3.4:51820",
            "[fd00::1]:51820",
            "localhost:0",
            "a" * 300,
            "wg0\nPostUp = touch /x",
            '"a\\0b"',
            '"\\u2028"',
            "ansi",
            "utf8",
            "png",
            "svg",
            PRIV,
            PSK,
            PSK2,
            f"[{PSK}]",
            f"{{public_key: {KEY_A}, preshared_key: {PSK}}}",
            f'[{{"public_key": "{KEY_B}", "allowed_ips": ["10.9.0.2/32"], '
            f'"preshared_key": "{PSK2}"}}]',
            KEY_A,
            KEY_C,
            f"[{KEY_C}]",
            "@TMP@/export",
            "@TMP@/wg",
            "@TMP@/missing",
            "{minion1: [wg0]}",
            '{"minion1": {"private_key": [], "peers": []}}',
            "{other: 1}",
        ]
    ),
    st.text(max_size=12),
    VALUES.map(
        lambda value: (
            json.dumps(value, default=str) if not any(v in HUGE for v in _leaves(value)) else "[]"
        )
    ),
)


def _leaves(value):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield key
            yield from _leaves(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _leaves(sub)
    else:
        yield value


#: The rotate orders' contents are checked by wgf_rotate's own fuzz; here, what the
#: argument itself is.
ORDERS = st.sampled_from(["[minion1]", "5", "null", "{}", "{other: 1}", "x", "[]"])


@st.composite
def command_lines(draw, function, parameters):
    """The words after ``salt-call FUNCTION``: positional ones and NAME=VALUE ones."""
    values = ORDERS if function.startswith("wireguard_rotate.") else TOKENS
    names = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    required = [p.name for p in parameters if p.default is p.empty and p.name in names]
    if not names:
        return draw(st.lists(values, max_size=1))
    count = draw(st.integers(len(required), len(names)))
    words = [draw(values) for _ in range(count)]
    # only its own names: Salt itself refuses another NAME=VALUE, showing the value
    for name in draw(
        st.lists(st.sampled_from(names[count:]), max_size=2, unique=True)
        if names[count:]
        else st.just([])
    ):
        words.append(f"{name}={draw(values)}")
    return words


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Both execution modules as the minion loads them, with a pillar that holds a
    private key, preshared keys and a client; the commands they would run (``wg``,
    ``ip``) missing and names not resolving, so nothing outside the test changes."""
    root = tmp_path_factory.mktemp("fuzzargs")
    (root / "wg").mkdir(mode=0o700)
    (root / "export").mkdir(mode=0o700)
    pillar = copy.deepcopy(PILLARS[0])
    pillar["interfaces"]["wg0"].update(
        endpoint="198.51.100.9", clients={"phone": {"preshared_key": True}}
    )
    pillar["interfaces"]["wg0"]["peers"]["server"].pop("minion")  # no mine here
    pillar["interfaces"]["wg0"]["peers"]["server"]["public_key"] = KEY_C
    pillar["interfaces"]["wg0"]["peers"]["old"]["public_key"] = "Tr" + KEY_C[2:]
    pillar["lookup"] = {"config_dir": str(root / "wg")}
    opts = minion_opts(root, "minion1")
    opts["pillar"] = {"wireguard": pillar}
    modules = salt.loader.minion_mods(opts, utils=salt.loader.utils(opts))
    functions = {
        name: modules[name]
        for name in sorted(modules)
        if name.split(".")[0] in ("wireguard", "wireguard_rotate")
    }
    return functions, str(root)


def quiet_minion():
    """No ``wg``/``ip``/``nft`` found, no name resolves, no command runs."""
    which = salt.utils.path.which

    def no_commands(name):
        return None if name in ("wg", "ip", "nft", "iptables", "unshare") else which(name)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "not in this test")

    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch("salt.utils.path.which", no_commands))
    stack.enter_context(mock.patch("socket.getaddrinfo", no_dns))
    return stack


def test_every_public_function_is_fuzzed(loaded):
    functions, _ = loaded
    assert sorted(functions) == sorted(FUNCTIONS)


FUNCTIONS = [
    "wireguard.apply_peers",
    "wireguard.check",
    "wireguard.client_config",
    "wireguard.client_expiry_report",
    "wireguard.clients",
    "wireguard.config_peers",
    "wireguard.confirm_accept",
    "wireguard.confirm_report",
    "wireguard.confirm_status",
    "wireguard.confirm_undo",
    "wireguard.genkey",
    "wireguard.genpsk",
    "wireguard.interfaces",
    "wireguard.is_interface_name",
    "wireguard.key_digest",
    "wireguard.link_states",
    "wireguard.metrics",
    "wireguard.orchestration_facts",
    "wireguard.pillar_interfaces",
    "wireguard.pillar_settings",
    "wireguard.public_keys",
    "wireguard.pubkey",
    "wireguard.remove_peer",
    "wireguard.render_config",
    "wireguard.reresolve",
    "wireguard.resolve_endpoint",
    "wireguard.route_command",
    "wireguard.service_name",
    "wireguard.set_peer",
    "wireguard.show",
    "wireguard.verify_facts",
    "wireguard.verify_probe",
    "wireguard_rotate.announce",
    "wireguard_rotate.stage",
    "wireguard_rotate.switch",
]
#: What a function returns by design: a new key, a key's public half or digest.
MAKES_KEYS = ("wireguard.genkey", "wireguard.genpsk")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_any_command_line_is_refused_or_answered_without_a_key(loaded, function):
    functions, root = loaded
    func = functions[function]
    parameters = list(inspect.signature(func).parameters.values())

    @fuzz(20)
    @given(words=command_lines(function, parameters))
    def run(words):
        words = [word.replace("@TMP@", root) for word in words]
        try:
            args, kwargs = salt.minion.load_args_and_kwargs(
                func, salt.utils.args.parse_input(words), data={"fun": function}
            )
        except SALTS_OWN as exc:  # Salt's own refusal of an unknown NAME=
            assert_no_secret(str(exc))
            return
        # a path outside the test's directory would be a real directory on this machine
        for value in [*args, *kwargs.values()]:
            assume(
                not isinstance(value, str)
                or not value.startswith(("/", "~"))
                or value.startswith(root)
            )
        try:
            inspect.signature(func).bind(*args, **kwargs)
        except TypeError:  # the CLI says "Passed invalid arguments" and shows the usage
            event("wrong number of arguments")
            return
        with quiet_minion(), contextlib.chdir(root):
            try:
                returned = func(*args, **kwargs)
            except SALTS_OWN as exc:
                event("refused")
                assert_no_secret(str(exc))
                return
        event("answered")
        if function not in MAKES_KEYS:
            assert_no_secret(repr(returned))

    run()
