"""
Manage WireGuard keys, config files and live peers.

Live peers are changed with ``wg set``: a peer change never restarts the interface,
so traffic to the other peers does not notice it. Each run reads an interface's live
state once (cached in ``__context__``) and writes each change once.

.. code-block:: yaml

    wg0-hub:
      wireguard.peer:
        - name: 3cp0...=
        - interface: wg0
        - allowed_ips: [10.1.1.0/24]
        - endpoint: vpn.example.com:51820
        - persistent_keepalive: 25

No private or preshared key ever appears in ``changes`` or comments.

This file holds the peer states. The ``wireguard`` state module has more files, by
concern, which Salt loads under the one name: ``wireguard_files.py`` (the key and the
config file, and the restart), ``wireguard_interface.py`` (the running interface),
``wireguard_clients.py`` (clients), ``wireguard_firewall.py`` and ``wireguard_layout.py``.
Every command and file write goes through the host adapter (``wgf_host.Host``).
"""

import importlib

from salt.exceptions import SaltInvocationError

import wgf_args
import wgf_host
import wgf_keys
import wgf_reload
import wgf_state

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_state.loaded(__salt__, __virtualname__)


_ret = wgf_state.ret


# --------------------------------------------------------------- live peers


def _minion():
    """The minion for one state call; its host adapter is made here and nowhere else in
    this file (the unit tests hand in a fake one)."""
    return wgf_state.Minion(__salt__, __opts__, __context__, wgf_host.Host(__salt__))


def _psk_from_arguments(interface, name, preshared_key, preshared_key_pillar):
    if preshared_key_pillar:
        preshared_key = __salt__["pillar.get"](preshared_key_pillar, unmask=True) or None
        if preshared_key is None:
            raise SaltInvocationError(
                f"interface '{interface}', peer '{name}': pillar "
                f"'{preshared_key_pillar}' holds no preshared key"
            )
    return preshared_key


def peer(
    name,
    interface,
    allowed_ips=None,
    endpoint=None,
    persistent_keepalive=None,
    preshared_key=None,
    preshared_key_pillar=None,
):
    """
    The live interface holds this peer with exactly these attributes.

    name
        The peer's public key.
    interface
        The live WireGuard interface.
    allowed_ips
        List of CIDRs; compared regardless of order and host bits. None means none.
    endpoint
        ``host:port``, ``a.b.c.d:port`` or ``[v6]:port``. A host name is resolved and
        compared with the live address. None leaves the live endpoint alone (a roaming
        peer's endpoint is learnt from its packets).
    persistent_keepalive
        Seconds; 0, ``off`` and None all mean off.
    preshared_key
        A preshared key; compared without being shown. None means none.
    preshared_key_pillar
        A pillar path holding the preshared key, so the key never appears in SLS.
    """
    return wgf_state.guarded(
        _ret(name),
        _peer,
        interface,
        allowed_ips,
        endpoint,
        persistent_keepalive,
        preshared_key,
        preshared_key_pillar,
    )


def _peer(ret, interface, allowed_ips, endpoint, keepalive, psk, psk_pillar):
    name, minion = ret["name"], _minion()
    psk = _psk_from_arguments(interface, name, psk, psk_pillar)
    live = minion.live(interface)
    current = live["peers"].get(name)
    diff, todo = minion.peer_diff(interface, name, current, allowed_ips, endpoint, keepalive, psk)
    if not diff:
        ret["comment"] = f"Peer {name} on {interface} is already as wanted"
        return ret
    ret["changes"] = diff
    verb = "changed" if current else "added"
    if minion.test:
        return minion.pending(ret, f"Peer {name} on {interface} would be {verb}")
    __salt__["wireguard.apply_peers"](interface, peers=[todo])
    wgf_state.remember(live, name, current, todo)
    return minion.pending(ret, f"Peer {name} on {interface} {verb}")


def peer_absent(name, interface):
    """
    The live interface does not hold this peer.

    name
        The peer's public key.
    interface
        The live WireGuard interface. When it is not up, there is nothing to remove.
    """
    return wgf_state.guarded(_ret(name), _peer_absent, interface)


def _peer_absent(ret, interface):
    name, minion = ret["name"], _minion()
    if not minion.is_up(interface):
        ret["comment"] = f"Interface {interface} is not up, so it holds no peer {name}"
        return ret
    live = minion.live(interface)
    if name not in live["peers"]:
        ret["comment"] = f"Peer {name} is not on {interface}"
        return ret
    ret["changes"] = {"peer": {"old": name, "new": None}}
    if minion.test:
        return minion.pending(ret, f"Peer {name} would be removed from {interface}")
    __salt__["wireguard.apply_peers"](interface, remove=[name])
    live["peers"].pop(name)
    return minion.pending(ret, f"Peer {name} removed from {interface}")


def peers(name, config_dir=None):
    """
    The live interface holds every peer pillar declares for it (``peers``, a network's
    too) with its attributes, and none of those marked ``absent``: what
    ``wireguard.peer`` and ``wireguard.peer_absent`` do for one peer, for all of them in
    one state and one ``wg set`` per 500 changes. The formula uses it for an interface
    with more than 200 such peers, where a state per peer costs seconds a run (issue
    24). Preshared keys are read from pillar here; clients are ``client_peers``'.

    name
        The live WireGuard interface.
    """
    return wgf_state.guarded(_ret(name), _peers, config_dir)


def _as_wanted(now, peer, psk):
    """The live peer ``now`` already as pillar's ``peer`` says: the common case, decided
    without parsing every address again (anything else goes to ``peer_diff``)."""
    return (
        sorted(now["allowed_ips"]) == sorted(peer["allowed_ips"])
        and now["persistent_keepalive"] == (peer["persistent_keepalive"] or None)
        and (not peer["endpoint"] or now.get("endpoint") == peer["endpoint"])
        and now.get("preshared_key_sha256") == (wgf_keys.digest(psk) if psk else None)
    )


def _peers(ret, config_dir):
    interface, minion = ret["name"], _minion()
    declared = minion.declared(interface, minion.config_dir(config_dir))
    if declared is None:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    psks = minion.pillar_secrets(declared)["preshared_keys"]
    live = minion.live(interface)
    todo, remove = [], []
    for peer_name, peer in sorted(declared["peers"].items()):
        key, now = peer["public_key"], live["peers"].get(peer["public_key"])
        if not key or peer.get("client"):
            continue
        if peer["absent"]:
            if now is not None:
                ret["changes"][peer_name] = {"peer": {"old": key, "new": None}}
                remove.append(key)
            continue
        psk = psks.get(peer_name)
        if now and _as_wanted(now, peer, psk):
            continue
        diff, change = minion.peer_diff(
            interface,
            key,
            now,
            peer["allowed_ips"],
            peer["endpoint"],
            peer["persistent_keepalive"],
            psk,
        )
        if diff:
            ret["changes"][peer_name] = diff
            todo.append((key, now, change))
    if not todo and not remove:
        ret["comment"] = f"The peers of {interface} are live as wanted"
        return ret
    said = f"{len(todo)} peer(s) of {interface} set live, {len(remove)} removed"
    if minion.test:
        return minion.pending(ret, f"Would be: {said}")
    __salt__["wireguard.apply_peers"](
        interface, peers=[change for _, _, change in todo], remove=remove
    )
    for key in remove:
        live["peers"].pop(key, None)
    for key, now, change in todo:
        wgf_state.remember(live, key, now, change)
    return minion.pending(ret, said)


def peers_purged(name, keep=None, keep_clients=False, config_dir=None, keep_declared=False):
    """
    The live interface holds no peer other than those in ``keep``.

    name
        The live WireGuard interface.
    keep
        Public keys of the peers to keep (the formula passes every peer its pillar
        declares, so a run that targets a few minions never drops the others' peers).
    keep_clients
        Keep the interface's clients too (their keys may be made in this very run).
    keep_declared
        Keep every peer pillar declares for the interface (not ``absent``), read here:
        the formula's SLS passes this instead of ``keep`` where the interface has more
        than 200 peers (a list of 10,000 keys through the SLS costs seconds; issue 24).
    """
    return wgf_state.guarded(
        _ret(name), _peers_purged, keep or [], keep_clients, config_dir, keep_declared
    )


def _peers_purged(ret, keep, keep_clients=False, config_dir=None, keep_declared=False):
    interface, minion = ret["name"], _minion()
    if keep_clients:
        keep = [*keep, *minion.client_peers_wanted(interface, config_dir)]
    if keep_declared:
        declared = minion.declared(interface, minion.config_dir(config_dir)) or {"peers": {}}
        keep = [
            *keep,
            *(
                p["public_key"]
                for p in declared["peers"].values()
                if p["public_key"] and not p["absent"] and not p.get("client")
            ),
        ]
    live = minion.live(interface)
    extra = sorted(set(live["peers"]) - set(keep))
    if not extra:
        ret["comment"] = f"{interface} holds no undeclared peer"
        return ret
    ret["changes"] = {"removed": {"old": extra, "new": []}}
    if minion.test:
        return minion.pending(
            ret, f"{len(extra)} undeclared peer(s) would be removed from {interface}"
        )
    __salt__["wireguard.apply_peers"](interface, remove=extra)
    for key in extra:
        live["peers"].pop(key)
    return minion.pending(ret, f"{len(extra)} undeclared peer(s) removed from {interface}")


# Last: every state above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals(), wgf_args.state_refused)
