"""Key functions: pure Python, byte-for-byte what wg genkey/pubkey/genpsk produce."""

import base64
import subprocess

import pytest
from salt.exceptions import SaltInvocationError

import wgf_keys


def test_pubkey_matches_wg_pubkey_for_200_random_keys():
    keys = [wgf_keys.genkey() for _ in range(200)]
    # One wg process per key, as a user would run it; batched through a shell loop.
    script = 'while read -r k; do printf "%s\\n" "$k" | wg pubkey; done'
    out = subprocess.run(
        ["sh", "-c", script],
        input="\n".join(keys) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [wgf_keys.pubkey(k) for k in keys]


def test_genkey_is_clamped_base64_of_32_bytes():
    for _ in range(50):
        raw = base64.b64decode(wgf_keys.genkey())
        assert len(raw) == 32
        assert raw[0] & 7 == 0
        assert raw[31] & 128 == 0 and raw[31] & 64 == 64


def test_genpsk_is_32_random_bytes():
    keys = {wgf_keys.genpsk() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(k)) == 32 and len(k) == 44 for k in keys)


def test_unclamped_private_key_gives_the_same_public_key_as_wg():
    raw = bytes(range(1, 33))  # not clamped: wg clamps before deriving
    key = base64.b64encode(raw).decode()
    wg = subprocess.run(
        ["wg", "pubkey"], input=key + "\n", capture_output=True, text=True, check=True
    ).stdout.strip()
    assert wgf_keys.pubkey(key) == wg


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not base64 at all!", "not valid base64"),
        ("AAAA", "decodes to 3 bytes"),
        (base64.b64encode(bytes(31)).decode(), "decodes to 31 bytes"),
        (base64.b64encode(bytes(33)).decode(), "decodes to 33 bytes"),
        (base64.b64encode(bytes(32)).decode() + "\n", "whitespace or a control character"),
        (" " + base64.b64encode(bytes(32)).decode(), "whitespace or a control character"),
        (12345, "must be a base64 string"),
    ],
)
def test_bad_keys_raise_errors_that_say_why(key, message):
    with pytest.raises(SaltInvocationError, match=message):
        wgf_keys.pubkey(key)


def test_bad_keys_never_quote_the_key():
    secret = base64.b64encode(bytes(range(31))).decode()
    with pytest.raises(SaltInvocationError) as error:
        wgf_keys.decode(secret + "\n", "private key")
    assert secret not in str(error.value)


# ------------------------------------------------------------- keys on the CLI

# About one key in five is an identifier followed by "=": Salt's command line turns
# such a positional argument into the keyword NAME with an empty value.
CLI_KEY = "NAME" + "A" * 39 + "="


def test_a_key_salt_took_for_a_keyword_is_put_back_together():
    assert CLI_KEY[:-1].isidentifier()
    assert wgf_keys.positional(None, {CLI_KEY[:-1]: ""}, "public_key") == CLI_KEY
    assert (
        wgf_keys.positional(None, {CLI_KEY[:-1]: None, "__pub_jid": "1"}, "public_key") == CLI_KEY
    )


def test_a_key_given_normally_passes_and_salts_own_keywords_are_ignored():
    key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
    assert wgf_keys.positional(key, {}, "public_key") == key
    assert wgf_keys.positional(key, {"__pub_fun": "wireguard.pubkey"}, "public_key") == key


@pytest.mark.parametrize(
    ("value", "kwargs", "words"),
    [
        (None, {}, "public_key is missing"),
        (None, {"foo": "bar"}, "unexpected argument(s): foo"),
        (None, {"a": "", "b": ""}, "unexpected argument(s): a, b"),
        ("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", {"K": ""}, "unexpected argument(s): K"),
    ],
)
def test_a_missing_key_or_a_stray_keyword_is_refused(value, kwargs, words):
    with pytest.raises(SaltInvocationError) as error:
        wgf_keys.positional(value, kwargs, "public_key")
    assert words in str(error.value)


def cli_keys(count):
    """Keys Salt's command line takes for ``NAME=`` keywords (no ``+``/``/``, a letter
    first), as ``{NAME: ''}`` the way Salt passes them."""
    found = []
    while len(found) < count:
        key = wgf_keys.genkey()
        if "+" not in key and "/" not in key and key[0].isalpha():
            found.append(key)
    return found


def test_two_keys_for_a_one_key_function_are_refused_by_position_never_quoted():
    first, second = cli_keys(2)
    with pytest.raises(SaltInvocationError) as error:
        wgf_keys.arguments(
            "key_digest", {"key": None}, {first[:-1]: "", second[:-1]: ""}, ["key"], ["key"]
        )
    assert "argument(s) 2 of the command line" in str(error.value)
    for key in (first, second):
        assert key[:8] not in str(error.value)


def test_a_psk_typed_as_name_equals_goes_to_the_preshared_key_of_set_peer():
    public, psk = cli_keys(2)
    values = {
        "interface": "wg0",
        "public_key": public,
        "allowed_ips": None,
        "endpoint": None,
        "persistent_keepalive": None,
        "preshared_key": None,
    }
    got = wgf_keys.arguments(
        "set_peer",
        values,
        {psk[:-1]: "", "__pub_jid": "1"},
        ["public_key", "preshared_key"],
        ["public_key"],
    )
    assert got["preshared_key"] == psk and got["public_key"] == public


@pytest.mark.parametrize("stray", ["x" * 33, "y" * 43, "z" * 100])
def test_a_long_stray_keyword_is_not_quoted(stray):
    with pytest.raises(SaltInvocationError) as error:
        wgf_keys.arguments("pubkey", {"private_key": None}, {stray: "v"}, ["private_key"])
    assert stray[:20] not in str(error.value) and "not shown" in str(error.value)


def test_a_missing_required_key_is_named():
    with pytest.raises(SaltInvocationError, match="remove_peer: public_key is missing"):
        wgf_keys.arguments(
            "remove_peer",
            {"interface": "wg0", "public_key": None},
            {},
            ["public_key"],
            ["public_key"],
        )


def test_arguments_after_a_key_salt_moved_out_go_back_to_their_places():
    public, psk = cli_keys(2)
    # set_peer wg0 PUB= [10.0.0.2/32] vpn:51820 25 PSK=: Salt passes wg0, the list, the
    # endpoint and 25 positionally (one place early) and both keys as keywords
    values = {
        "interface": "wg0",
        "public_key": ["10.0.0.2/32"],
        "allowed_ips": "vpn:51820",
        "endpoint": 25,
        "persistent_keepalive": None,
        "preshared_key": None,
    }
    got = wgf_keys.arguments(
        "set_peer",
        values,
        {public[:-1]: "", psk[:-1]: ""},
        ["public_key", "preshared_key"],
        ["public_key"],
    )
    assert got == {
        "interface": "wg0",
        "public_key": public,
        "allowed_ips": ["10.0.0.2/32"],
        "endpoint": "vpn:51820",
        "persistent_keepalive": 25,
        "preshared_key": psk,
    }


def test_a_key_pasted_where_a_name_goes_is_hidden_in_the_refusal():
    import wgf_addr

    key = wgf_keys.genkey()
    with pytest.raises(SaltInvocationError) as error:
        wgf_addr.check_interface_name(key)
    assert key[:12] not in str(error.value) and "'<hidden>'" in str(error.value)
    assert wgf_addr.shown(f"x {key} y") == "'x <hidden> y'"
