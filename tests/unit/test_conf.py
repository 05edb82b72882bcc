"""wg-quick config files: masking their secrets and parsing them back (``wgf_conf``).

wg-quick hands every line it does not know to ``wg``, which drops all whitespace of
a line and matches keys case-insensitively: a secret is hidden whatever way wg
would still read it.
"""

import difflib
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


def _patched(old_lines, diff):
    """``old_lines`` with the unified ``diff`` applied (its hunks' numbers checked)."""
    out, at = [], 0
    lines = diff.splitlines(True)[2:]
    i = 0
    while i < len(lines):
        start, length = [*lines[i].split()[1][1:].split(","), "1"][:2]
        first = int(start) - (1 if int(length) else 0)
        out += old_lines[at:first]
        at = first
        i += 1
        while i < len(lines) and not lines[i].startswith("@@"):
            kind, text = lines[i][0], lines[i][1:]
            if kind in " -":
                assert old_lines[at] == text, (at, text)
                at += 1
            if kind in " +":
                out.append(text)
            i += 1
    return out + old_lines[at:]


def _config(peers):
    head = f"[Interface]\nPrivateKey = {PRIV}\nListenPort = 51820\n"
    return head + "".join(
        f"\n[Peer]\n# {n}\nPublicKey = {k}\nAllowedIPs = {a}\n" for n, k, a in peers
    )


PEERS = [(f"p{i}", wgf_keys.pubkey(wgf_keys.genkey()), f"10.1.{i}.0/24") for i in range(40)]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (None, _config(PEERS[:3])),
        (_config(PEERS[:3]), ""),
        (_config(PEERS), _config(PEERS + PEERS[:1])),  # a peer more at the end
        (_config(PEERS), _config(PEERS[:20] + PEERS[21:])),  # one gone in the middle
        (_config(PEERS), _config(PEERS[1:])),  # the first gone
        (_config(PEERS), _config(PEERS[1:-1])),  # the first and the last gone
        (_config(PEERS), _config(PEERS[:5] + PEERS[6:30] + PEERS[:1] + PEERS[31:])),
        (
            _config(PEERS),
            _config(PEERS).replace("10.1.7.0/24", "10.1.7.0/25").replace("51820", "1"),
        ),
        (_config(PEERS), _config(PEERS).replace(PRIV, wgf_keys.genkey())),  # the key alone
        (_config(PEERS), _config(PEERS)),
    ],
)
def test_a_masked_diff_of_a_big_file_turns_the_old_masked_text_into_the_new(old, new):
    public = {k for _, k, _ in PEERS}
    diff = wgf_conf.masked_diff("/etc/wireguard/wg0.conf", old, new, public)
    masked_old = wgf_conf.mask(old, public).splitlines(True)
    assert _patched(masked_old, diff) == wgf_conf.mask(new, public).splitlines(True)
    assert PRIV not in diff
    if diff:
        assert diff.startswith("--- /etc/wireguard/wg0.conf\n+++ /etc/wireguard/wg0.conf\n@@ ")
    # only what changed, and its context: not the 40 peers
    assert diff.count("\n") < 30


def _whole(old, new, public):
    """difflib's unified diff of the whole masked texts."""
    return "".join(
        difflib.unified_diff(
            wgf_conf.mask(old, public).splitlines(True),
            wgf_conf.mask(new, public).splitlines(True),
            fromfile="f",
            tofile="f",
        )
    )


def test_a_masked_diff_numbers_its_hunks_as_difflib_does_for_the_whole_file():
    old = _config(PEERS)
    new = old.replace("10.1.30.0/24", "10.1.30.0/25").replace("10.1.33.0/24", "10.1.33.0/23")
    public = {k for _, k, _ in PEERS}
    whole = _whole(old, new, public)
    assert wgf_conf.masked_diff("f", old, new, public) == whole
    assert whole.count("\n@@ ") == 2 and "\n@@ -155,7 +155,7 @@\n [Peer]\n # p30\n" in whole


def test_the_first_and_the_last_peer_gone_are_the_hunks_difflib_makes_of_the_whole_file():
    old, new = _config(PEERS), _config(PEERS[1:-1])
    public = {k for _, k, _ in PEERS}
    whole = _whole(old, new, public)
    assert wgf_conf.masked_diff("f", old, new, public) == whole
    assert whole.count("\n@@ ") == 2


@pytest.mark.parametrize(
    "peers",
    [
        PEERS[:3] + PEERS[4:36] + PEERS[37:],  # two far apart
        PEERS[:10] + PEERS[11:13] + PEERS[14:],  # two a peer apart
        [PEERS[0], ("new", PEERS[1][1], "10.9.0.0/16"), *PEERS[2:39]],  # changed, and gone
        PEERS[::2],  # every other one gone
    ],
)
def test_changes_apart_are_as_many_hunks_as_difflib_makes_of_the_whole_file(peers):
    """Each hunk its own, aligned as difflib does it in the stretch around it (where the
    same lines repeat, difflib aligns the whole file a line or two apart)."""
    old, new = _config(PEERS), _config(peers)
    public = {k for _, k, _ in PEERS}
    diff = wgf_conf.masked_diff("f", old, new, public)
    masked_old = wgf_conf.mask(old, public).splitlines(True)
    assert _patched(masked_old, diff) == wgf_conf.mask(new, public).splitlines(True)
    assert diff.count("\n@@ ") == _whole(old, new, public).count("\n@@ ")
