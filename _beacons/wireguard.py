"""
Fire an event when a WireGuard peer's handshake goes stale, and when it recovers.

:depends: ``wg`` from wireguard-tools, and the formula's ``wireguard`` execution module

A peer is stale when its last handshake is older than ``stale_after`` seconds (or it
never had one) while traffic is being sent to it and nothing comes back: its sent
counter grew since the beacon's previous look by more than one keepalive (or it has a
persistent keepalive) and its received counter did not. WireGuard renews a working
session every 120 s while it carries traffic and drops it after 180 s, so a link in use
never goes past the default of 180 s. (A ``stale_after`` below 120 s is for tests: a
busy one-way link then looks stale between two renewals.) A stale peer is recovered by
its next handshake, or as soon as it answers again (a peer found at a new address keeps
its session). A peer that stays stale is reported again every ``renotify`` seconds
(default 300, 0 turns it off), so a reaction that came too early (a DNS record not yet
updated) gets another chance.

Events (Salt puts ``salt/beacon/<minion id>/<beacon name>/`` in front of each tag):

- ``salt/beacon/<minion>/wireguard/stale``
- ``salt/beacon/<minion>/wireguard/recovered``

with ``interface``, ``peer`` (public key), ``name`` (the comment above the peer in
the config file, or None), ``endpoint``, ``age`` (seconds since the last handshake, or
None for never), ``latest_handshake`` (epoch seconds or None), ``stale_after``, and,
on recovery and on repeated stale events, ``stale_for`` (seconds since it went stale).

.. code-block:: yaml

    beacons:
      wireguard:
        - interval: 10            # seconds between looks (Salt's own beacon option)
        - stale_after: 180        # default
        - renotify: 300           # default; 0: one stale event per outage
        - interfaces: [wg0]       # default: every live WireGuard interface

The state between calls is kept in ``__context__``; a peer that is already stale when
the beacon starts is reported once it is seen sending (a keepalive makes that the
first look).
"""

import logging
import time

import salt.utils.beacons
import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"

STALE_AFTER = 180
#: Size of a WireGuard keepalive as the transfer counters count it (header and tag).
KEEPALIVE_BYTES = 32
#: Seconds after which a peer that is still stale is reported again (0: never).
RENOTIFY = 300
CONTEXT = "wireguard.beacon"
#: Keys every beacon may carry; Salt itself handles them.
GENERIC_KEYS = {"interval", "enabled", "disable_during_state_run", "run_once",
                "beacon_module", "_beacon_name"}
OWN_KEYS = {"stale_after", "renotify", "interfaces"}


def __virtual__():
    if not salt.utils.path.which("wg"):
        return (False, "The wireguard beacon needs 'wg' (wireguard-tools)")
    return __virtualname__


def validate(config):
    """Check the beacon's configuration: a list of one-key mappings."""
    if not isinstance(config, list) or not all(isinstance(i, dict) for i in config):
        return False, "Configuration for the wireguard beacon must be a list of mappings"
    conf = salt.utils.beacons.list_to_dict(config)
    unknown = sorted(set(conf) - GENERIC_KEYS - OWN_KEYS)
    if unknown:
        return False, (f"wireguard beacon: unknown key(s) {', '.join(unknown)}; "
                       f"known: {', '.join(sorted(OWN_KEYS))}")
    stale_after = conf.get("stale_after", STALE_AFTER)
    if isinstance(stale_after, bool) or not isinstance(stale_after, int) or stale_after < 1:
        return False, "wireguard beacon: stale_after must be a whole number of seconds >= 1"
    renotify = conf.get("renotify", RENOTIFY)
    if isinstance(renotify, bool) or not isinstance(renotify, int) or renotify < 0:
        return False, "wireguard beacon: renotify must be a whole number of seconds >= 0"
    interfaces = conf.get("interfaces")
    if interfaces is not None and (
            not isinstance(interfaces, list)
            or not all(isinstance(i, str) and i for i in interfaces)):
        return False, "wireguard beacon: interfaces must be a list of interface names"
    return True, "Valid beacon configuration"


def _names(interface):
    """``{public key: name}`` from the interface's config file, when there is one."""
    try:
        peers = __salt__["wireguard.config_peers"](interface)
    except (CommandExecutionError, SaltInvocationError, KeyError):
        return {}
    return {key: peer.get("name") for key, peer in peers.items()}


def _event(tag, interface, key, peer, names, stale_after):
    return {
        "tag": tag,
        "interface": interface,
        "peer": key,
        "name": names.get(key),
        "endpoint": peer["endpoint"],
        "age": peer["latest_handshake_age"],
        "latest_handshake": peer["latest_handshake"],
        "stale_after": stale_after,
    }


def _judge(previous, peer, stale_after, now, renotify=0):
    """The peer's new state ``{"stale", "tx", "rx", "since", "notified", "at"}`` and the
    event to fire, if any.

    Pure: ``previous`` is the state of the last look (None at the first), ``peer`` one
    peer of ``wireguard.show``. A peer that stays stale is reported again every
    ``renotify`` seconds (0: never), so a reaction that came too early (a DNS record
    not updated yet) gets another chance.
    """
    age, tx, rx = peer["latest_handshake_age"], peer["tx_bytes"], peer["rx_bytes"]
    if previous is not None and now - previous["at"] > max(stale_after, 60):
        previous = None  # the beacon did not look for long: counters say nothing now
    fresh = {"stale": False, "tx": tx, "rx": rx, "since": None, "notified": None, "at": now}
    was_stale = bool(previous and previous["stale"])
    # the peer answers (rx grows): the link works, even on a session older than the
    # threshold (a peer that moved keeps its session when it is found again)
    answered = previous is not None and rx > previous["rx"]
    if (age is not None and age <= stale_after) or (was_stale and answered):
        return fresh, ("recovered" if was_stale else None)
    if was_stale:
        if renotify and now - previous["notified"] >= renotify:
            return dict(previous, tx=tx, rx=rx, at=now, notified=now), "stale"
        return dict(previous, tx=tx, rx=rx, at=now), None
    # one keepalive (sent 10 s after receiving, when there was nothing to answer) is
    # not traffic: only more than that counts
    grew = previous is not None and tx - previous["tx"] > KEEPALIVE_BYTES
    # A peer that never had a handshake needs a second look: at the first one it may
    # just have been added, with the handshake on its way.
    keepalive = bool(peer["persistent_keepalive"]) and (age is not None or previous)
    if (grew or keepalive) and not answered:
        return dict(fresh, stale=True, since=now, notified=now), "stale"
    return fresh, None


def beacon(config):
    """
    Look at every peer's handshake; return a ``stale`` event for each peer that went
    stale since the last look and a ``recovered`` event for each that came back.

    .. code-block:: yaml

        beacons:
          wireguard:
            - interval: 10
            - stale_after: 180
    """
    conf = salt.utils.beacons.list_to_dict(config)
    stale_after = conf.get("stale_after", STALE_AFTER)
    renotify = conf.get("renotify", RENOTIFY)
    wanted = conf.get("interfaces")
    try:
        shown = __salt__["wireguard.show"]()
    except CommandExecutionError as exc:
        log.warning("wireguard beacon: cannot read the live interfaces: %s", exc)
        return []
    known = __context__.setdefault(CONTEXT, {})
    now = time.time()
    events, seen = [], set()
    for interface, iface in sorted(shown.items()):
        if wanted is not None and interface not in wanted:
            continue
        names = None
        for key, peer in iface["peers"].items():
            ident = f"{interface} {key}"
            seen.add(ident)
            state, tag = _judge(known.get(ident), peer, stale_after, now, renotify)
            if tag:
                if names is None:
                    names = _names(interface)
                event = _event(tag, interface, key, peer, names, stale_after)
                if known.get(ident) and known[ident]["since"] is not None:
                    event["stale_for"] = round(now - known[ident]["since"])
                events.append(event)
                log.info("wireguard beacon: %s peer %s (%s) is %s", interface,
                         event["name"] or key, key, tag)
            known[ident] = state
    for ident in set(known) - seen:  # peers (or interfaces) that are gone
        del known[ident]
    return events
