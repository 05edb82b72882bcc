"""Private key rotation of mine-driven networks: who takes part, and each one's orders.

``salt-run wireguard.rotate_keys`` rotates the key of each targeted node in four steps,
so that traffic to it stops only between its switch and its partners' (one job):

1. stage: the node makes ``<if>.key.next`` (on the minion, 0600) and answers with its
   public half; nothing else changes, so a node that does not answer is left as it was;
2. announce: every partner adds the next key as an extra peer with no AllowedIPs (its
   endpoint and preshared key as the old entry's), so it accepts the node's first
   handshake with the new key;
3. switch, one job for the node and all its partners: the node sets the next key
   (``wg set private-key``) and keeps it as ``<if>.key``; each partner moves the
   AllowedIPs from the old entry to the new one and removes the old, in one ``wg set``;
4. settle: ``mine.update`` on the node, then ``state.apply wireguard`` on the node and its
   partners, which writes the files; a later run changes nothing.
"""

import ipaddress
import math
import re

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_keys
import wgf_networks
from wgf_addr import shown


def members(networks, minion, interface=None):
    """``{interface: network}`` of the networks ``minion`` is a node of (one interface
    when given). Networks that do not validate are left out."""
    return {
        settings["interface"]: netname
        for netname, settings in wgf_networks.member_networks(networks, minion)
        if interface in (None, settings["interface"])
    }


def partner_entries(networks, netname, node):
    """``{partner: {"allowed_ips", "endpoint", "persistent_keepalive", "address"}}``: the
    peer entry each partner of ``node`` in network ``netname`` holds for it, and the
    partner's tunnel address."""
    settings = wgf_networks.checked_network(netname, networks[netname])
    peers, _ = wgf_networks.node_peers(settings, node)
    entries = {}
    for partner in peers:
        theirs, _ = wgf_networks.node_peers(settings, partner)
        held = theirs[node]
        entries[partner] = {
            "allowed_ips": held["allowed_ips"],
            "endpoint": held.get("endpoint"),
            "persistent_keepalive": held.get("persistent_keepalive"),
            "address": str(ipaddress.ip_interface(settings["nodes"][partner]["address"]).ip),
        }
    return entries


def plan(networks, targeted, interface=None):
    """``({node: {interface: network}}, refused)``: what rotating ``targeted`` touches;
    ``refused`` are the targeted minions that are a node of no network (with that
    interface)."""
    nodes, refused = {}, []
    for minion in sorted(targeted):
        found = members(networks, minion, interface)
        if found:
            nodes[minion] = found
        else:
            refused.append(minion)
    return nodes, refused


def refusal(refused, interface):
    """The message for targeted minions that are no network's node."""
    where = f" with interface {shown_arg(interface)}" if interface else ""
    return f"not a node of any network in wireguard:networks{where}: " + ", ".join(
        shown(m) for m in refused
    )


def announce_orders(networks, nodes, staged):
    """``{partner: [{"interface", "public_key", "replaces", "endpoint",
    "persistent_keepalive"}]}``: the next keys each partner adds as peers without
    AllowedIPs; ``staged`` is ``{node: {interface: {"old", "next"}}}``."""
    orders = {}
    for node, interfaces in nodes.items():
        for ifname, netname in interfaces.items():
            for partner, entry in partner_entries(networks, netname, node).items():
                orders.setdefault(partner, []).append(
                    {
                        "interface": ifname,
                        "public_key": staged[node][ifname]["next"],
                        "replaces": staged[node][ifname]["old"],
                        "endpoint": entry["endpoint"],
                        "persistent_keepalive": entry["persistent_keepalive"],
                    }
                )
    return orders


def switch_orders(networks, nodes, staged):
    """``{minion: {"private_key": [interfaces], "peers": [moves], "wake": [addresses]}}``:
    in the switch job, each node sets its next key on its interfaces and then sends a
    packet to each partner's tunnel address (so both ends handshake with the new key at
    once), each partner moves every rotated node's AllowedIPs from the old key
    (``old``) to the new (``new``)."""
    orders = {}
    for node, interfaces in nodes.items():
        mine = orders.setdefault(node, {"private_key": [], "peers": [], "wake": []})
        for ifname, netname in interfaces.items():
            mine["private_key"].append(ifname)
            for partner, entry in partner_entries(networks, netname, node).items():
                mine["wake"].append(entry["address"])
                orders.setdefault(partner, {"private_key": [], "peers": [], "wake": []})[
                    "peers"
                ].append(
                    {
                        "interface": ifname,
                        "old": staged[node][ifname]["old"],
                        "new": staged[node][ifname]["next"],
                        "allowed_ips": entry["allowed_ips"],
                    }
                )
    return orders


# ---------------------------------------------------- the minions' answers (untrusted)


def _key_or_none(value):
    try:
        wgf_keys.decode(value)
    except SaltInvocationError:
        return None
    return value


def checked_staged(nodes, staged, published):
    """``(staged, refused)``: the stage answers that can be used, and ``{node: why}``
    for the others. A minion's answer is data about itself only: for each interface
    asked, ``{"old", "next"}`` public keys, ``old`` the key the mine holds for it (when
    it holds one: the key its partners have), ``next`` new and no other node's key.
    ``published`` is ``{minion: {interface: public key}}`` from the master's mine."""
    published = {
        minion: {i: k for i, k in keys.items() if isinstance(k, str)}
        for minion, keys in published.items()
        if isinstance(keys, dict)
    }
    others = {}
    for minion, keys in published.items():
        for key in keys.values():
            others.setdefault(key, set()).add(minion)
    good, refused, taken = {}, {}, {}
    for node, interfaces in sorted(nodes.items()):
        answer = staged.get(node)
        why, mine = None, {}
        for ifname in sorted(interfaces):
            entry = answer.get(ifname) if isinstance(answer, dict) else None
            old = _key_or_none(entry.get("old")) if isinstance(entry, dict) else None
            new = _key_or_none(entry.get("next")) if isinstance(entry, dict) else None
            held = published.get(node, {}).get(ifname)
            if old is None or new is None:
                why = f"its stage answer for {shown(ifname)} is not two public keys (old, next)"
            elif old == new:
                why = f"its next key for {shown(ifname)} is its current key"
            elif held is not None and old != held:
                why = (
                    f"the key it says {shown(ifname)} has is not the one it published "
                    "in the mine (its partners' key for it): run state.apply wireguard "
                    "and mine.update on it first"
                )
            elif others.get(new, set()) - {node} or new in taken:
                why = f"its next key for {shown(ifname)} is already another node's key"
            if why:
                break
            mine[ifname] = {"old": old, "next": new}
        if why:
            refused[node] = why
            continue
        for entry in mine.values():
            taken[entry["next"]] = node
        good[node] = mine
    return good, refused


# ---------------------------------------------- the orders a minion takes (untrusted)


def _refuse(step, where, what):
    raise SaltInvocationError(f"wireguard_rotate.{step}: {where}: {what}")


def _own(step, orders, minion, empty):
    if not isinstance(orders, dict):
        _refuse(step, "orders", "a mapping of minion id to its orders")
    return orders.get(minion, empty)


def _interface(step, where, value):
    if not wgf_addr.is_interface_name(value):
        _refuse(step, where, "not an interface name (1-15 characters of a-z A-Z 0-9 _ = + . -)")
    return value


def _public_key(step, where, value):
    if _key_or_none(value) is None:
        _refuse(step, where, "not a public key (44 base64 characters, 32 bytes)")
    return value


def _list(step, where, value):
    if not isinstance(value, list):
        _refuse(step, where, "not a list")
    return value


def stage_order(orders, minion):
    """The interfaces ``orders`` (``{minion: [interfaces]}``) name for ``minion``."""
    mine = _list("stage", f"orders for {shown(minion)}", _own("stage", orders, minion, []))
    return [_interface("stage", f"interface #{n}", i) for n, i in enumerate(mine, 1)]


def announce_order(orders, minion):
    """The next keys ``minion`` adds as peers, each ``{"interface", "public_key",
    "replaces", "endpoint", "persistent_keepalive"}``, checked."""
    mine = _list("announce", f"orders for {shown(minion)}", _own("announce", orders, minion, []))
    checked = []
    for number, order in enumerate(mine, 1):
        where = f"order #{number}"
        if not isinstance(order, dict):
            _refuse("announce", where, "not a mapping")
        endpoint, keepalive = order.get("endpoint"), order.get("persistent_keepalive")
        if endpoint not in (None, ""):
            try:
                endpoint = wgf_addr.endpoint(endpoint, "endpoint")
            except SaltInvocationError:
                _refuse("announce", f"{where}, endpoint", "not host:port")
        if keepalive in (None, 0, "off"):
            keepalive = None
        elif (
            isinstance(keepalive, bool)
            or not isinstance(keepalive, int)
            or not 0 < keepalive <= 65535
        ):
            _refuse(
                "announce",
                f"{where}, persistent_keepalive",
                "not off or a number of seconds from 1 to 65535",
            )
        checked.append(
            {
                "interface": _interface("announce", f"{where}, interface", order.get("interface")),
                "public_key": _public_key(
                    "announce", f"{where}, public_key", order.get("public_key")
                ),
                "replaces": _public_key("announce", f"{where}, replaces", order.get("replaces")),
                "endpoint": endpoint or None,
                "persistent_keepalive": keepalive or None,
            }
        )
    return checked


def switch_order(orders, minion):
    """``{"private_key": [interfaces], "peers": [{"interface", "old", "new",
    "allowed_ips"}], "wake": [addresses]}`` for ``minion``, checked."""
    mine = _own("switch", orders, minion, {})
    if not isinstance(mine, dict):
        _refuse("switch", f"orders for {shown(minion)}", "not a mapping")
    interfaces = [
        _interface("switch", f"private_key #{n}", i)
        for n, i in enumerate(_list("switch", "private_key", mine.get("private_key", [])), 1)
    ]
    peers = []
    for number, move in enumerate(_list("switch", "peers", mine.get("peers", [])), 1):
        where = f"peer move #{number}"
        if not isinstance(move, dict):
            _refuse("switch", where, "not a mapping")
        cidrs = []
        for cidr in _list("switch", f"{where}, allowed_ips", move.get("allowed_ips")):
            try:
                cidrs.append(wgf_addr.network(cidr, "allowed_ips"))
            except SaltInvocationError:
                _refuse("switch", f"{where}, allowed_ips", "not a list of CIDRs")
        peers.append(
            {
                "interface": _interface("switch", f"{where}, interface", move.get("interface")),
                "old": _public_key("switch", f"{where}, old", move.get("old")),
                "new": _public_key("switch", f"{where}, new", move.get("new")),
                "allowed_ips": cidrs,
            }
        )
    wake = []
    for address in _list("switch", "wake", mine.get("wake", [])):
        try:
            wake.append(str(ipaddress.ip_address(address)) if isinstance(address, str) else None)
        except ValueError:
            wake.append(None)
        if wake[-1] is None:
            _refuse("switch", "wake", "not a list of IP addresses")
    return {"private_key": interfaces, "peers": peers, "wake": wake}


# ------------------------------------------------------------ the runner's arguments

#: Salt's target types (``salt.utils.minions.CkMinions``).
TARGET_TYPES = (
    "glob",
    "pcre",
    "list",
    "grain",
    "grain_pcre",
    "pillar",
    "pillar_pcre",
    "pillar_exact",
    "compound",
    "compound_pillar_exact",
    "ipcidr",
    "nodegroup",
    "range",
    "data",
)


def checked_target(tgt, tgt_type):
    """``(tgt, tgt_type)`` as the runner passes them to Salt, or raise naming them."""
    if tgt_type not in TARGET_TYPES:
        raise SaltInvocationError(f"tgt_type is one of {', '.join(TARGET_TYPES)}")
    if tgt_type == "list" and isinstance(tgt, list) and all(isinstance(t, str) and t for t in tgt):
        return tgt, tgt_type
    if not isinstance(tgt, str) or not tgt or wgf_addr.LINE_BREAKING.search(tgt):
        raise SaltInvocationError(
            "tgt is a target: a non-empty string on one line"
            + (" (or a list of minion ids)" if tgt_type == "list" else "")
        )
    return tgt, tgt_type


def checked_timeout(timeout):
    """None, or whole seconds (from 1 to a day, a fraction rounded up) to wait for the
    minions. Whole: Salt's LocalClient takes any other number for "no timeout given" and
    waits ``salt-run -t`` (or the master's ``timeout``) instead."""
    if timeout is None:
        return None
    try:
        number = (
            float(timeout)
            if isinstance(timeout, (int, float, str)) and not isinstance(timeout, bool)
            else -1.0
        )
    except (ValueError, OverflowError):
        number = -1.0
    if not 1 <= number <= 86400:  # NaN too
        raise SaltInvocationError("timeout is a number of seconds from 1 to 86400")
    return math.ceil(number)


def checked_name(value, what, optional=False):
    """A network or interface name given to the runner: a string on one line."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or wgf_addr.LINE_BREAKING.search(value):
        raise SaltInvocationError(f"{what} is a name: a non-empty string on one line")
    return value


def checked_stale_after(value):
    """Seconds (1 to 2**31) without a handshake after which a link is stale."""
    if isinstance(value, str) and value.strip().isdigit() and len(value) < 12:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31:
        raise SaltInvocationError("stale_after is a number of seconds from 1 to 2147483648")
    return value


#: Something shaped like a WireGuard key (32 bytes in base64).
KEY_SHAPED = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


def shown_arg(value):
    """A name a user gave the runner, as a message shows it; a key typed where a name
    goes is not echoed."""
    if isinstance(value, str) and KEY_SHAPED.search(value):
        return "(a value shaped like a key)"
    return shown(value)
