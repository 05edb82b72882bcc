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


#: Every secret line wg reads, however spelled, and how the mask shows it.
SECRET_LINES = [
    (f"PrivateKey = {PRIV}", "PrivateKey = <hidden>"),
    (f"privatekey = {PRIV}", "privatekey = <hidden>"),
    (f"  PRESHAREDKEY={PSK}", "  PRESHAREDKEY=<hidden>"),
    (f"\tPresharedKey\t=\t{PSK}  # the old one", "\tPresharedKey\t=\t<hidden>"),
    (f"PrivateKey = {PRIV}\r", "PrivateKey = <hidden>"),
    (f"Private Key = {PRIV}", "Private Key = <hidden>"),
    (f"\vPrivateKey\f= {PRIV}", "\vPrivateKey\f= <hidden>"),
    (f"PresharedKey = {PSK[:22]} {PSK[22:]}", "PresharedKey = <hidden>"),
]
#: Keys commented out, and any key-shaped value (the formula cannot tell it is public).
KEY_SHAPED_LINES = [
    (f"#PrivateKey = {PRIV}", "#PrivateKey = <hidden>"),
    (f"  # presharedkey={PSK}", "  # presharedkey=<hidden>"),
    (f";PrivateKey = {PRIV[:22]} {PRIV[22:]}", ";PrivateKey = <hidden>"),
    (f"# old key: {PRIV}", "# old key: <hidden>"),
    (f"PostUp = echo {PSK} > /tmp/x", "PostUp = echo <hidden> > /tmp/x"),
    (f"PublicKey = {PEER}", "PublicKey = <hidden>"),
]


@pytest.mark.parametrize(("line", "masked"), SECRET_LINES + KEY_SHAPED_LINES)
def test_every_secret_line_commented_out_or_not_and_any_key_shaped_value_is_masked(line, masked):
    text = f"[Interface]\n{line}\nListenPort = 51820\n"
    assert wgf_conf.mask(text) == f"[Interface]\n{masked}\nListenPort = 51820\n"


def test_other_lines_are_left_alone():
    text = (
        f"[Peer]\nPublicKey = {PEER}\n# PrivateKey is in /etc/wireguard/wg0.key\n"
        "PostUp = echo privatekey=\n"
    )
    assert wgf_conf.mask(text, public=[PEER]) == text
    assert wgf_conf.mask(None) == ""


def test_rendered_text_masks_like_the_file():
    """``wireguard.check`` compares the masked file with the masked rendering."""
    text = f"[Interface]\nPrivateKey = {PRIV}\n\n[Peer]\nPresharedKey = {PSK}\n"
    assert wgf_conf.mask(text) == (
        "[Interface]\nPrivateKey = <hidden>\n\n[Peer]\nPresharedKey = <hidden>\n"
    )
    assert wgf_conf.mask(wgf_conf.mask(text)) == wgf_conf.mask(text)


@pytest.mark.parametrize("spelling", ["privatekey", "PRIVATEKEY", "Private Key", " PrivateKey"])
def test_parse_reads_the_private_key_as_wg_does_and_keeps_only_its_public_key(spelling):
    text = (
        f"[Interface]\n{spelling} = {PRIV}\n[Peer]\n# hub\nPublicKey = {PEER}\n"
        f"presharedKEY = {PSK}\n"
    )
    conf = wgf_conf.parse(text)
    assert conf["has_private_key"] and conf["public_key"] == wgf_keys.pubkey(PRIV)
    assert conf["peers"][0]["has_preshared_key"] is True
    assert PRIV not in json.dumps(conf) and PSK not in json.dumps(conf)


@pytest.mark.parametrize(
    "text",
    [
        f"[Interface]\nPrivateKey = {PRIV}x\n",
        f"[Interface]\nPrivateKey = {PRIV[:-2]}\n",
        f"PrivateKey = {PRIV}\n",
        f"[Foo]\nPrivateKey = {PRIV}\n",
        f"[Peer]\nPresharedKey = {PSK}\nPublicKey = {PSK}x\n",
    ],
)
def test_parse_errors_never_quote_a_key(text):
    conf = wgf_conf.parse(text)
    assert conf["errors"]
    assert PRIV[:16] not in json.dumps(conf) and PSK[:16] not in json.dumps(conf)


def test_private_key_of_a_hand_written_config_as_wg_reads_it():
    text = f"[Interface]\n  private Key=  {PRIV}  # mine\nAddress = 10.0.0.1/24\n"
    assert wgf_conf.private_key(text) == PRIV
    assert wgf_conf.private_key("[Interface]\nAddress = 10.0.0.1/24\n") is None
    assert wgf_conf.private_key(None) is None


def test_only_keys_known_to_be_public_stay_visible():
    own = wgf_keys.pubkey(PRIV)
    text = f"[Peer]\n# {own}\nPublicKey = {PEER}\n# not {PSK}\n"
    public = wgf_conf.known_public(
        [{"public_key": own}], live={"public_key": None, "peers": {PEER: {}}}
    )
    assert public == {own, PEER}
    assert wgf_conf.mask(text, public) == f"[Peer]\n# {own}\nPublicKey = {PEER}\n# not <hidden>\n"
    pillar = {"peers": {"hub": {"public_key": PEER}}}
    assert wgf_conf.known_public(pillar=pillar) == {PEER}
    # a hand-written file's peers are not known public: only its own key (PrivateKey)
    conf = wgf_conf.parse(f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = {PEER}\n")
    assert wgf_conf.known_public([conf]) == {own}
    assert wgf_conf.known_public(rendered=[conf]) == {own, PEER}


def test_a_comment_holding_key_material_is_no_peer_name():
    text = (
        f"[Peer]\n# {PSK}\nPublicKey = {PEER}\n\n[Peer]\n#PresharedKey = {PSK}\n"
        f"# hub\nPublicKey = {PRIV}\n"
    )
    conf = wgf_conf.parse(text)
    assert [peer["name"] for peer in conf["peers"]] == [None, "hub"]
    assert PSK not in json.dumps(conf)


def test_a_parse_error_about_a_line_holding_a_key_masks_it():
    conf = wgf_conf.parse(f"[Interface]\nAddress = {PRIV}\n")
    assert conf["errors"] and PRIV[:12] not in json.dumps(conf)


def test_a_failed_commands_output_quoting_a_key_is_masked():
    """``wg`` quotes a key it cannot use (``Key is not the correct length or format``)."""
    from salt.exceptions import CommandExecutionError

    import wgf_host

    def run_all(argv, **kwargs):
        return {"retcode": 1, "stdout": "", "stderr": f"Unable to use `{PRIV}'\n"}

    host = wgf_host.Host({"cmd.run_all": run_all})
    with pytest.raises(CommandExecutionError) as error:
        host.run(["wg", "set", "wg0", "private-key", "/dev/stdin"], PRIV)
    assert PRIV[:12] not in str(error.value) and "<hidden>" in str(error.value)
