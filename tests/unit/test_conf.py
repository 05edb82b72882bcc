"""wg-quick config files: masking their secrets and parsing them back (``wgf_conf``).

wg-quick hands every line it does not know to ``wg``, which drops all whitespace of
a line and matches keys case-insensitively: a secret is hidden whatever way wg
would still read it.
"""

import json

import pytest

import wgf_conf
import wgf_keys

PRIV = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="
PEER = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="


@pytest.mark.parametrize(("line", "masked"), [
    (f"PrivateKey = {PRIV}", "PrivateKey = <hidden>"),
    (f"privatekey = {PRIV}", "privatekey = <hidden>"),
    (f"  PRESHAREDKEY={PSK}", "  PRESHAREDKEY=<hidden>"),
    (f"\tPresharedKey\t=\t{PSK}  # the old one", "\tPresharedKey\t=\t<hidden>"),
    (f"PrivateKey = {PRIV}\r", "PrivateKey = <hidden>"),
    (f"Private Key = {PRIV}", "Private Key = <hidden>"),
    (f"\vPrivateKey\f= {PRIV}", "\vPrivateKey\f= <hidden>"),
    (f"PresharedKey = {PSK[:22]} {PSK[22:]}", "PresharedKey = <hidden>"),
])
def test_every_secret_line_wg_reads_is_masked(line, masked):
    text = f"[Interface]\n{line}\nListenPort = 51820\n"
    assert wgf_conf.mask(text) == f"[Interface]\n{masked}\nListenPort = 51820\n"


def test_other_lines_are_left_alone():
    text = (f"[Peer]\nPublicKey = {PEER}\n# PrivateKey is in /etc/wireguard/wg0.key\n"
            "PostUp = echo privatekey=\n")
    assert wgf_conf.mask(text) == text
    assert wgf_conf.mask(None) == ""


def test_rendered_text_masks_like_the_file():
    """``wireguard.check`` compares the masked file with the masked rendering."""
    text = f"[Interface]\nPrivateKey = {PRIV}\n\n[Peer]\nPresharedKey = {PSK}\n"
    assert wgf_conf.mask(text) == ("[Interface]\nPrivateKey = <hidden>\n\n[Peer]\n"
                                   "PresharedKey = <hidden>\n")
    assert wgf_conf.mask(wgf_conf.mask(text)) == wgf_conf.mask(text)


@pytest.mark.parametrize("spelling", ["privatekey", "PRIVATEKEY", "Private Key", " PrivateKey"])
def test_parse_reads_the_private_key_as_wg_does_and_keeps_only_its_public_key(spelling):
    text = (f"[Interface]\n{spelling} = {PRIV}\n[Peer]\n# hub\nPublicKey = {PEER}\n"
            f"presharedKEY = {PSK}\n")
    conf = wgf_conf.parse(text)
    assert conf["has_private_key"] and conf["public_key"] == wgf_keys.pubkey(PRIV)
    assert conf["peers"][0]["has_preshared_key"] is True
    assert PRIV not in json.dumps(conf) and PSK not in json.dumps(conf)


@pytest.mark.parametrize("text", [
    f"[Interface]\nPrivateKey = {PRIV}x\n",
    f"[Interface]\nPrivateKey = {PRIV[:-2]}\n",
    f"PrivateKey = {PRIV}\n",
    f"[Foo]\nPrivateKey = {PRIV}\n",
    f"[Peer]\nPresharedKey = {PSK}\nPublicKey = {PSK}x\n",
])
def test_parse_errors_never_quote_a_key(text):
    conf = wgf_conf.parse(text)
    assert conf["errors"]
    assert PRIV[:16] not in json.dumps(conf) and PSK[:16] not in json.dumps(conf)


def test_private_key_of_a_hand_written_config_as_wg_reads_it():
    text = f"[Interface]\n  private Key=  {PRIV}  # mine\nAddress = 10.0.0.1/24\n"
    assert wgf_conf.private_key(text) == PRIV
    assert wgf_conf.private_key("[Interface]\nAddress = 10.0.0.1/24\n") is None
    assert wgf_conf.private_key(None) is None
