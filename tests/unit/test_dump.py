"""The ``wg show dump`` parser, with every special value wg prints."""

import time

import pytest
from salt.exceptions import CommandExecutionError

import wgf_dump
import wgf_keys
from tests.support.confs import silent_peer

PRIV, PUB = (
    "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
    "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
)
PEER1 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PEER2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="


def test_all_dump_with_every_special_value():
    now = int(time.time())
    dump = (
        "\n".join(
            [
                f"wg0\t{PRIV}\t{PUB}\t51820\toff",
                f"wg0\t{PEER1}\t{PSK}\t[fd00::1]:51820\t10.0.0.2/32,fd00::2/128\t{now - 30}\t100\t200\t25",
                f"wg0\t{PEER2}\t(none)\t(none)\t(none)\t0\t0\t0\toff",
                f"wg1\t(none)\t{PUB}\t0\t0x1234",
            ]
        )
        + "\n"
    )
    parsed = wgf_dump.parse(dump)
    assert set(parsed) == {"wg0", "wg1"}
    wg0 = parsed["wg0"]
    assert wg0["public_key"] == PUB and wg0["listen_port"] == 51820 and wg0["fwmark"] is None
    peer1, peer2 = wg0["peers"][PEER1], wg0["peers"][PEER2]
    assert peer1["endpoint"] == "[fd00::1]:51820"
    assert peer1["allowed_ips"] == ["10.0.0.2/32", "fd00::2/128"]
    assert peer1["latest_handshake"] == now - 30
    assert 30 <= peer1["latest_handshake_age"] < 40
    assert (peer1["rx_bytes"], peer1["tx_bytes"]) == (100, 200)
    assert peer1["persistent_keepalive"] == 25 and peer1["preshared_key"] is True
    assert peer2 == silent_peer([])
    assert parsed["wg1"] == {"public_key": PUB, "listen_port": None, "fwmark": 0x1234, "peers": {}}
    assert PRIV not in repr(parsed) and PSK not in repr(parsed)


def test_single_interface_dump_has_no_name_column():
    dump = f"{PRIV}\t{PUB}\t51820\toff\n{PEER1}\t(none)\t198.51.100.1:51820\t10.0.0.0/24\t0\t0\t0\toff\n"
    parsed = wgf_dump.parse(dump, "wg7")
    assert list(parsed) == ["wg7"]
    assert parsed["wg7"]["peers"][PEER1]["endpoint"] == "198.51.100.1:51820"


def test_empty_output_is_no_interface():
    assert wgf_dump.parse("") == {}


def test_psk_digest_instead_of_the_key():
    dump = f"wg0\t{PRIV}\t{PUB}\t1\toff\nwg0\t{PEER1}\t{PSK}\t(none)\t(none)\t0\t0\t0\toff\n"
    peer = wgf_dump.parse(dump, psk_digests=True)["wg0"]["peers"][PEER1]
    assert peer["preshared_key_sha256"] == wgf_keys.digest(PSK)
    assert PSK not in repr(peer)


def test_the_clock_is_a_parameter():
    dump = f"{PEER1}\t(none)\t(none)\t(none)\t1000\t0\t0\toff\n"
    peer = wgf_dump.parse(f"{PRIV}\t{PUB}\t1\toff\n{dump}", "wg0", now=1100)["wg0"]["peers"]
    assert peer[PEER1]["latest_handshake_age"] == 100


@pytest.mark.parametrize(
    "dump",
    [
        f"wg0\t{PRIV}\t{PUB}\n",  # 3 fields
        f"wg0\t{PEER1}\t{PSK}\t(none)\t(none)\t0\t0\t0\n",  # 8 fields
        f"wg0\t{PRIV}\t{PUB}\tport\toff\n",
        f"wg0\t{PEER1}\t{PSK}\t(none)\t(none)\tyesterday\t0\t0\toff\n",
        f"wg0\t{PEER1}\t{PSK}\t(none)\t(none)\t0\t0\t0\tsometimes\n",
    ],
)
def test_unexpected_output_is_an_error_that_quotes_no_key(dump):
    with pytest.raises(CommandExecutionError) as error:
        wgf_dump.parse(dump)
    assert PRIV not in str(error.value) and PSK not in str(error.value)
