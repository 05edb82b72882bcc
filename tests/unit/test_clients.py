"""Clients (devices without Salt): validation and allocation through the pillar schema,
the device's wg-quick config, and the QR codes decoded back to exactly that text."""

import ipaddress
import json
import pathlib
import subprocess
import sys

import pytest
from salt.exceptions import SaltInvocationError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "_utils"))

import wgf_client_record
import wgf_clients
import wgf_keys
from tests.support import pipeline

SERVER_PRIV = wgf_keys.genkey()
PEER_KEY = wgf_keys.pubkey(wgf_keys.genkey())
BYO_KEY = wgf_keys.pubkey(wgf_keys.genkey())


def interface(**extra):
    return {
        "address": ["10.8.0.1/24", "fd08::1/64"],
        "listen_port": 51820,
        "endpoint": "vpn.example.com",
        **extra,
    }


def validate(iface, record=None):
    pillar = {"interfaces": {"wg0": iface}}
    text = json.dumps(record) if record is not None else None
    return pipeline.interfaces(
        pillar,
        "vpn",
        own_public_keys={"wg0": wgf_keys.pubkey(SERVER_PRIV)},
        client_records={"wg0": text},
    )["wg0"]


def record_of(wg0, keys=None):
    """The record the state would write, with made-up keys for new clients."""
    made = {
        name: wgf_keys.pubkey(wgf_keys.genkey())
        for name, c in wg0["clients"].items()
        if not c["absent"] and not c["public_key"]
    }
    return wgf_client_record.record_of(wg0, {**made, **(keys or {})})


def test_pool_clients_get_the_lowest_free_v4_and_v6_addresses_and_become_peers():
    wg0 = validate(
        interface(
            peers={"office": {"public_key": PEER_KEY, "allowed_ips": ["10.8.0.2/32"]}},
            clients={
                "phone": {},
                "laptop": {"address": "10.8.0.20/32"},
                "byo": {"public_key": BYO_KEY},
            },
        )
    )
    clients = wg0["clients"]
    assert clients["byo"]["address"] == ["10.8.0.3", "fd08::2"]  # .1 is the hub, .2 a peer
    assert clients["laptop"]["address"] == ["10.8.0.20", "fd08::3"]
    assert clients["phone"]["address"] == ["10.8.0.4", "fd08::4"]
    assert clients["phone"]["public_key"] is None  # to be made on the minion
    assert wg0["peers"]["byo"]["client"] is True
    assert wg0["peers"]["byo"]["allowed_ips"] == ["10.8.0.3/32", "fd08::2/128"]
    assert "phone" not in wg0["peers"]  # no key yet: the state makes it, then it is a peer
    assert clients["phone"]["allowed_ips"] == ["10.8.0.0/24", "fd08::/64"]  # default


def test_allocations_are_stable_and_a_revoked_address_is_handed_out_last():
    first = validate(interface(pool="10.8.0.0/29", clients={"a": {}, "b": {}, "c": {}}))
    record = record_of(first)
    assert [first["clients"][n]["address"] for n in "abc"] == [
        ["10.8.0.2"],
        ["10.8.0.3"],
        ["10.8.0.4"],
    ]
    # b revoked, d added: a and c keep theirs, d does not get b's address
    second = validate(
        interface(pool="10.8.0.0/29", clients={"a": {}, "b": {"absent": True}, "c": {}, "d": {}}),
        record,
    )
    assert second["clients"]["a"]["address"] == ["10.8.0.2"]
    assert second["clients"]["c"]["address"] == ["10.8.0.4"]
    assert second["clients"]["d"]["address"] == ["10.8.0.5"]
    assert second["clients"]["a"]["public_key"] == record["clients"]["a"]["public_key"]
    record = record_of(second)
    assert record["retired"] == ["10.8.0.3"] and "b" not in record["clients"]
    # .6 is the last free one; then only the retired .3 is left
    third = validate(
        interface(pool="10.8.0.0/29", clients={"a": {}, "c": {}, "d": {}, "e": {}, "f": {}}), record
    )
    assert third["clients"]["e"]["address"] == ["10.8.0.6"]
    assert third["clients"]["f"]["address"] == ["10.8.0.3"]
    assert record_of(third)["retired"] == []


def test_a_full_pool_is_refused_naming_interface_and_client():
    with pytest.raises(SaltInvocationError) as error:
        validate(interface(pool="10.8.0.0/30", clients={"a": {}, "b": {}}))
    # /30: .1 is the interface's, .2 goes to a, nothing is left for b
    assert "interface 'wg0', client 'b': the pool is full" in str(error.value)


@pytest.mark.parametrize(
    ("clients", "words"),
    [
        ({"x": {"address": "10.9.0.5"}}, ["client 'x'", "'address'", "outside the pool"]),
        ({"x": {"address": "10.8.0.1"}}, ["client 'x'", "in use by the interface"]),
        ({"x": {"address": "10.8.0.7"}}, ["client 'x'", "in use by peer 'office'"]),
        (
            {"x": {"address": "10.8.0.9"}, "y": {"address": "10.8.0.9/32"}},
            ["client 'y'", "in use by client 'x'"],
        ),
        ({"x": {"address": "10.8.0.0/28"}}, ["client 'x'", "not one host"]),
        ({"../etc": {}}, ["client '../etc'", "a client name is"]),
        ({"office": {}}, ["client 'office'", "a peer of this interface has the same name"]),
        ({"x": {"public_key": "bm90IGEga2V5"}}, ["client 'x'", "'public_key'", "32 bytes"]),
        ({"x": {"public_key": PEER_KEY}}, ["client 'x'", "the same key as peer 'office'"]),
        (
            {"x": {"public_key": BYO_KEY}, "y": {"public_key": BYO_KEY}},
            ["client 'y'", "the same key as client 'x'"],
        ),
        (
            {"x": {"allowed_ips": ["0.0.0.0/0", "everything"]}},
            ["client 'x'", "'allowed_ips'", "not a valid CIDR"],
        ),
        ({"x": {"colour": "red"}}, ["client 'x'", "unknown key 'colour'"]),
    ],
)
def test_bad_clients_are_refused_naming_interface_and_client(clients, words):
    iface = interface(
        peers={"office": {"public_key": PEER_KEY, "allowed_ips": ["10.8.0.7/32"]}}, clients=clients
    )
    with pytest.raises(SaltInvocationError) as error:
        validate(iface)
    message = str(error.value)
    assert "interface 'wg0'" in message
    for word in words:
        assert word in message
    assert BYO_KEY not in message and PEER_KEY not in message


def test_the_server_public_key_is_no_client_key():
    with pytest.raises(SaltInvocationError) as error:
        validate(interface(clients={"x": {"public_key": wgf_keys.pubkey(SERVER_PRIV)}}))
    assert "client 'x', key 'public_key': the same key as the interface's own key" in str(
        error.value
    )


def test_an_explicit_address_taken_from_a_recorded_client_is_refused():
    record = record_of(validate(interface(clients={"a": {}})))
    with pytest.raises(SaltInvocationError) as error:
        validate(interface(clients={"a": {}, "b": {"address": "10.8.0.2"}}), record)
    assert "client 'b', key 'address': 10.8.0.2 is in use by client 'a'" in str(error.value)


def test_the_device_config_holds_what_the_device_needs():
    wg0 = validate(
        interface(
            client_defaults={"dns": ["10.8.0.1"], "persistent_keepalive": 25},
            clients={
                "laptop": {
                    "address": "10.8.0.20/32",
                    "allowed_ips": ["0.0.0.0/0", "::/0"],
                    "preshared_key": True,
                }
            },
        )
    )
    server = wgf_keys.pubkey(SERVER_PRIV)
    text = wgf_clients.client_config(wg0, "laptop", server, "PRIVATE=", "PSK=")
    assert text == (
        "# laptop: a client of wg0 (Salt wireguard formula)\n"
        "[Interface]\n"
        "PrivateKey = PRIVATE=\n"
        "Address = 10.8.0.20/32, fd08::2/128\n"
        "DNS = 10.8.0.1\n"
        "\n"
        "[Peer]\n"
        f"PublicKey = {server}\n"
        "PresharedKey = PSK=\n"
        "AllowedIPs = 0.0.0.0/0, ::/0\n"
        "Endpoint = vpn.example.com:51820\n"
        "PersistentKeepalive = 25\n"
    )


def test_a_byo_client_config_has_a_placeholder_and_no_dns_without_defaults():
    wg0 = validate(
        interface(
            endpoint="[2001:db8::1]:4500",
            clients={"byo": {"public_key": BYO_KEY, "allowed_ips": "10.8.0.0/24"}},
        )
    )
    text = wgf_clients.client_config(wg0, "byo", "SERVER=")
    assert f"PrivateKey = {wgf_clients.PLACEHOLDER}\n" in text
    assert "DNS" not in text and "PresharedKey" not in text and "Keepalive" not in text
    assert "Endpoint = [2001:db8::1]:4500\n" in text
    assert "AllowedIPs = 10.8.0.0/24\n" in text


def test_the_server_config_lists_clients_as_peers_with_their_preshared_keys():
    import wgf_conf

    wg0 = validate(interface(clients={"b": {"public_key": BYO_KEY, "preshared_key": True}}))
    text = wgf_conf.render(wg0, "PRIV=", {"b": "PSK="})
    assert (
        f"[Peer]\n# b\nPublicKey = {BYO_KEY}\nPresharedKey = PSK=\n"
        "AllowedIPs = 10.8.0.2/32, fd08::2/128\n"
    ) in text


def zbarimg(path):
    """The text of the one QR code in an image file, as zbarimg decodes it."""
    out = subprocess.run(
        ["zbarimg", "-q", "--raw", str(path)], capture_output=True, check=True
    ).stdout.decode()
    assert out.endswith("\n")
    return out[:-1]  # zbarimg ends each symbol with a newline


def device_text():
    wg0 = validate(interface(client_defaults={"dns": ["10.8.0.1"]}, clients={"phone": {}}))
    return wgf_clients.client_config(
        wg0, "phone", wgf_keys.pubkey(SERVER_PRIV), wgf_keys.genkey(), wgf_keys.genpsk()
    )


def test_the_png_qr_code_decodes_to_exactly_the_config(tmp_path):
    text = device_text()
    image = tmp_path / "phone.png"
    image.write_bytes(wgf_clients.qr_code(text, "png"))
    assert zbarimg(image) == text


def test_the_svg_qr_code_is_an_svg_image():
    svg = wgf_clients.qr_code(device_text(), "svg")
    assert svg.startswith(b"<?xml") and b"<svg" in svg


def test_the_terminal_qr_code_decodes_to_exactly_the_config(tmp_path):
    """The utf8 drawing is read back into modules (a full block is two light modules,
    a space two dark ones, half blocks one of each), written as a PBM and decoded."""
    text = device_text()
    drawing = wgf_clients.qr_code(text, "utf8").rstrip("\n").split("\n")
    halves = {"█": (0, 0), " ": (1, 1), "▀": (0, 1), "▄": (1, 0)}
    rows = []
    for line in drawing:
        rows.append([halves[ch][0] for ch in line])
        rows.append([halves[ch][1] for ch in line])
    scale = 4
    pixels = [[bit for bit in row for _ in range(scale)] for row in rows for _ in range(scale)]
    image = tmp_path / "phone.pbm"
    image.write_text(
        f"P1\n{len(pixels[0])} {len(pixels)}\n"
        + "\n".join(" ".join(map(str, row)) for row in pixels)
        + "\n"
    )
    assert zbarimg(image) == text


def test_ansi_and_images_need_a_path_and_kinds_are_checked():
    assert wgf_clients.qr_kind("ansi", None) == "ansi"
    assert "\x1b[" in wgf_clients.qr_code("x", "ansi")
    with pytest.raises(SaltInvocationError, match="give path=DIR"):
        wgf_clients.qr_kind("png", None)
    with pytest.raises(SaltInvocationError, match="qr is one of"):
        wgf_clients.qr_kind("jpeg", "/tmp")


def test_a_damaged_record_is_refused_naming_it():
    with pytest.raises(SaltInvocationError, match="the clients record cannot be read"):
        validate(interface(clients={"a": {}}), record={"clients": {"a": {"address": ["x"]}}})


def test_addresses_skip_network_and_broadcast():
    first, last = wgf_clients._host_range(ipaddress.ip_network("10.0.0.0/30"))
    assert (ipaddress.ip_address(first), ipaddress.ip_address(last)) == (
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("10.0.0.2"),
    )


@pytest.mark.parametrize(
    "path",
    [
        "{cfg}",
        "{cfg}/sub",
        "{cfg}/a/../b",
        "{link}/x",
        "/etc/wireguard",
        "/etc/wireguard/../wireguard/clients",
    ],
)
def test_an_export_path_in_the_config_dir_or_wg_quicks_is_refused(tmp_path, path):
    """``<client>.conf`` there would replace an interface's config with the client's."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (tmp_path / "link").symlink_to(cfg)
    path = path.format(cfg=cfg, link=tmp_path / "link")
    with pytest.raises(SaltInvocationError, match="the formula's directory"):
        wgf_clients.export_dir(path, str(cfg))
    assert sorted(p.name for p in cfg.iterdir()) == []


def test_an_export_path_elsewhere_is_made_0700(tmp_path):
    path = wgf_clients.export_dir(str(tmp_path / "out"), str(tmp_path / "cfg"))
    assert path == str(tmp_path / "out") and (tmp_path / "out").stat().st_mode & 0o777 == 0o700


def test_a_client_named_like_an_interface_of_the_minion_is_refused():
    pillar = {
        "interfaces": {
            "wg0": interface(clients={"wg1": {}, "phone": {}}),
            "wg1": {"address": "10.9.0.1/24"},
        }
    }
    with pytest.raises(SaltInvocationError) as error:
        pipeline.interfaces(pillar, "vpn", own_public_keys={"wg0": wgf_keys.pubkey(SERVER_PRIV)})
    assert (
        "interface 'wg0', client 'wg1', key 'clients': a client may not have the name "
        "of an interface of this minion"
    ) in str(error.value)
    assert "client 'phone'" not in str(error.value)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_the_record_text_is_json_a_client_a_line_and_reads_back(count):
    record = wgf_client_record.empty_record()
    record["retired"] = ["10.0.0.9"]
    for i in range(count):
        record["clients"][f"c{i}"] = {
            "address": [f"10.0.0.{i + 2}", f"fd00::{i + 2}"],
            "byo": bool(i % 2),
            "public_key": None if i == 1 else wgf_keys.pubkey(wgf_keys.genkey()),
        }
    text = wgf_client_record.dump_record(record)
    assert json.loads(text) == record
    assert wgf_client_record.parse_record(text) == record
    assert sum('"address"' in line for line in text.splitlines()) == count


def test_a_record_read_twice_gives_two_records_that_share_nothing():
    """The pipeline and the clients state parse the same text in a run: the second
    parse is a copy of the first's result, never the same objects, and a damaged text
    is refused every time."""
    text = json.dumps({"version": 2, "retired": [], "clients": {"a": {"address": ["10.0.0.2"]}}})
    first = wgf_client_record.parse_record(text)
    first["clients"]["a"]["address"].append("10.0.0.3")
    second = wgf_client_record.parse_record(text)
    assert second["clients"]["a"]["address"] == ["10.0.0.2"]
    for _ in range(2):
        with pytest.raises(SaltInvocationError, match="cannot be read"):
            wgf_client_record.parse_record(text.replace("10.0.0.2", "10.0.0.256"))
