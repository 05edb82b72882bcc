"""Pillar validation and normalisation (``wgf_schema``) and config rendering (``wgf_conf``)."""

import pytest
from salt.exceptions import SaltInvocationError

import wgf_conf
import wgf_keys
import wgf_pipeline
import wgf_schema
from tests.support import pipeline

KEY_A = "scGH95QfjmKl/rjJQD6gDRCe9/fYTWxq2K8a8imo2TE="
KEY_B = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PRIV = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="


def pillar(iface=None, peer=None, name="wg0"):
    iface = {"address": "10.1.1.11/24", **(iface or {})}
    iface.setdefault(
        "peers", {"hub": {"public_key": KEY_A, "allowed_ips": ["10.1.1.0/24"], **(peer or {})}}
    )
    return {"interfaces": {name: iface}}


#: The routing tables a Debian minion's /etc/iproute2/rt_tables defines.
RT_TABLES = {"local", "main", "default"}


def validate(wireguard, minion="minion1", **facts):
    """The pillar pipeline's interfaces as ``minion`` sees its pillar ``wireguard``."""
    facts.setdefault("known_tables", RT_TABLES)
    return pipeline.interfaces(wireguard, minion, **facts)


def test_defaults_are_filled_in_and_secrets_left_out():
    got = validate(
        pillar({"private_key": PRIV}, {"preshared_key": PSK, "persistent_keepalive": "off"})
    )
    wg0 = got["wg0"]
    assert wg0["address"] == ["10.1.1.11/24"] and wg0["enabled"] and not wg0["absent"]
    assert wg0["table"] == "auto" and wg0["purge_peers"] is True and wg0["ipv6"] is False
    assert wg0["has_private_key"] is True and "private_key" not in wg0
    hub = wg0["peers"]["hub"]
    assert hub["has_preshared_key"] is True and "preshared_key" not in hub
    assert hub["preshared_key_pillar"] == "wireguard:interfaces:wg0:peers:hub:preshared_key"
    assert hub["persistent_keepalive"] is None
    assert PRIV not in repr(got) and PSK not in repr(got)


def test_values_are_normalised():
    got = validate(
        pillar(
            {
                "address": ["10.1.1.11/24", "fd00::11/64"],
                "routes": "172.16.1.9/24, 10.9.0.0/16",
                "fwmark": "0x1234",
                "table": 1234,
                "dns": "1.1.1.1",
                "mtu": 1420,
            },
            {"allowed_ips": ["10.1.1.5/24", "192.168.1.0/24", "10.1.1.0/24"]},
        )
    )["wg0"]
    assert got["routes"] == ["172.16.1.0/24", "10.9.0.0/16"]
    assert got["fwmark"] == 0x1234 and got["table"] == "1234" and got["dns"] == ["1.1.1.1"]
    assert got["ipv6"] is True
    assert got["peers"]["hub"]["allowed_ips"] == ["10.1.1.0/24", "192.168.1.0/24"]


BAD = [
    # (interface settings, peer settings, interface name, words the message must hold)
    ({}, {}, "../x", ["interface '../x'", "1-15 characters"]),
    ({}, {}, "wg0/../../etc/x", ["interface 'wg0/../../etc/x'"]),
    ({}, {}, "wg-name-too-long", ["interface 'wg-name-too-long'"]),
    ({}, {}, "..", ["interface '..'"]),
    ({"private_key": "short"}, {}, "wg0", ["'wg0'", "'private_key'", "not valid base64"]),
    ({"private_key": PRIV + "\n"}, {}, "wg0", ["'private_key'", "control character"]),
    ({}, {"public_key": KEY_A[:-4] + "====" + "AAAA"}, "wg0", ["peer 'hub'", "'public_key'"]),
    ({}, {"public_key": "QUFB"}, "wg0", ["'public_key'", "decodes to 3 bytes"]),
    (
        {},
        {"allowed_ips": ["10.1.1.0/24\nPostUp = touch /tmp/x"]},
        "wg0",
        ["peer 'hub'", "'allowed_ips'", "control character"],
    ),
    (
        {},
        {"endpoint": "vpn.example.com:51820\nPostUp = id"},
        "wg0",
        ["'endpoint'", "control character"],
    ),
    ({"dns": ["1.1.1.1\nPostUp = id"]}, {}, "wg0", ["'dns'", "control character"]),
    ({"post_up": "echo hi\nPostUp = id"}, {}, "wg0", ["'post_up'", "control character"]),
    ({"listen_port": 0}, {}, "wg0", ["'listen_port'", "1-65535"]),
    ({"listen_port": 70000}, {}, "wg0", ["'listen_port'", "1-65535"]),
    ({"mtu": 100}, {}, "wg0", ["'mtu'", "576-65535"]),
    ({"mtu": 1000, "address": "fd00::1/64"}, {}, "wg0", ["'mtu'", "1280-65535"]),
    ({}, {"persistent_keepalive": -1}, "wg0", ["'persistent_keepalive'", "0-65535"]),
    ({}, {"endpoint": "198.51.100.1"}, "wg0", ["'endpoint'", "has no port"]),
    ({}, {"endpoint": "fd00::1:51820"}, "wg0", ["'endpoint'", "without brackets"]),
    ({}, {"endpoint": "[fd00::1]:0"}, "wg0", ["'endpoint'", "1-65535"]),
    ({}, {"endpoint": "bad_host!:51820"}, "wg0", ["'endpoint'", "not a valid host"]),
    ({}, {"allowed_ips": ["10.1.1.0/33"]}, "wg0", ["'allowed_ips'", "not a valid CIDR"]),
    ({"address": "10.1.1.300/24"}, {}, "wg0", ["'address'", "not a valid address"]),
    ({"table": "main table"}, {}, "wg0", ["'table'"]),
    ({"fwmark": "0xZZ"}, {}, "wg0", ["'fwmark'"]),
    ({"enabled": "yes"}, {}, "wg0", ["'enabled'", "true or false"]),
    ({"masquerade": ["eth0; rm -rf /"]}, {}, "wg0", ["'masquerade'"]),
    # iptables reads '+' as a wildcard: wg+ is every wg*, + every interface
    ({}, {}, "wg+", ["interface 'wg+'", "'+' is refused", "wildcard"]),
    ({}, {}, "w+g", ["interface 'w+g'", "'+' is refused"]),
    ({"masquerade": ["eth+"]}, {}, "wg0", ["'masquerade'", "'eth+'", "wildcard"]),
    ({"masquerade": "+"}, {}, "wg0", ["'masquerade'", "'+'", "every interface"]),
    ({}, {"allowed_ip": ["10.1.1.0/24"]}, "wg0", ["peer 'hub'", "did you mean 'allowed_ips'"]),
    ({}, {"AllowedIPs": ["10.1.1.0/24"]}, "wg0", ["did you mean 'allowed_ips'"]),
    ({"listenport": 1}, {}, "wg0", ["did you mean 'listen_port'"]),
    ({"save_config": True}, {}, "wg0", ["'save_config'", "overwrite"]),
    (
        {
            "peers": {
                "a": {"public_key": KEY_A, "allowed_ips": ["10.9.0.0/24"]},
                "b": {"public_key": KEY_B, "allowed_ips": ["10.9.0.5/24"]},
            }
        },
        {},
        "wg0",
        ["peer 'b'", "10.9.0.0/24 is also in peer 'a'"],
    ),
    (
        {
            "private_key": PRIV,
            "peers": {"self": {"public_key": "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="}},
        },
        {},
        "wg0",
        ["peer 'self'", "own public key"],
    ),
    ({}, {"public_key": None}, "wg0", ["peer 'hub'", "'public_key' is missing"]),
]


@pytest.mark.parametrize(("iface", "peer", "name", "words"), BAD)
def test_bad_pillar_is_refused_naming_interface_peer_and_key(iface, peer, name, words):
    with pytest.raises(SaltInvocationError) as error:
        validate(pillar(iface, peer, name))
    for word in words:
        assert word in str(error.value)
    assert "nothing was changed" in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(SaltInvocationError) as error:
        validate(pillar({"listen_port": 0, "mtu": 1}, {"endpoint": "x"}))
    assert str(error.value).count("\n- ") == 3


def test_own_key_check_uses_the_key_file_or_pillars_key():
    """Without a pillar private_key the loader reads the key file (``needs`` says so)
    and hands its public key over; pillar's key, when given, is the own key."""
    mine_own = pillar(peer={"public_key": wgf_keys.pubkey(PRIV)})
    assert wgf_pipeline.needs(wgf_pipeline.compile_pillar(mine_own, "m"))["key_files"] == ["wg0"]
    with pytest.raises(SaltInvocationError, match="own public key"):
        validate(mine_own, own_public_keys={"wg0": wgf_keys.pubkey(PRIV)})
    assert validate(mine_own, own_public_keys={"wg0": None})["wg0"]["peers"]
    with_key = pillar({"private_key": PRIV}, peer={"public_key": wgf_keys.pubkey(PRIV)})
    assert wgf_pipeline.needs(wgf_pipeline.compile_pillar(with_key, "m"))["key_files"] == []
    with pytest.raises(SaltInvocationError, match="own public key"):
        validate(with_key, own_public_keys={"wg0": None})


def test_absent_peer_needs_no_key_and_does_not_conflict():
    got = validate(
        pillar(
            {
                "peers": {
                    "old": {"absent": True, "public_key": KEY_B, "allowed_ips": ["10.1.1.0/24"]},
                    "new": {"public_key": KEY_A, "allowed_ips": ["10.1.1.0/24"]},
                }
            }
        )
    )
    assert got["wg0"]["peers"]["old"]["absent"] is True


def test_render_config():
    data = pillar(
        {
            "private_key": PRIV,
            "listen_port": 51820,
            "dns": ["1.1.1.1", "corp.lan"],
            "mtu": 1420,
            "table": "off",
            "fwmark": 0x1234,
            "post_up": "echo up %i",
            "routes": ["172.16.1.0/24"],
            "masquerade": ["eth0"],
        },
        {"preshared_key": PSK, "endpoint": "vpn.example.com:51820", "persistent_keepalive": 25},
    )
    iface = validate(data)["wg0"]
    secrets = wgf_schema.secrets_of(data, iface)
    assert secrets == {"private_key": PRIV, "preshared_keys": {"hub": PSK}}
    text = wgf_conf.render(iface, secrets["private_key"], secrets["preshared_keys"])
    assert text.splitlines()[1:12] == [
        "[Interface]",
        f"PrivateKey = {PRIV}",
        "Address = 10.1.1.11/24",
        "ListenPort = 51820",
        "DNS = 1.1.1.1, corp.lan",
        "MTU = 1420",
        "Table = off",
        "FwMark = 0x1234",
        "PostUp = echo up %i",
        "PostUp = iptables -w -A FORWARD -i %i -j ACCEPT",
        "PostUp = iptables -w -A FORWARD -o %i -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    assert "PostUp = iptables -w -t nat -A POSTROUTING -s 10.1.1.0/24 -o eth0 -j MASQUERADE" in text
    assert (
        "PostDown = iptables -w -t nat -D POSTROUTING -s 10.1.1.0/24 -o eth0 -j MASQUERADE" in text
    )
    assert "PostUp = ip route replace 172.16.1.0/24 dev %i proto static" in text
    assert text.endswith(
        "\n".join(
            [
                "[Peer]",
                "# hub",
                f"PublicKey = {KEY_A}",
                f"PresharedKey = {PSK}",
                "AllowedIPs = 10.1.1.0/24",
                "Endpoint = vpn.example.com:51820",
                "PersistentKeepalive = 25",
                "",
            ]
        )
    )
    masked = wgf_conf.render(iface)
    assert PRIV not in masked and PSK not in masked and "<hidden>" in masked
    assert masked == wgf_conf.mask(text, wgf_conf.known_public(pillar=iface))


def test_absent_peers_are_not_rendered():
    text = wgf_conf.render(validate(pillar(peer={"absent": True}))["wg0"])
    assert "[Peer]" not in text


# ------------------------------------------------------------------ refuse, never crash


def refusal(wireguard, **kwargs):
    """The message ``validate`` refuses ``wireguard`` with (it must refuse it)."""
    with pytest.raises(SaltInvocationError) as error:
        validate(wireguard, **kwargs)
    message = str(error.value)
    assert message.startswith("Invalid wireguard pillar (nothing was changed):\n- ")
    return message


def test_an_interface_name_with_a_trailing_newline_is_refused():
    message = refusal({"interfaces": {"wg0\n": {"address": "10.1.1.11/24"}}})
    assert "interface 'wg0\\n': an interface name is 1-15 characters" in message


@pytest.mark.parametrize(
    ("iface", "peer", "words"),
    [
        ({"address": "fe80::1%x,10.0.0.1/24"}, {}, "key 'address': 'fe80::1%x,10.0.0.1/24'"),
        ({"address": ["fe80::1%eth0/64"]}, {}, "key 'address': 'fe80::1%eth0/64'"),
        ({}, {"allowed_ips": "fe80::1%x,10.0.0.1/24"}, "key 'allowed_ips': 'fe80::1%x'"),
        ({}, {"allowed_ips": ["fe80::1%x/128"]}, "key 'allowed_ips': 'fe80::1%x/128'"),
        ({"dns": "fe80::1%x,10.0.0.1"}, {}, "key 'dns': 'fe80::1%x,10.0.0.1'"),
        ({"dns": ["fe80::1%eth0"]}, {}, "key 'dns': 'fe80::1%eth0'"),
    ],
)
def test_ipv6_scope_ids_are_refused(iface, peer, words):
    """wg-quick would split ``fe80::1%x,10.0.0.1`` into two items."""
    assert words in refusal(pillar(iface, peer))


@pytest.mark.parametrize(
    ("iface", "peer", "words"),
    [
        ({"table": "\uff11\uff12"}, {}, "key 'table': table '\uff11\uff12' is not defined"),
        ({"table": "12\u0663"}, {}, "key 'table': table '12\u0663' is not defined"),
        ({"listen_port": "\uff15\uff11\uff18\uff12\uff10"}, {}, "key 'listen_port'"),
        ({"mtu": "\u0661\u0664\u0662\u0660"}, {}, "key 'mtu'"),
        ({}, {"endpoint": "198.51.100.1:\uff15\uff11\uff18\uff12\uff10"}, "key 'endpoint'"),
        ({}, {"endpoint": "198.51.100.1:5182\u0660"}, "key 'endpoint'"),
        ({}, {"persistent_keepalive": "\u0662\u0665"}, "key 'persistent_keepalive'"),
    ],
)
def test_non_ascii_digits_are_refused(iface, peer, words):
    assert words in refusal(pillar(iface, peer))


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\r", "\x00", "\x1b"])
def test_characters_that_split_lines_are_refused_in_names_and_values(char):
    peer = {"public_key": KEY_A, "allowed_ips": ["10.1.1.0/24"]}
    escaped = repr(char)[1:-1]
    message = refusal(
        {"interfaces": {"wg0": {"address": "10.1.1.11/24", "peers": {f"hub{char}x": peer}}}}
    )
    assert f"peer 'hub{escaped}x'" in message and "the peer name" in message
    message = refusal(pillar({"post_up": f"echo up{char}PostUp = id"}))
    assert f"key 'post_up': 'echo up{escaped}PostUp = id'" in message
    assert f"interface 'wg{escaped}0'" in refusal({"interfaces": {f"wg{char}0": {}}})


def test_a_peer_name_with_a_newline_is_shown_escaped():
    """Among fifty peers, the user finds it by the name as Python writes it."""
    name = "b\nPostUp = touch /tmp/pwned"
    message = refusal(
        {"interfaces": {"wg0": {"address": "10.1.1.11/24", "peers": {name: {"public_key": KEY_A}}}}}
    )
    assert f"peer {name!r}" in message
    assert "peer 'b\\nPostUp = touch /tmp/pwned'" in message
    assert "\nPostUp" not in message


def test_a_table_the_minion_does_not_define_is_refused():
    message = refusal(pillar({"table": "vpn"}), known_tables={"local", "main", "vpn2"})
    assert "interface 'wg0', key 'table': table 'vpn' is not defined on this minion" in message
    got = validate(pillar({"table": "vpn"}), known_tables={"main", "vpn"})
    assert got["wg0"]["table"] == "vpn"
    for table in ("auto", "off", "1234", 1234):
        assert validate(pillar({"table": table}), known_tables=set())["wg0"]["table"] == str(table)


def test_a_non_string_peer_name_with_a_preshared_key():
    """YAML reads a peer named ``5`` as a number: validated and found by its name."""
    wireguard = {
        "interfaces": {
            "wg0": {
                "address": "10.1.1.11/24",
                "private_key": PRIV,
                "peers": {5: {"public_key": KEY_A, "preshared_key": PSK}},
            }
        }
    }
    iface = validate(wireguard)["wg0"]
    assert iface["peers"]["5"]["has_preshared_key"] is True
    assert wgf_schema.secrets_of(wireguard, iface) == {
        "private_key": PRIV,
        "preshared_keys": {"5": PSK},
    }


@pytest.mark.parametrize(
    "slip",
    [
        # an indentation slip turns a mapping into a list of one-key mappings
        lambda: {"interfaces": {"wg0": [{"address": "10.1.1.11/24"}, {"private_key": PRIV}]}},
        lambda: {"interfaces": [{"wg0": {"private_key": PRIV}}]},
        lambda: {
            "interfaces": {
                "wg0": {
                    "address": "10.1.1.11/24",
                    "peers": {"hub": [{"public_key": KEY_A}, {"preshared_key": PSK}]},
                }
            }
        },
        lambda: {
            "interfaces": {
                "wg0": {
                    "address": "10.1.1.11/24",
                    "peers": [{"hub": {"public_key": KEY_A, "preshared_key": PSK}}],
                }
            }
        },
        lambda: {"interfaces": {"wg0": {"address": "10.1.1.11/24", "private_key": [PRIV]}}},
        lambda: {
            "interfaces": {
                "wg0": {
                    "address": "10.1.1.11/24",
                    "peers": {"hub": {"public_key": KEY_A, "preshared_key": {"key": PSK}}},
                }
            }
        },
        lambda: {"interfaces": {"wg0": {"address": "10.1.1.11/24", "private_key": PRIV + "\n"}}},
        lambda: {"interfaces": {"wg0": {"address": "10.1.1.11/24", "private_key": PRIV[:-2]}}},
    ],
)
def test_a_refusal_never_shows_a_secret(slip):
    message = refusal(slip())
    assert PRIV not in message and PSK not in message
    assert PRIV[:20] not in message and PSK[:20] not in message


def test_non_ascii_digits_in_a_table_are_refused_without_rt_tables_too():
    message = refusal(pillar({"table": "\uff11\uff12"}), known_tables=None)
    assert "interface 'wg0', key 'table': '\uff11\uff12' is not a table name" in message
