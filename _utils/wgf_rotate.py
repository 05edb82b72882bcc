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

import wgf_networks
from wgf_addr import shown


def members(networks, minion, interface=None):
    """``{interface: network}`` of the networks ``minion`` is a node of (one interface
    when given). Networks that do not validate are left out."""
    return {settings["interface"]: netname
            for netname, settings in wgf_networks.member_networks(networks, minion)
            if interface in (None, settings["interface"])}


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
        entries[partner] = {"allowed_ips": held["allowed_ips"],
                            "endpoint": held.get("endpoint"),
                            "persistent_keepalive": held.get("persistent_keepalive"),
                            "address": str(ipaddress.ip_interface(
                                settings["nodes"][partner]["address"]).ip)}
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
    where = f" with interface {shown(interface)}" if interface else ""
    return (f"not a node of any network in wireguard:networks{where}: "
            + ", ".join(shown(m) for m in refused))


def announce_orders(networks, nodes, staged):
    """``{partner: [{"interface", "public_key", "replaces", "endpoint",
    "persistent_keepalive"}]}``: the next keys each partner adds as peers without
    AllowedIPs; ``staged`` is ``{node: {interface: {"old", "next"}}}``."""
    orders = {}
    for node, interfaces in nodes.items():
        for ifname, netname in interfaces.items():
            for partner, entry in partner_entries(networks, netname, node).items():
                orders.setdefault(partner, []).append({
                    "interface": ifname, "public_key": staged[node][ifname]["next"],
                    "replaces": staged[node][ifname]["old"], "endpoint": entry["endpoint"],
                    "persistent_keepalive": entry["persistent_keepalive"]})
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
                    "peers"].append({
                    "interface": ifname, "old": staged[node][ifname]["old"],
                    "new": staged[node][ifname]["next"], "allowed_ips": entry["allowed_ips"]})
    return orders
