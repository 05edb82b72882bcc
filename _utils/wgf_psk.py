"""Per-pair preshared keys of mine-driven networks, kept by the master.

A network with ``preshared_keys: true`` gives every pair of nodes that peer with each
other (``wgf_networks`` decides who does) a preshared key of its own. The master makes
each key from fresh randomness (never from the WireGuard keys: a preshared key is
there for the day Curve25519 falls) and keeps them in one JSON file of its own,
``<cachedir>/wireguard/psks.json`` (directory 0700, file 0600, replaced atomically,
changed under a lock). Only the runner makes keys (``salt-run wireguard.ensure_psks``,
which the orchestration runs, and ``wireguard.rotate_psks``), from the network
definitions of the pillar the master compiles itself. The ext_pillar ``wireguard`` only
reads: it gives a minion the keys of the stored pairs it is one end of, and never
reads the pillar a minion can influence (``pillar_override``).

No function here returns a key except ``keys_of`` (the ext_pillar's answer), and no
message quotes one.
"""

import base64
import contextlib
import fcntl
import json
import os
import re

from salt.exceptions import SaltInvocationError

import wgf_files
import wgf_keys
import wgf_networks
from wgf_addr import shown

#: 32 bytes in base64 (what ``wgf_keys.decode`` accepts, in one cheap match).
KEY_SHAPE = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
STORE_DIR = "wireguard"
STORE_FILE = "psks.json"


def new_key():
    """A new preshared key: 32 bytes from the operating system's randomness, base64."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def pair(one, other):
    """The two minion ids of a pair in the order the store keeps them."""
    return tuple(sorted((str(one), str(other))))


def network_pairs(netname, net):
    """The sorted pairs of nodes of one network that peer with each other, when the
    network sets ``preshared_keys: true``; else no pair. Raise on a bad network."""
    return _pairs(wgf_networks.checked_network(netname, net))


def _pairs(settings):
    if not settings["preshared_keys"]:
        return []
    pairs = set()
    for node in settings["nodes"]:
        peers, _ = wgf_networks.node_peers(settings, node)
        pairs.update(pair(node, partner) for partner in peers)
    return sorted(pairs)


# ------------------------------------------------------------------ the store


def store_path(cachedir):
    return os.path.join(cachedir, STORE_DIR, STORE_FILE)


def refuse_in_store(path, cachedir, what):
    """Raise when a file the user asked for at ``path`` would land in the store's
    directory (the runner's SVG, say, replacing the store)."""
    wgf_files.refuse_inside(
        path,
        os.path.dirname(store_path(cachedir)),
        what,
        "the master's store of preshared keys is there",
    )


@contextlib.contextmanager
def _locked(path):
    """The store's lock held (runners may run side by side)."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SaltInvocationError(
            f"the preshared key store's lock {path}.lock cannot be opened: {type(exc).__name__}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def checked_store(data, path):
    """``data`` if it is ``{network: {minion a: {minion b: key}}}`` (ids as strings, each
    key a 32-byte base64 key), or raise naming the place (never a value)."""
    where = f"the preshared key store {path}"
    if not isinstance(data, dict):
        raise SaltInvocationError(f"{where} is not a mapping")
    for netname, pairs in data.items():
        if not isinstance(netname, str) or not isinstance(pairs, dict):
            raise SaltInvocationError(
                f"{where}: network {shown(netname)} does not hold a mapping of minion to partners"
            )
        for first, held in pairs.items():
            if not isinstance(first, str) or not isinstance(held, dict):
                raise SaltInvocationError(
                    f"{where}: network {shown(netname)}, minion "
                    f"{shown(first)} does not hold a mapping of "
                    "partner to key"
                )
            for second, key in held.items():
                if isinstance(second, str) and isinstance(key, str) and KEY_SHAPE.fullmatch(key):
                    continue
                what = (
                    f"{where}: network {shown(netname)}, pair {shown(first)} - "
                    f"{shown(second)}: the key"
                )
                if not isinstance(second, str):
                    raise SaltInvocationError(f"{what}'s partner is not a minion id")
                wgf_keys.decode(key, what)  # raises naming the fault, or a rare spelling
    return data


def _load(path):
    """``{network: {minion a: {minion b: key}}}`` (a < b) from the store, or empty."""
    try:
        with open(path, encoding="ascii") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SaltInvocationError(
            f"the preshared key store {path} is unreadable: {type(exc).__name__}"
        ) from None
    return checked_store(data, path)


def _save(path, data):
    """Write the store atomically, 0600 from the first byte."""
    try:
        wgf_files.write_private(path, json.dumps(data, sort_keys=True))
    except OSError as exc:
        raise SaltInvocationError(
            f"the preshared key store {path} cannot be written: {type(exc).__name__}"
        ) from None


#: The last store read for the ext_pillar: ``(path, file identity, {minion: {network:
#: {partner: key}}})``; read again only when the file changed. It survives the
#: ``importlib.reload`` each new loader of the ext_pillar does.
_INDEX = globals().get("_INDEX") or [None, None, {}]


def _identity(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SaltInvocationError(
            f"the preshared key store {path} is unreadable: {type(exc).__name__}"
        ) from None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _index(path):
    """``{minion: {network: {partner: key}}}`` of the store at ``path``, cached."""
    identity = _identity(path)
    if identity is None:
        return {}
    if _INDEX[0] == path and _INDEX[1] == identity:
        return _INDEX[2]
    index = {}
    for netname, pairs in _load(path).items():
        for first, held in pairs.items():
            index.setdefault(first, {}).setdefault(netname, {}).update(held)
            for second, key in held.items():
                index.setdefault(second, {}).setdefault(netname, {})[first] = key
    _INDEX[:] = [path, identity, index]
    return index


def keys_of(cachedir, minion):
    """``{network: {partner: key}}``: the stored keys of ``minion``'s own pairs. Reads
    only: a key is made by the runner (``ensure_network``, ``replace_network``), never
    here. The store is read again only when it changed, so an answer costs the
    minion's own pairs."""
    found = _index(store_path(cachedir)).get(str(minion), {})
    return {netname: dict(partners) for netname, partners in found.items()}


def ensure_network(cachedir, netname, pairs):
    """A key for every pair of ``pairs`` of network ``netname``: stored keys are kept,
    missing ones made, pairs no longer in the network forgotten. Returns the number of
    keys made."""
    path = store_path(cachedir)
    with _locked(path):
        store = _load(path)
        held = store.get(str(netname), {})
        keys, made = {}, 0
        for first, second in pairs:
            key = held.get(first, {}).get(second)
            if key is None:
                key, made = new_key(), made + 1
            keys.setdefault(first, {})[second] = key
        if keys != held:
            store[str(netname)] = keys
            if not keys:
                del store[str(netname)]
            _save(path, store)
    return made


def replace_network(cachedir, netname, pairs):
    """New keys for exactly ``pairs`` of network ``netname`` (pairs no longer in it
    are forgotten). Returns the number of keys made."""
    path = store_path(cachedir)
    with _locked(path):
        store = _load(path)
        keys = {}
        for first, second in pairs:
            keys.setdefault(first, {})[second] = new_key()
        store[str(netname)] = keys
        _save(path, store)
    return len(pairs)
