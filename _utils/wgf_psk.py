"""Per-pair preshared keys of mine-driven networks, kept by the master.

A network with ``preshared_keys: true`` gives every pair of nodes that peer with each
other (``wgf_networks`` decides who does) a preshared key of its own. The master makes
each key from fresh randomness (never from the WireGuard keys: a preshared key is
there for the day Curve25519 falls) and keeps them in one JSON file of its own,
``<cachedir>/wireguard/psks.json`` (directory 0700, file 0600, replaced atomically,
changed under a lock). The ext_pillar ``wireguard`` gives a minion only its own pairs'
keys; ``salt-run wireguard.rotate_psks`` replaces a network's keys.

No function here returns a key except ``keys_for`` (the ext_pillar's answer), and no
message quotes one.
"""

import base64
import contextlib
import fcntl
import json
import os

from salt.exceptions import SaltInvocationError

import wgf_files
import wgf_keys
import wgf_networks  # uses this module at call time only
from wgf_addr import shown

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


def partners_of(networks, minion):
    """``{network: [partner minion ids]}`` of the networks with preshared keys that
    ``minion`` is a node of."""
    found = {}
    for netname, settings in wgf_networks.member_networks(networks, minion):
        partners = sorted(b if a == minion else a for a, b in _pairs(settings)
                          if minion in (a, b))
        if partners:
            found[netname] = partners
    return found


# ------------------------------------------------------------------ the store


def store_path(cachedir):
    return os.path.join(cachedir, STORE_DIR, STORE_FILE)


def refuse_in_store(path, cachedir, what):
    """Raise when a file the user asked for at ``path`` would land in the store's
    directory (the runner's SVG, say, replacing the store)."""
    wgf_files.refuse_inside(path, os.path.dirname(store_path(cachedir)), what,
                            "the master's store of preshared keys is there")


@contextlib.contextmanager
def _locked(path):
    """The store's lock held (the master compiles pillar in several processes)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _load(path):
    """``{network: {minion a: {minion b: key}}}`` (a < b) from the store, or empty."""
    try:
        with open(path, encoding="ascii") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SaltInvocationError(f"the preshared key store {path} is unreadable: "
                                  f"{type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise SaltInvocationError(f"the preshared key store {path} is not a mapping")
    return data


def _save(path, data):
    """Write the store atomically, 0600 from the first byte."""
    wgf_files.write_private(path, json.dumps(data, sort_keys=True))


def keys_for(cachedir, networks, minion):
    """``{network: {partner: key}}``: the keys of ``minion``'s own pairs, each made
    (and stored) the first time either end asks."""
    wanted = partners_of(networks, minion)
    if not wanted:
        return {}
    path = store_path(cachedir)
    with _locked(path):
        store = _load(path)
        answer, made = {}, False
        for netname, partners in wanted.items():
            keys = store.setdefault(netname, {})
            answer[netname] = {}
            for partner in partners:
                first, second = pair(minion, partner)
                held = keys.setdefault(first, {})
                if not isinstance(held.get(second), str):
                    held[second] = new_key()
                    made = True
                answer[netname][partner] = held[second]
        if made:
            _save(path, store)
    return answer


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


def check_network_psks(netname, partners, psks, errors):
    """Check the keys pillar holds for one network's partners; problems (appended to
    ``errors``) name the network and the partner, never the value."""
    where = f"network {shown(netname)}"
    held = psks.get(netname) if isinstance(psks, dict) else None
    if held is not None and not isinstance(held, dict):
        errors.append(f"{where}: wireguard:network_psks holds no mapping of partner to key")
        held = None
    for partner in partners:
        value = (held or {}).get(partner)
        if value is None:
            errors.append(
                f"{where}, node {shown(partner)}: sets preshared_keys but pillar holds no "
                "preshared key for this pair; enable the formula's ext_pillar on the master "
                "(ext_pillar: [{wireguard: {}}]) and run salt-run saltutil.sync_all")
            continue
        try:
            wgf_keys.decode(value, f"{where}, node {shown(partner)}: the preshared key")
        except SaltInvocationError as exc:
            errors.append(str(exc))
