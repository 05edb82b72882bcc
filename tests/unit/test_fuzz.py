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
from hypothesis import event, given
from hypothesis import strategies as st

import wgf_audit
import wgf_audit_report
import wgf_conf
import wgf_dump
import wgf_fleet
import wgf_keys
import wgf_live
import wgf_schema
from tests.support import pipeline
from tests.support.fuzz import (
    DICT_KEYS,
    KEY_A,
    KEY_B,
    MINE,
    PILLARS,
    PRIV,
    PSK,
    PSK2,
    SALTS_OWN,
    SECRETS,
    YAMLISH,
    answers,
    assert_no_secret,
    check_validated,
    fuzz,
    mines,
    mutate,
    pillars,
)
from tests.support.minion import minion_opts
from tests.unit.conftest import load


def test_the_base_pillars_are_valid():
    """The fuzz starts from pillars that pass, so each mutation is what breaks one."""
    for pillar in PILLARS:
        assert pipeline.interfaces(
            copy.deepcopy(pillar),
            "minion1",
            lambda minions: {m: MINE.get(m) for m in minions},
            known_tables={"main"},
        )


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
        result = pipeline.interfaces(
            pillar,
            minion,
            lambda minions: {m: mine.get(m) for m in minions},
            known_tables=known_tables,
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
    crossed = wgf_audit.cross_check(wgf_fleet.fleet_from(answers()))
    assert crossed["problems"] == [] and len(crossed["links"]) == 3


@fuzz(250)
@given(returned=fleets())
def test_any_minion_answer_is_audited_or_named_unreadable(returned):
    fleet = wgf_fleet.fleet_from(returned)
    assert set(fleet) == set(returned)
    crossed = wgf_audit.cross_check(fleet)
    wgf_audit_report.dot(fleet, crossed["links"], crossed["unknown_peers"])
    wgf_audit_report.mermaid(fleet, crossed["links"], crossed["unknown_peers"])
    wgf_audit_report.text_report(
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
