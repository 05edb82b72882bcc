"""Crashes that must be refusals (issue 19): numbers too long to show, node ids a pillar
path cannot hold, and the execution module's arguments of the wrong type, each called
the way the minion calls it (the real Salt loader, arguments as the CLI parses them)."""

import inspect
import pathlib

import pytest
import salt.config
import salt.loader
import salt.minion
import salt.utils.args
import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_args
import wgf_schema
from tests.support import pipeline
from tests.support.minion import minion_opts

PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="
REPO = pathlib.Path(__file__).resolve().parents[2]
HUGE = 10**5000  # past Python's 4300-digit limit: str() and repr() of it raise


# ------------------------------------------------------------------ huge numbers


def test_a_number_too_long_to_show_is_shown_as_what_it_is():
    assert wgf_addr.shown(HUGE) == "<a number of more than 4096 bits>"
    assert wgf_addr.shown(-HUGE) == "<a number of more than 4096 bits>"
    assert wgf_addr.shown(2**64) == "'18446744073709551616'"


def test_a_number_too_long_is_refused_as_text_and_as_a_number():
    with pytest.raises(SaltInvocationError, match=r"^route: a number of more than 4096 bits"):
        wgf_addr.text(HUGE, "route")
    with pytest.raises(
        SaltInvocationError,
        match=r"^mtu: <a number of more than 4096 bits> "
        r"is out of range; mtu is 576-9000",
    ):
        wgf_addr.integer(HUGE, "mtu", 576, 9000, "mtu")
    with pytest.raises(SaltInvocationError, match=r"^sample is a number of seconds from 0 to 60"):
        wgf_addr.seconds(10**400, "sample", 60)  # float() of it: OverflowError


@pytest.mark.parametrize("where", ["mtu", "peer name", "node id", "unknown key", "lookup"])
def test_a_huge_number_anywhere_in_the_pillar_is_refused_naming_its_place(where):
    iface = {"address": "10.0.0.1/24", "peers": {}}
    pillar = {"interfaces": {"wg0": iface}}
    if where == "mtu":
        iface["mtu"] = HUGE
        place = "wireguard:interfaces:wg0:mtu"
    elif where == "peer name":
        iface["peers"][HUGE] = {"public_key": PSK}
        place = "wireguard:interfaces:wg0:peers: a key"
    elif where == "node id":
        pillar = {
            "networks": {
                "corp": {
                    "interface": "wg1",
                    "nodes": {"m1": {"address": "10.0.0.1/24"}, -HUGE: {"address": "10.0.0.2/24"}},
                }
            }
        }
        place = "wireguard:networks:corp:nodes: a key"
    elif where == "unknown key":
        iface["x"] = [{"y": HUGE}]
        place = "wireguard:interfaces:wg0:x"
    else:
        pillar["lookup"] = {"config_dir": HUGE}
        place = "wireguard:lookup:config_dir"
    with pytest.raises(SaltInvocationError) as exc:
        pipeline.interfaces(pillar, "m1")
    assert str(exc.value).startswith(place), str(exc.value)


def test_a_pillar_that_holds_itself_is_walked_once():
    looped = {"a": []}
    looped["a"].append(looped)
    assert wgf_addr.no_huge_numbers(looped, "wireguard") is looped


# ------------------------------------------------------------------ ':' in node ids


def psk_network(node, netname="corp"):
    return {
        "networks": {
            netname: {
                "interface": "wg1",
                "preshared_keys": True,
                "nodes": {"m1": {"address": "10.0.0.1/24"}, node: {"address": "10.0.0.2/24"}},
            }
        },
        "network_psks": {netname: {node: PSK}},
    }


@pytest.mark.parametrize(
    ("node", "netname", "where"),
    [
        ("a:b", "corp", "network 'corp', node 'a:b'"),
        ("m2", "co:rp", "network 'co:rp'"),
    ],
)
def test_a_name_with_a_colon_cannot_have_preshared_keys(node, netname, where):
    """Its pillar path ``wireguard:network_psks:<network>:<node>`` would split at the
    ':': the private_key and config states crashed with a KeyError reading the key."""
    with pytest.raises(SaltInvocationError) as exc:
        pipeline.interfaces(psk_network(node, netname), "m1")
    assert f"- {where}, key 'preshared_keys': a network or node name with ':'" in str(exc.value)
    assert PSK not in str(exc.value)


def test_a_node_with_a_colon_is_fine_without_preshared_keys():
    pillar = psk_network("a:b")
    pillar["networks"]["corp"]["preshared_keys"] = False
    assert pipeline.interfaces(pillar, "m1")["wg1"]["peers"]["a:b"]["allowed_ips"] == [
        "10.0.0.2/32"
    ]


def test_the_preshared_keys_of_other_nodes_are_read_by_their_path():
    iface = pipeline.interfaces(psk_network("m2"), "m1")["wg1"]
    assert wgf_schema.secrets_of(psk_network("m2"), iface)["preshared_keys"] == {"m2": PSK}


# ------------------------------------------------------------------ the module's arguments


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The execution modules as the minion loads them; no interface is live (``wg`` is
    asked, and answers with no interface)."""
    root = tmp_path_factory.mktemp("args")
    opts = minion_opts(root, "minion1")
    opts["pillar"] = {
        "wireguard": {
            "lookup": {"config_dir": str(root / "wg")},
            "interfaces": {"wg0": {"address": "10.9.0.1/24"}},
        }
    }
    utils = salt.loader.utils(opts)
    modules = salt.loader.minion_mods(opts, utils=utils)
    modules.states = salt.loader.states(opts, modules, utils, salt.loader.serializers(opts))
    return modules


def cli(modules, function, *tokens):
    """``salt-call FUNCTION TOKENS...``: the arguments parsed as the CLI parses them."""
    func = modules[function]
    args, kwargs = salt.minion.load_args_and_kwargs(
        func, salt.utils.args.parse_input(list(tokens)), data={"fun": function}
    )
    return func(*args, **kwargs)


@pytest.mark.parametrize(
    ("function", "tokens", "message"),
    [
        (
            "wireguard.link_states",
            ['since={"interfaces": "x"}'],
            "since: expected an earlier return of wireguard.link_states",
        ),
        (
            "wireguard.link_states",
            ['since={"at": 1, "interfaces": {"wg0": 5}}'],
            "since: expected an earlier return of wireguard.link_states",
        ),
        ("wireguard.render_config", ["[wg0]"], "interface: got a list: an interface name is"),
        ("wireguard.clients", ["{}"], "interface: got a dict: an interface name is"),
        ("wireguard.client_config", ["[x]", "phone"], "interface: got a list"),
        (
            "wireguard.client_config",
            ["wg0" + "a" * 300, "phone"],
            "interface: got 303 characters: an interface name is 1-15 characters",
        ),
        ("wireguard.client_config", ["wg0", "[phone]"], "client: expected a name (a string)"),
        ("wireguard.apply_peers", ["wg0", "peers=5"], "peers: expected a list, got int"),
        ("wireguard.apply_peers", ["wg0", "remove=5"], "remove: expected a list, got int"),
        ("wireguard.public_keys", ["config_dir=5"], "config_dir: expected a directory path"),
        ("wireguard.pillar_interfaces", ["config_dir=[x]"], "config_dir: expected a directory"),
        ("wireguard.check", ["config_dir={a: 1}"], "config_dir: expected a directory path"),
        (
            "wireguard.config_peers",
            ["wg0", 'config_dir="a\\0b"'],
            "config_dir: newlines and control characters are refused",
        ),
        ("wireguard.client_config", ["wg0", "phone", "path=[x]"], "path: expected a directory"),
        ("wireguard.show", ["psk_digests=[x]"], "psk_digests: expected True or False, got list"),
        ("wireguard.reresolve", ["test=yes please"], "test: expected True or False, got str"),
        ("wireguard.reresolve", ["peer={}"], "peer: expected a name (a string), got dict"),
        ("wireguard.check", ["sample=1" + "0" * 400], "sample is a number of seconds from 0 to 60"),
        (
            "wireguard.check",
            ["stale_after=1" + "0" * 4000],
            "stale_after: a number of more than 4096 bits is refused",
        ),
        ("wireguard.route_command", ["1" + "0" * 4000], "cidr: a number of more than 4096 bits"),
        (
            "wireguard.pillar_interfaces",
            ["pillar={interfaces: {wg0: {mtu: 1%s}}}" % ("0" * 4000)],
            "pillar:interfaces:wg0:mtu: a number of more than 4096 bits is refused",
        ),
        ("wireguard_rotate.switch", ["[minion1]"], "wireguard_rotate.switch: orders: a mapping"),
        ("wireguard_rotate.stage", ["null"], "wireguard_rotate.stage: orders: a mapping"),
        ("wireguard.render_config", ["null"], "interface: got a NoneType: an interface name is"),
        ("wireguard.config_peers", ["wg0", PSK], "config_dir: expected an absolute path"),
    ],
)
def test_an_argument_of_the_wrong_kind_is_refused_naming_it(loaded, function, tokens, message):
    with pytest.raises(SaltInvocationError) as exc:
        cli(loaded, function, *tokens)
    assert str(exc.value).startswith(message), str(exc.value)


@pytest.mark.parametrize("typed", ["1234", "0100", "+5", "0x10", "1.5"])
def test_a_name_the_cli_reads_as_a_number_is_refused_not_guessed(loaded, typed):
    """``0100`` arrives as 100: the client '100' is another device."""
    with pytest.raises(SaltInvocationError, match=r"^client: got a number; quote a name"):
        cli(loaded, "wireguard.client_config", "wg0", typed)
    with pytest.raises(SaltInvocationError, match=r"^interface 'wg0' has no client '0100' in"):
        cli(loaded, "wireguard.client_config", "wg0", '"0100"')


def test_good_arguments_still_work(loaded):
    assert cli(loaded, "wireguard.is_interface_name", "wg0") is True
    assert cli(loaded, "wireguard.route_command", "172.16.1.0/24").startswith("ip route")
    assert "Address = 10.9.0.1/24" in cli(loaded, "wireguard.render_config", "wg0")
    with pytest.raises(CommandExecutionError):
        cli(loaded, "wireguard.config_peers", "wg0")  # no file yet
    states = cli(loaded, "wireguard.link_states", "since={at: 1, interfaces: {wg0: {}}}")
    assert states["stale_after"] == 180


def test_every_argument_of_every_public_function_has_a_rule(loaded):
    """A new argument gets a rule (``wgf_args.RULES``), or it is not checked at all."""
    functions = {
        name: func
        for name, func in loaded.items()
        if name.split(".")[0] in ("wireguard", "wireguard_rotate", "wireguard_layout")
    }
    assert len(functions) > 20
    for name, func in functions.items():
        parameters = inspect.signature(func).parameters.values()
        named = {p.name for p in parameters if p.kind is not p.VAR_KEYWORD}
        assert named <= set(wgf_args.RULES), (name, named - set(wgf_args.RULES))
        assert hasattr(func.func, "__wrapped__"), f"{name} is not guarded"


def test_the_guard_keeps_each_signature_for_salt(loaded):
    spec = salt.utils.args.get_function_argspec(loaded["wireguard.set_peer"])
    assert spec.args[:2] == ["interface", "public_key"] and spec.keywords == "kwargs"
    assert "Add a peer to a live interface" in loaded["wireguard.set_peer"].__doc__


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("wireguard.route_command", "route: '<hidden>' is not a valid CIDR"),
        ("wireguard.resolve_endpoint", "endpoint: '<hidden>' has no port"),
        ("wireguard.is_interface_name", None),
    ],
)
def test_a_key_typed_where_a_name_or_address_goes_is_not_shown(loaded, function, message):
    """Hidden, as the one masking rule hides keys: the message reaches the job cache."""
    if message is None:
        assert cli(loaded, function, PSK) is False
        return
    with pytest.raises(SaltInvocationError) as exc:
        cli(loaded, function, PSK)
    assert str(exc.value).startswith(message) and PSK[:16] not in str(exc.value)


def test_a_key_inside_a_longer_value_is_hidden_too():
    assert wgf_addr.shown(f"[{PSK}, wg0]") == "'[<hidden>, wg0]'"
    assert wgf_addr.shown("x" * 44) == "'" + "x" * 44 + "'"  # not a key's shape


@pytest.mark.parametrize(
    ("state", "kwargs", "message"),
    [
        (
            "wireguard.private_key",
            {"name": "wg0", "config_dir": ["x"]},
            "config_dir: expected a directory path (a string), got list",
        ),
        (
            "wireguard.config",
            {"name": "wg0", "config_dir": "etc/wireguard"},
            "config_dir: expected an absolute path",
        ),
        (
            "wireguard.firewall",
            {"name": "wg0", "config_dir": 5},
            "config_dir: expected a directory path (a string), got int",
        ),
        ("wireguard.peer", {"name": PSK, "interface": {"wg0": 1}}, "interface: got a dict"),
    ],
)
def test_a_state_with_an_argument_of_the_wrong_kind_fails_naming_it(loaded, state, kwargs, message):
    """A failed state, not a traceback in its comment."""
    ret = loaded.states[state](**kwargs)
    assert ret["result"] is False and ret["changes"] == {}, ret
    assert ret["comment"].startswith(message), ret
    assert isinstance(ret["name"], str)


def test_the_validation_cache_key_of_a_pillar_with_a_huge_number_names_its_place():
    with pytest.raises(SaltInvocationError, match=r"^wireguard:interfaces:wg0:mtu: a number"):
        wgf_addr.checked_repr({"interfaces": {"wg0": {"mtu": HUGE}}}, "wireguard")
    assert wgf_addr.checked_repr({"a": [1, 2**5000]}, "wireguard") == repr({"a": [1, 2**5000]})


def test_pillar_settings_hold_the_minion_wide_values_once(loaded):
    settings = loaded["wireguard.pillar_settings"]()
    assert settings["firewall"] in ("nftables", "iptables")
    assert settings["firewall"] == loaded["wireguard.pillar_interfaces"]()["wg0"]["firewall"]
    assert settings["needs"] == {"resolvconf": False, "firewall_tools": False}
    given = {"interfaces": {"wg0": {"address": "10.9.0.1/24", "dns": "10.9.0.53"}}}
    assert loaded["wireguard.pillar_settings"](given)["needs"]["resolvconf"] is True
    with pytest.raises(SaltInvocationError, match=r"interface 'wg0', key 'address'"):
        loaded["wireguard.pillar_settings"]({"interfaces": {"wg0": {"address": "x"}}})


def test_a_huge_number_in_the_minions_own_pillar_is_refused_naming_its_place(loaded):
    iface = loaded.pack["__pillar__"]["wireguard"]["interfaces"]["wg0"]
    iface["mtu"] = HUGE
    try:
        with pytest.raises(
            SaltInvocationError, match=r"^wireguard:interfaces:wg0:mtu: a number of more than"
        ):
            loaded["wireguard.pillar_interfaces"]()
    finally:
        del iface["mtu"]
    assert loaded["wireguard.pillar_interfaces"]()["wg0"]["mtu"] is None


def test_each_interface_names_its_files_and_service_from_the_config_dir(loaded):
    """The SLS files take these paths as they are: they build none themselves."""
    directory = loaded["wireguard_layout.config_dir"]()
    iface = loaded["wireguard.pillar_interfaces"]()["wg0"]
    assert iface["files"] == {
        "conf": f"{directory}/wg0.conf",
        "key": f"{directory}/wg0.key",
        "clients_record": f"{directory}/wg0.clients.json",
        "clients_dir": f"{directory}/clients/wg0",
    }
    assert (iface["service"], iface["service_link"]) == ("wg-quick@wg0", None)
    assert iface["service"] == loaded["wireguard.service_name"]("wg0")
    files = loaded["wireguard.pillar_settings"]()["files"]
    assert files == {"config_dir": directory, "marker": f"{directory}/.wireguard-formula"}
    other = loaded["wireguard.pillar_interfaces"](config_dir="/srv/wg-elsewhere")["wg0"]
    assert other["files"]["key"] == "/srv/wg-elsewhere/wg0.key"


def test_the_map_data_is_kept_for_one_state_run_only(tmp_path):
    """map.jinja renders its parameters/ layers once a state run (every SLS file imports
    it): inside a run (Salt's State gives its context the run's file client) the checked
    map is kept under its name; outside one nothing is; a bad value is refused by name
    either way."""
    opts = minion_opts(tmp_path, "minion1")
    defaults = REPO / "wireguard" / "parameters" / "defaults.yaml"
    values = {**yaml.safe_load(defaults.read_text())["values"], "config_dir": "/etc/wireguard-x"}
    outside = salt.loader.minion_mods(opts, utils=salt.loader.utils(opts))
    with pytest.raises(SaltInvocationError, match="wireguard:lookup: must be a mapping"):
        outside["wireguard_layout.run_map"]("a", None, remember=True)
    run_context = {"fileclient": None}
    in_run = salt.loader.minion_mods(opts, context=run_context, utils=salt.loader.utils(opts))
    for modules, kept in ((outside, False), (in_run, True)):
        run_map = modules["wireguard_layout.run_map"]
        assert run_map("a") is None
        with pytest.raises(SaltInvocationError, match="wireguard:lookup:config_dir"):
            run_map("a", {**values, "config_dir": "/etc"}, remember=True)
        checked = run_map("a", values, remember=True)
        assert checked["config_dir"] == "/etc/wireguard-x"
        assert (run_map("a") == checked) is kept
        assert run_map("b") is None
    in_run["wireguard_layout.run_map"]("a")["config_dir"] = "changed by a caller"
    assert in_run["wireguard_layout.run_map"]("a")["config_dir"] == "/etc/wireguard-x"
