"""
Fire an event when a WireGuard peer's handshake goes stale, and when it recovers.

:depends: ``wg`` from wireguard-tools, and the formula's ``wireguard`` execution module

A peer is stale by the rule ``wireguard.check`` and the audit use
(``wireguard.link_states``): its last handshake is older than ``stale_after`` seconds
(or it never had one) while traffic is being sent to it and nothing comes back. The
sample is what the counters did since the beacon's previous look: the sent counter
grew by more than one keepalive (or a persistent keepalive is set) and the received
counter did not. WireGuard renews a working session every 120 s while it carries
traffic and drops it after 180 s, so a link in use never goes past the default of
180 s. (A ``stale_after`` below 120 s is for tests: a busy one-way link then looks
stale between two renewals.) A stale peer is recovered by its next handshake, or as
soon as it answers again (a peer found at a new address keeps its session). A peer
that stays stale is reported again every ``renotify`` seconds (default 300, 0 turns it
off), so a reaction that came too early (a DNS record not yet updated) gets another
chance.

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

The state between calls is kept in ``__context__``. The first look only takes the
counters: a peer that is already stale when the beacon starts is reported at the
second look. The beacon keeps to ``__salt__`` calls: Salt gives beacons no path to
the formula's utils.
"""

import logging

import salt.utils.beacons
import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"

#: Seconds after which a peer that is still stale is reported again (0: never).
RENOTIFY = 300
CONTEXT = "wireguard.beacon"
#: Keys every beacon may carry; Salt itself handles them.
GENERIC_KEYS = {
    "interval",
    "enabled",
    "disable_during_state_run",
    "run_once",
    "beacon_module",
    "_beacon_name",
}
OWN_KEYS = {"stale_after", "renotify", "interfaces"}
#: What ``wireguard.link_states`` calls a broken link.
BROKEN = ("stale", "never")


def __virtual__():
    if not salt.utils.path.which("wg"):
        return (False, "The wireguard beacon needs 'wg' (wireguard-tools)")
    return __virtualname__


def validate(config):
    """Check the beacon's configuration: a list of one-key mappings."""
    if not isinstance(config, list) or not all(isinstance(i, dict) for i in config):
        return False, "Configuration for the wireguard beacon must be a list of mappings"
    if not all(isinstance(k, str) for i in config for k in i):
        return False, "wireguard beacon: every option name is a string"
    conf = salt.utils.beacons.list_to_dict(config)
    unknown = sorted(set(conf) - GENERIC_KEYS - OWN_KEYS)
    if unknown:
        return False, (
            f"wireguard beacon: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(OWN_KEYS))}"
        )
    stale_after = conf.get("stale_after", 1)
    if isinstance(stale_after, bool) or not isinstance(stale_after, int) or stale_after < 1:
        return False, "wireguard beacon: stale_after must be a whole number of seconds >= 1"
    renotify = conf.get("renotify", RENOTIFY)
    if isinstance(renotify, bool) or not isinstance(renotify, int) or renotify < 0:
        return False, "wireguard beacon: renotify must be a whole number of seconds >= 0"
    interfaces = conf.get("interfaces")
    if interfaces is not None and (
        not isinstance(interfaces, list)
        or not all(isinstance(i, str) and 0 < len(i) <= 15 for i in interfaces)
    ):
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
        "age": peer["age"],
        "latest_handshake": peer["latest_handshake"],
        "stale_after": stale_after,
    }


def _transition(previous, state, now, renotify=0):
    """The peer's new record ``{"stale", "since", "notified"}`` and the event to fire,
    if any, from its record of the last look (None: the first look at it, which only
    takes the counters) and the state ``wireguard.link_states`` judges now."""
    fresh = {"stale": False, "since": None, "notified": None}
    if previous is None:
        return fresh, None
    if previous["stale"]:
        if state == "up":
            return fresh, "recovered"
        if renotify and now - previous["notified"] >= renotify:
            return dict(previous, notified=now), "stale"
        return previous, None
    if state in BROKEN:
        return {"stale": True, "since": now, "notified": now}, "stale"
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
    renotify = conf.get("renotify", RENOTIFY)
    wanted = conf.get("interfaces")
    memory = __context__.setdefault(CONTEXT, {"looked": None, "peers": {}})
    # stale_after defaults to the rule's own (wireguard.link_states), like check's
    rule = {"stale_after": conf["stale_after"]} if "stale_after" in conf else {}
    try:
        looked = __salt__["wireguard.link_states"](since=memory["looked"], **rule)
    except (CommandExecutionError, SaltInvocationError) as exc:
        log.warning("wireguard beacon: cannot read the live interfaces: %s", exc)
        return []
    stale_after = looked["stale_after"]
    first = memory["looked"] is None or looked["at"] - memory["looked"]["at"] > max(
        stale_after, 60
    )  # the beacon did not look for long: counters say nothing now
    memory["looked"] = looked
    now, events, seen = looked["at"], [], set()
    for interface, peers in sorted(looked["interfaces"].items()):
        if wanted is not None and interface not in wanted:
            continue
        names = None
        for key, peer in peers.items():
            ident = f"{interface} {key}"
            seen.add(ident)
            previous = None if first else memory["peers"].get(ident)
            record, tag = _transition(previous, peer["state"], now, renotify)
            if tag:
                if names is None:
                    names = _names(interface)
                event = _event(tag, interface, key, peer, names, stale_after)
                if previous and previous["since"] is not None:
                    event["stale_for"] = round(now - previous["since"])
                events.append(event)
                log.info(
                    "wireguard beacon: %s peer %s (%s) is %s",
                    interface,
                    event["name"] or key,
                    key,
                    tag,
                )
            memory["peers"][ident] = record
    for ident in set(memory["peers"]) - seen:  # peers (or interfaces) that are gone
        del memory["peers"][ident]
    return events
