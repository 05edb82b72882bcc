"""WireGuard keys: Curve25519 private and public keys, preshared keys, digests.

Pure Python with PyNaCl, as ``wg genkey``, ``wg pubkey`` and ``wg genpsk`` do it.
No message here ever quotes a key.
"""

import base64
import binascii
import hashlib

from salt.exceptions import SaltInvocationError

import wgf_addr

try:
    import nacl.bindings
    import nacl.utils

    HAS_NACL = True
except ImportError:
    HAS_NACL = False


def decode(key, what="key"):
    """The 32 bytes of a base64 WireGuard key, or raise naming ``what``."""
    if not isinstance(key, str):
        raise SaltInvocationError(f"{what} must be a base64 string, not {type(key).__name__}")
    if key != key.strip() or wgf_addr.LINE_BREAKING.search(key):
        raise SaltInvocationError(f"{what} contains whitespace or a control character")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise SaltInvocationError(f"{what} is not valid base64") from None
    if len(raw) != 32:
        raise SaltInvocationError(
            f"{what} decodes to {len(raw)} bytes; a WireGuard key is 32 bytes "
            "(44 base64 characters)")
    return raw


def is_key(value, where):
    """True when a valid key is given, False when none is; raise when it is not a key."""
    if value is None or value == "" or value is False:
        return False
    decode(value, where)
    return True


def _encode(raw):
    return base64.b64encode(raw).decode("ascii")


def _clamp(raw):
    clamped = bytearray(raw)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    return bytes(clamped)


def genkey():
    """A new private key: 32 random bytes, clamped, base64."""
    return _encode(_clamp(nacl.utils.random(32)))


def pubkey(private_key, what="private key"):
    """The public key of a private key."""
    raw = decode(private_key, what)
    return _encode(nacl.bindings.crypto_scalarmult_base(_clamp(raw)))


def pubkey_or_none(private_key):
    """The public key, or None when ``private_key`` is missing or no key."""
    try:
        return pubkey(private_key) if private_key else None
    except SaltInvocationError:
        return None


def genpsk():
    """A new preshared key: 32 random bytes, base64."""
    return _encode(nacl.utils.random(32))


def digest(key):
    """SHA-256 (hex) of a key, to compare keys without showing them."""
    return hashlib.sha256(str(key).strip().encode("ascii", "replace")).hexdigest()


def short(key):
    """The first characters of a public key, to name a peer in a message."""
    return f"{key[:8]}..." if key else "(none)"


def positional(value, kwargs, what):
    """A key given positionally on Salt's command line. Salt turns an argument shaped
    ``NAME=`` into the keyword ``NAME`` with an empty value when NAME is an identifier,
    as about one base64 key in five is: put such a key back together."""
    extra = {k: v for k, v in kwargs.items() if not str(k).startswith("__")}
    if value is None and len(extra) == 1:
        (name, empty), = extra.items()
        if empty in ("", None):
            return f"{name}="
    if extra:
        raise SaltInvocationError(f"unexpected argument(s): {', '.join(map(str, extra))}")
    if value is None:
        raise SaltInvocationError(f"{what} is missing")
    return value
