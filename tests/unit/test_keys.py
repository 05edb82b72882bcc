"""Key functions: pure Python, byte-for-byte what wg genkey/pubkey/genpsk produce."""

import base64
import subprocess

import pytest
from salt.exceptions import SaltInvocationError


def test_pubkey_matches_wg_pubkey_for_200_random_keys(wgmod):
    keys = [wgmod.genkey() for _ in range(200)]
    # One wg process per key, as a user would run it; batched through a shell loop.
    script = 'while read -r k; do printf "%s\\n" "$k" | wg pubkey; done'
    out = subprocess.run(["sh", "-c", script], input="\n".join(keys) + "\n",
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [wgmod.pubkey(k) for k in keys]




def test_genkey_is_clamped_base64_of_32_bytes(wgmod):
    for _ in range(50):
        raw = base64.b64decode(wgmod.genkey())
        assert len(raw) == 32
        assert raw[0] & 7 == 0
        assert raw[31] & 128 == 0 and raw[31] & 64 == 64


def test_genpsk_is_32_random_bytes(wgmod):
    keys = {wgmod.genpsk() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(k)) == 32 and len(k) == 44 for k in keys)


def test_unclamped_private_key_gives_the_same_public_key_as_wg(wgmod):
    raw = bytes(range(1, 33))  # not clamped: wg clamps before deriving
    key = base64.b64encode(raw).decode()
    wg = subprocess.run(["wg", "pubkey"], input=key + "\n", capture_output=True,
                        text=True, check=True).stdout.strip()
    assert wgmod.pubkey(key) == wg


@pytest.mark.parametrize(("key", "message"), [
    ("not base64 at all!", "not valid base64"),
    ("AAAA", "decodes to 3 bytes"),
    (base64.b64encode(bytes(31)).decode(), "decodes to 31 bytes"),
    (base64.b64encode(bytes(33)).decode(), "decodes to 33 bytes"),
    (base64.b64encode(bytes(32)).decode() + "\n", "whitespace or a control character"),
    (" " + base64.b64encode(bytes(32)).decode(), "whitespace or a control character"),
    (12345, "must be a base64 string"),
])
def test_bad_keys_raise_errors_that_say_why(wgmod, key, message):
    with pytest.raises(SaltInvocationError, match=message):
        wgmod.pubkey(key)
