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
            "(44 base64 characters)"
        )
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


def _cli_key(name, value):
    """Whether the keyword ``name`` with ``value`` is a key Salt's command line split
    at its ``=``: an argument ``NAME=`` becomes ``{NAME: ''}``."""
    if value not in ("", None) or not isinstance(name, str) or len(name) != 43:
        return False
    try:
        return len(base64.b64decode(name + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _keyword_shown(name):
    """A stray keyword's name for a message: never one that may be key material."""
    name = str(name)
    if len(name) > 32:
        return f"one {len(name)} characters long (not shown: it may be a key)"
    return name


def _is_valid_key(value):
    try:
        decode(value)
    except SaltInvocationError:
        return False
    return True


def _put_back(values, keys, moved):
    """Put the keys Salt moved out back where they were typed: into a key parameter
    still empty, or, when a key parameter holds something that is no key, before it
    (Salt passed the arguments after the key one place too early: they move back one,
    into the next empty parameter). Returns the keys that found no place."""
    names = list(values)
    moved = list(moved)
    for key in keys:
        if not moved:
            break
        if values[key] is None:
            values[key] = moved.pop(0)
        elif not _is_valid_key(values[key]):
            start = names.index(key)
            run = next((i for i in range(start, len(names)) if values[names[i]] is None), None)
            if run is None:
                break
            for i in range(run, start, -1):
                values[names[i]] = values[names[i - 1]]
            values[key] = moved.pop(0)
    return moved


def arguments(function, values, kwargs, keys, required=()):
    """Sort out the arguments Salt passed to ``function`` (a public function taking a
    key) itself, so that Salt never has to refuse one: Salt's own refusal ("The
    following keyword arguments are not valid: NAME=...") would quote the key.

    ``values`` maps the function's parameters, in order, to what it received; ``keys``
    names the parameters that take a key, in order. Salt's command line turns a
    positional argument shaped ``NAME=`` (a base64 key with no ``+`` or ``/``, about one
    in five) into the keyword ``NAME`` and passes the other positional arguments without
    it; each such key is put back (``_put_back``). Returns ``values`` completed; a
    ``required`` one missing is refused. A key with no place, or any other unknown
    keyword, is refused naming its position or its name, never a key.
    """
    values = dict(values)
    moved, stray = [], []
    for name, value in kwargs.items():
        if str(name).startswith("__"):  # Salt's own (__pub_jid...)
            continue
        (moved if _cli_key(name, value) else stray).append(f"{name}=")
    if stray:
        raise SaltInvocationError(
            f"{function}: unexpected argument(s): "
            f"{', '.join(_keyword_shown(name[:-1]) for name in stray)}"
        )
    left = _put_back(values, keys, moved)
    if left:
        given = sum(value is not None for value in values.values())
        places = ", ".join(str(given + 1 + extra) for extra in range(len(left)))
        raise SaltInvocationError(
            f"{function}: argument(s) {places} of the command line hold a key with no "
            f"place ({function} takes {len(values)} argument(s): {', '.join(values)}); "
            "keys are not shown"
        )
    for name in required:
        if values.get(name) is None:
            raise SaltInvocationError(f"{function}: {name} is missing")
    return values


def positional(value, kwargs, what):
    """A key given positionally on Salt's command line. Salt turns an argument shaped
    ``NAME=`` into the keyword ``NAME`` with an empty value when NAME is an identifier,
    as about one base64 key in five is: put such a key back together (see
    ``arguments``; no message quotes a key)."""
    extra = {k: v for k, v in kwargs.items() if not str(k).startswith("__")}
    if value is None and len(extra) == 1:
        ((name, empty),) = extra.items()
        if empty in ("", None) and len(str(name)) <= 32:
            return f"{name}="
    value = arguments(what, {what: value}, kwargs, [what])[what]
    if value is None:
        raise SaltInvocationError(f"{what} is missing")
    return value


def module_virtual(virtualname):
    """The ``__virtual__`` of every file of the ``wireguard`` execution module, one rule
    for all (Salt merges files of one virtual name; one file refused would hide every
    function): they load without ``wg``, the key functions need only PyNaCl, and
    functions that need ``wg`` say so when it is missing."""
    if not HAS_NACL:
        return (False, "The wireguard module needs PyNaCl (python3-nacl / pip install pynacl)")
    return virtualname
