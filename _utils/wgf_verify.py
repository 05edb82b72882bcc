"""Reachability assertions (issue 22): pillar ``wireguard:expect`` checked, and the static
decision of each assertion from what the minions report (``wireguard.verify_facts``).

The decision follows the packet hop by hop and back, the way the kernel and WireGuard
would: at each minion the packet arrives from a peer only with a source inside that
peer's AllowedIPs (cryptokey routing); a minion that is not the destination forwards
it only with forwarding on, and the formula's ``access`` rules of the interface it came
in on must accept it (``wgf_firewall.access_verdict``, the one matcher); the route for
the destination picks the interface, the AllowedIPs of that interface pick the peer.
A packet that leaves the tunnel into a network behind a minion comes back only through
the formula's masquerade on that device (a LAN that routes the tunnel's addresses back
by itself is outside the model: the live probe tells). Replies are not checked against
``access`` (conntrack's reply direction passes), but they need forwarding and the
AllowedIPs of the way back.

Plain data in and out; nothing here reads the minion or the pillar.
"""

import ipaddress
import re

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_firewall
from wgf_addr import shown

PROTOS = ("icmp", "tcp", "udp")
KEYS = ("from", "to", "proto", "port", "allow")
WHERE = "wireguard:expect"
#: A minion id, or a peer's, client's or network node's name.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,252}\Z")
#: Hops a packet may take before the decision calls it a loop.
MAX_HOPS = 32
ALLOW, BLOCK = "allow", "block"


# ------------------------------------------------------------------ the pillar


def _looks_like_address(value):
    return ":" in value or "/" in value or re.fullmatch(r"[0-9.]+", value) is not None


def _label(value):
    return value if isinstance(value, str) and len(value) <= 64 else shown(value)


def check_expect(value, errors):
    """The assertions of ``wireguard:expect`` normalised (``index``, ``from``, ``to``,
    ``proto``, ``port``, ``allow``); each problem, naming the assertion (its number and
    from->to) and the key, goes to ``errors``."""
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(f"{WHERE}: a list of assertions, got {type(value).__name__}")
        return []
    found = []
    for index, item in enumerate(value, 1):
        assertion = _assertion(item, index, errors)
        if assertion is not None:
            found.append(assertion)
    return found


def expect(value):
    """``check_expect`` that raises one ``SaltInvocationError`` listing every problem."""
    errors = []
    found = check_expect(value, errors)
    if errors:
        raise SaltInvocationError(
            "Invalid wireguard pillar (nothing was changed):\n- " + "\n- ".join(errors)
        )
    return found


def _assertion(item, index, errors):
    if not isinstance(item, dict):
        errors.append(
            f"{WHERE}, assertion {index}: a mapping with from, to, proto, port and allow, "
            f"got {type(item).__name__}"
        )
        return None
    where = f"{WHERE}, assertion {index} ({_label(item.get('from'))}->{_label(item.get('to'))})"
    before = len(errors)
    for key in item:
        if key not in KEYS:
            errors.append(f"{where}, key {shown(key)}: unknown; known keys: {', '.join(KEYS)}")
    source = item.get("from")
    if not isinstance(source, str) or not NAME.match(source) or _looks_like_address(source):
        errors.append(
            f"{where}, key 'from': {shown(source)} is not a minion id or a peer, client "
            "or network node name"
        )
    target = _target(item.get("to"), f"{where}, key 'to'", errors)
    proto = item.get("proto", "icmp")
    port = item.get("port")
    if proto not in PROTOS:
        errors.append(f"{where}, key 'proto': {shown(proto)} is not one of {', '.join(PROTOS)}")
    elif proto == "icmp" and port is not None:
        errors.append(f"{where}, key 'port': a port needs proto tcp or udp, not icmp")
    elif proto != "icmp":
        if port is None:
            errors.append(f"{where}, key 'port': proto {proto} needs a port (1-65535)")
        else:
            try:
                port = wgf_addr.integer(port, f"{where}, key 'port'", 1, 65535, "a port")
            except SaltInvocationError as exc:
                errors.append(str(exc))
    allow = item.get("allow", True)
    if not isinstance(allow, bool):
        errors.append(f"{where}, key 'allow': true or false, got {shown(allow)}")
    if len(errors) > before:
        return None
    return {
        "index": index,
        "from": source,
        "to": target,
        "proto": proto,
        "port": port if proto != "icmp" else None,
        "allow": allow,
    }


def _target(value, where, errors):
    """An address (no prefix) or a name."""
    if not isinstance(value, str) or not value:
        errors.append(f"{where}: an address or a name, got {shown(value)}")
        return None
    if _looks_like_address(value):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            errors.append(f"{where}: {shown(value)} is not an address (no prefix) or a name")
            return None
    if not NAME.match(value):
        errors.append(f"{where}: {shown(value)} is not an address or a name")
        return None
    return value


# ------------------------------------------------------------------ the fleet


def _host_of(cidrs, version=None):
    """The first tunnel address of AllowedIPs: the first /32 or /128, else the first
    network's first address."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    nets = [n for n in nets if version is None or n.version == version]
    for net in nets:
        if net.num_addresses == 1:
            return str(net.network_address)
    for net in nets:
        return str(net.network_address + (1 if net.num_addresses > 2 else 0))
    return None


class Fleet:
    """The minions' facts (``{minion: verify_facts}``) and every name they know: the
    minions, and the peers, clients and nodes their interfaces declare."""

    def __init__(self, facts):
        self.facts = facts
        self.keys = {}  # public key -> (minion, interface)
        for minion, fact in sorted(facts.items()):
            for ifname, iface in sorted(fact["interfaces"].items()):
                if iface.get("public_key"):
                    self.keys.setdefault(iface["public_key"], (minion, ifname))
        self.names = {}  # name -> {"kind", "address", "declared": [(minion, if, peer)]}
        for minion in sorted(facts):
            self.names[minion] = {
                "kind": "minion",
                "minion": minion,
                "address": self._first_address(minion),
                "declared": [],
            }
        for minion, fact in sorted(facts.items()):
            for ifname, iface in sorted(fact["interfaces"].items()):
                for pname, peer in sorted(iface["peers"].items()):
                    other = self.peer_minion(minion, ifname, pname)
                    if other is not None:
                        if pname not in self.names:
                            self.names[pname] = dict(self.names[other[0]])
                        continue
                    entry = self.names.setdefault(
                        pname,
                        {
                            "kind": "client" if peer.get("client") else "peer",
                            "minion": None,
                            "address": _host_of(peer["allowed_ips"]),
                            "declared": [],
                        },
                    )
                    if entry["kind"] != "minion":
                        entry["declared"].append((minion, ifname, pname))

    def _first_address(self, minion):
        for _, iface in sorted(self.facts[minion]["interfaces"].items()):
            for address in iface["address"]:
                return str(ipaddress.ip_interface(address).ip)
        return None

    def peer_minion(self, minion, ifname, pname):
        """``(minion, interface)`` the peer ``pname`` of ``minion``'s ``ifname`` is, or
        None (a peer no targeted minion is)."""
        peer = self.facts[minion]["interfaces"][ifname]["peers"][pname]
        found = self.keys.get(peer.get("public_key"))
        if found:
            return found
        other = peer.get("minion")
        if other in self.facts and other != minion:
            ifaces = self.facts[other]["interfaces"]
            wanted = peer.get("minion_interface") or ifname
            if wanted in ifaces:
                return other, wanted
        return None

    def incoming(self, minion, ifname, other):
        """``(interface, peer name)`` on ``other`` that holds ``minion``'s ``ifname``."""
        key = self.facts[minion]["interfaces"][ifname].get("public_key")
        for oif, iface in sorted(self.facts[other]["interfaces"].items()):
            for pname, peer in sorted(iface["peers"].items()):
                if key and peer.get("public_key") == key:
                    return oif, pname
                if not peer.get("public_key") and peer.get("minion") == minion:
                    return oif, pname
        return None

    def check_names(self, assertions):
        """Each assertion's ``from`` and ``to`` names known, else ``SaltInvocationError``
        naming the assertion (the minion whose pillar holds it, its number, from->to)."""
        errors = []
        for a in assertions:
            where = f"{a['declared_by']}: {WHERE}, assertion {a['index']} ({a['from']}->{a['to']})"
            if a["from"] not in self.names:
                errors.append(
                    f"{where}, key 'from': unknown: {shown(a['from'])} is no minion id, peer, "
                    "client or network node name the runner knows"
                )
            elif self.names[a["from"]]["address"] is None:
                errors.append(f"{where}, key 'from': {shown(a['from'])} has no tunnel address")
            if a["to"] is not None and not _is_address(a["to"]):
                if a["to"] not in self.names:
                    errors.append(
                        f"{where}, key 'to': unknown: {shown(a['to'])} is no address, minion "
                        "id, peer, client or network node name the runner knows"
                    )
                elif self.names[a["to"]]["address"] is None:
                    errors.append(f"{where}, key 'to': {shown(a['to'])} has no tunnel address")
        if errors:
            raise SaltInvocationError(
                "Invalid wireguard:expect (nothing was probed):\n- " + "\n- ".join(errors)
            )

    def address_of(self, target):
        return target if _is_address(target) else self.names[target]["address"]


def _is_address(value):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------ the decision


def _contains(cidrs, address):
    address = ipaddress.ip_address(address)
    return any(address in ipaddress.ip_network(c, strict=False) for c in cidrs)


def _best_peer(iface, address):
    """The peer whose AllowedIPs hold ``address`` most specifically (WireGuard's rule)."""
    address = ipaddress.ip_address(address)
    best, length = None, -1
    for pname, peer in sorted(iface["peers"].items()):
        for cidr in peer["allowed_ips"]:
            net = ipaddress.ip_network(cidr, strict=False)
            if address in net and net.prefixlen > length:
                best, length = pname, net.prefixlen
    return best


def _route(fact, address):
    """The route ``address`` takes on a minion: the longest prefix of the main table and
    of the tunnel interfaces' routes in any table (wg-quick's full tunnel keeps its
    default route in a table of its own). ``{"dst", "dev"}`` or None."""
    address = ipaddress.ip_address(address)
    best, length = None, -1
    for route in fact["routes"]:
        if (
            route.get("table", "main") not in ("main", 254)
            and route["dev"] not in (fact["interfaces"])
        ):
            continue
        dst = "0.0.0.0/0" if route["dst"] == "default" else route["dst"]
        if route["dst"] == "default" and address.version == 6:
            dst = "::/0"
        net = ipaddress.ip_network(dst, strict=False)
        if address in net and net.prefixlen > length:
            best, length = route, net.prefixlen
    return best


def _local(fact, address):
    return any(
        ipaddress.ip_interface(a).ip == ipaddress.ip_address(address) for a in fact["addresses"]
    )


class _Drop(Exception):
    def __init__(self, path, reason):
        super().__init__(reason)
        self.path, self.reason = path, reason


def decide(fleet, assertion):
    """The static verdict of one assertion (names already checked): ``{"static",
    "path", "reason", "source" (the sender's tunnel address), "sender" (its minion, or
    None for a peer, client or node that is no minion), "target" (the address)}``."""
    sender = fleet.names[assertion["from"]]
    dst = fleet.address_of(assertion["to"])
    label = f"{assertion['from']}->{dst} {assertion['proto']}" + (
        f"/{assertion['port']}" if assertion["port"] is not None else ""
    )
    packet = {"dst": dst, "proto": assertion["proto"], "port": assertion["port"], "label": label}
    packet["src_net"] = None
    result = {
        "static": BLOCK,
        "path": [assertion["from"]],
        "source": None,
        "sender": None,
        "target": dst,
    }
    try:
        if sender["kind"] == "minion":
            start, came_in, source, source_net = _minion_sender(fleet, sender, dst, result)
            if start is None:
                return {**result, "static": ALLOW, "reason": f"{dst} is {source}'s own address"}
        else:
            start, came_in, source, source_net = _other_sender(
                fleet, assertion, sender, dst, result
            )
        packet["src_net"] = source_net
        path, end = _walk(fleet, start, came_in, source, packet, list(result["path"]), False)
        back = _return_walk(fleet, end, source, source_net, dst, path)
    except _Drop as drop:
        return {**result, "static": BLOCK, "path": drop.path, "reason": drop.reason}
    return {**result, "static": ALLOW, "path": path, "reason": back}


def _minion_sender(fleet, sender, dst, result):
    """Where a minion's packet starts: ``(minion, None, source, its network)``, or
    ``(None, None, minion, None)`` when ``dst`` is its own address."""
    minion = result["sender"] = sender["minion"]
    fact = fleet.facts[minion]
    if _local(fact, dst):
        result["source"] = dst
        return None, None, minion, None
    route = _route(fact, dst)
    if route is None or route["dev"] not in fact["interfaces"]:
        how = f"via {route['dev']}" if route else "no route"
        raise _Drop(result["path"], f"{minion}: {dst} is not routed into a tunnel ({how})")
    source = _source(fact["interfaces"][route["dev"]], dst)
    if source is None:
        version = ipaddress.ip_address(dst).version
        raise _Drop(result["path"], f"{minion}: {route['dev']} has no IPv{version} address")
    result["source"] = str(source.ip)
    return minion, None, str(source.ip), str(source.network)


def _other_sender(fleet, assertion, sender, dst, result):
    """Where a peer's, client's or node's packet starts: at the first minion that
    declares it, as if it arrived from it there."""
    if not sender["declared"]:
        raise _Drop(result["path"], f"{assertion['from']}: declared by no minion")
    minion, ifname, pname = sender["declared"][0]
    source = result["source"] = sender["address"]
    if ipaddress.ip_address(source).version != ipaddress.ip_address(dst).version:
        raise _Drop(result["path"], f"{assertion['from']}: no address of {dst}'s family")
    peer = fleet.facts[minion]["interfaces"][ifname]["peers"][pname]
    nets = [c for c in peer["allowed_ips"] if _contains([c], source)] or [source]
    result["path"].append(minion)
    return minion, (ifname, pname), source, nets[0]


def _source(iface, dst):
    """The interface's first address of ``dst``'s family (an ``ip_interface``)."""
    version = ipaddress.ip_address(dst).version
    for address in iface["address"]:
        ip = ipaddress.ip_interface(address)
        if ip.version == version:
            return ip
    return None


def _walk(fleet, node, came_in, src, packet, path, reply):
    """Follow a packet from ``node`` (arrived on ``came_in`` = (interface, peer name),
    ``("outside", None)`` from a network behind it, or sent by it: None) to
    ``packet["dst"]``. Returns the path and where it ended: ``{"kind": "local"|"peer"|
    "outside", "node", ...}``; raises ``_Drop`` at the first hop that drops it."""
    dst = packet["dst"]
    version = ipaddress.ip_address(dst).version
    first = node
    for _ in range(MAX_HOPS):
        fact = fleet.facts[node]
        if came_in is not None and came_in[0] != "outside":
            ifname, pname = came_in
            peer = fact["interfaces"][ifname]["peers"][pname]
            if not _contains(peer["allowed_ips"], src):
                # WireGuard drops it (cryptokey routing), and could not send a reply back
                lacking = packet.get("src_net") or src
                raise _Drop(path, f"{node}: AllowedIPs of {pname} lack {lacking} (no return path)")
            if not reply:
                _access(fact, node, ifname, src, packet, path)
        if _local(fact, dst):
            return path, {"kind": "local", "node": node, "came_in": came_in}
        if came_in is not None and not fact["forwarding"].get(f"ipv{version}"):
            raise _Drop(path, f"{node}: IPv{version} forwarding off")
        route = _route(fact, dst)
        dev = route["dev"] if route else None
        pname = _best_peer(fact["interfaces"][dev], dst) if dev in fact["interfaces"] else None
        if pname is None and reply and node == first and packet.get("hint"):
            raise _Drop(
                path,
                f"{node}: AllowedIPs of {packet['hint']} lack {packet['dst_net']} (no return path)",
            )
        if route is None:
            raise _Drop(path, f"{node}: no route to {dst}" + (" (no return path)" * reply))
        if dev not in fact["interfaces"]:
            if came_in is None:
                raise _Drop(path, f"{node}: {dst} is not routed into a tunnel (via {dev})")
            path.append(route["dst"] if route["dst"] != "default" else dst)
            return path, {"kind": "outside", "node": node, "dev": dev, "in": came_in[0]}
        if pname is None:
            raise _Drop(
                path,
                f"{node}: AllowedIPs of no peer on {dev} include {dst}"
                + (" (no return path)" if reply else ""),
            )
        other = fleet.peer_minion(node, dev, pname)
        if other is None:
            path.append(pname)
            return path, {"kind": "peer", "node": node, "dev": dev, "peer": pname}
        incoming = fleet.incoming(node, dev, other[0])
        if incoming is None:
            raise _Drop([*path, other[0]], f"{other[0]}: has no peer for {node} ({dev})")
        path.append(other[0])
        node, came_in = other[0], incoming
    raise _Drop(path, f"{node}: more than {MAX_HOPS} hops (a routing loop)")


def _access(fact, node, ifname, src, packet, path):
    iface = fact["interfaces"][ifname]
    access = iface.get("access")
    if not access or iface.get("firewall") == "none":
        return
    verdict, _ = wgf_firewall.access_verdict(
        access, src, packet["dst"], packet["proto"], packet["port"]
    )
    if verdict != "accept":
        raise _Drop(path, f"{node}: access default {verdict}, no rule matches {packet['label']}")


def _return_walk(fleet, end, source, source_net, dst, path):
    """The reply's way back to ``source``; the reason text of an allowed assertion."""
    node = end["node"]
    back = {"dst": source, "proto": "reply", "port": None, "label": "", "dst_net": source_net}
    if end["kind"] == "local":
        came_in = end["came_in"]
        if came_in is None:
            return f"reached {dst} on the sending minion itself"
        back["hint"] = came_in[1] if came_in[0] != "outside" else None
        _walk(fleet, node, None, dst, back, list(path), True)
        return f"reached {dst} at {node}; replies return"
    if end["kind"] == "peer":
        _walk(fleet, node, (end["dev"], end["peer"]), dst, back, list(path), True)
        return f"reached {end['peer']} through {node}; replies return"
    masquerade = fleet.facts[node]["interfaces"][end["in"]].get("masquerade") or []
    if end["dev"] not in masquerade:
        raise _Drop(
            path,
            f"{node}: no masquerade of {end['in']} on {end['dev']}: {dst} has no return path "
            f"to {source} (masquerade missing)",
        )
    # de-NATed on the masquerading minion, the reply is the destination's again
    _walk(fleet, node, ("outside", None), dst, back, list(path), True)
    return f"reached {dst} through {node} ({end['dev']}); replies return through its masquerade"


# ------------------------------------------------------------------ the verdicts


def verdict(assertion, static, live, live_note=None):
    """One row of ``salt-run wireguard.verify``: ``{"from", "to", "proto", "port",
    "allow", "static", "live", "pass", "path", "reason"}``."""
    wanted = ALLOW if assertion["allow"] else BLOCK
    reason = static["reason"]
    if live is not None and live != static["static"]:
        passed = False
        reason = (
            f"static {static['static']}, live {live}: something outside the formula's "
            f"model (another firewall or an upstream route); static: {reason}"
        )
    else:
        passed = static["static"] == wanted
        if not passed and wanted == BLOCK:  # a block names its first failing hop already
            reason = f"reachable, but must be blocked: {reason}"
    if static["sender"] is None:
        reason += f"; static check only: {assertion['from']} is not a Salt minion"
    elif live is None and live_note:
        reason += f"; {live_note}"
    return {
        "from": assertion["from"],
        "to": assertion["to"],
        "proto": assertion["proto"],
        "port": assertion["port"],
        "allow": assertion["allow"],
        "static": static["static"],
        "live": live,
        "pass": passed,
        "path": static["path"],
        "reason": reason,
    }
