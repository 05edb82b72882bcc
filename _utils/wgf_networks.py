"""Mine-driven networks: the interface a ``wireguard:networks`` entry gives one node.

``interfaces_for`` compiles the networks a minion is a node of into interfaces as
pillar would write them (peers named by ``minion``, preshared keys checked from
``wireguard:network_psks``); ``resolve_minion_peers`` fills in those peers' public keys
from the mine's answer, which is untrusted. Above the schema (``wgf_schema``), below
the pipeline (``wgf_pipeline``), which runs both and resolves.
"""

import ipaddress

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_hosts
import wgf_keys
import wgf_schema
from wgf_addr import shown

NETWORK_KEYS = {
    "interface": None,
    "listen_port": 51820,
    "topology": "mesh",
    "hubs": [],
    "nodes": {},
    "mtu": None,
    "purge_peers": True,
    "preshared_keys": False,
    "max_key_age": None,
    "hosts": None,
    "backend": None,
}
NODE_KEYS = {"address": None, "endpoint": None, "allowed_ips": [], "persistent_keepalive": None}
TOPOLOGIES = ("mesh", "hub")
#: Where the pillar holds the preshared keys of networks (the ext_pillar's answer).
PSK_PILLAR = wgf_schema.PSK_PILLAR
#: Keepalive a roaming node (no endpoint) sends toward the nodes it dials.
ROAMING_KEEPALIVE = 25


def _node(node_id, node, where):
    """One node's settings, checked; raise naming the node and the key."""
    where = f"{where}, node {shown(node_id)}"
    if not isinstance(node, dict):
        raise SaltInvocationError(
            f"{where}: a node is a mapping of keys, got {type(node).__name__}"
        )
    errors = wgf_schema.unknown_keys(node, NODE_KEYS, where)
    if errors:
        raise SaltInvocationError("; ".join(errors))
    if node.get("address") is None:
        raise SaltInvocationError(f"{where}: key 'address' is missing")
    endpoint = node.get("endpoint")
    if endpoint is not None and (
        isinstance(endpoint, bool) or not isinstance(endpoint, (str, int))
    ):
        raise SaltInvocationError(
            f"{where}, key 'endpoint': a host or host:port, got {type(endpoint).__name__}"
        )
    keepalive = node.get("persistent_keepalive")
    if keepalive is not None and keepalive != "off":
        keepalive = wgf_addr.integer(
            keepalive, f"{where}, key 'persistent_keepalive'", 0, 65535, "persistent_keepalive"
        )
    return {
        "address": wgf_addr.interface_address(node["address"], f"{where}, key 'address'"),
        "endpoint": str(endpoint) if endpoint not in (None, "") else None,
        "allowed_ips": [
            wgf_addr.network(c, f"{where}, key 'allowed_ips'")
            for c in wgf_addr.as_list(node.get("allowed_ips"))
        ],
        "persistent_keepalive": keepalive,
    }


def checked_network(netname, net):
    """The checked settings of one network, or raise naming the network and key."""
    where = f"network {shown(netname)}"
    interface = net.get("interface")
    if interface is None:
        raise SaltInvocationError(f"{where}: key 'interface' is missing")
    wgf_addr.check_interface_name(interface, f"{where}, key 'interface':")
    topology = net.get("topology", NETWORK_KEYS["topology"])
    if topology not in TOPOLOGIES:
        raise SaltInvocationError(f"{where}, key 'topology': {shown(topology)} is not mesh or hub")
    raw_nodes = net.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise SaltInvocationError(f"{where}, key 'nodes': a mapping of minion id to node")
    nodes = {str(node_id): _node(node_id, node, where) for node_id, node in raw_nodes.items()}
    hubs = net.get("hubs")
    hubs = [hubs] if isinstance(hubs, str) else hubs if hubs is not None else []
    if not isinstance(hubs, list) or not all(isinstance(h, str) for h in hubs):
        raise SaltInvocationError(f"{where}, key 'hubs': a list of minion ids")
    for hub in hubs:
        if hub not in nodes:
            raise SaltInvocationError(f"{where}, key 'hubs': {shown(hub)} is not a node")
    if topology == "hub" and not hubs:
        raise SaltInvocationError(f"{where}: topology hub needs at least one hub in 'hubs'")
    port = wgf_addr.port(
        net.get("listen_port", NETWORK_KEYS["listen_port"]), f"{where}, key 'listen_port'"
    )
    psks = wgf_schema.boolean(net.get("preshared_keys", False), f"{where}, key 'preshared_keys'")
    if psks:  # each pair's key is read by its pillar path, which ':' splits
        for part, value in [("", str(netname)), *((f", node {shown(n)}", n) for n in nodes)]:
            if ":" in value:
                raise SaltInvocationError(
                    f"{where}{part}, key 'preshared_keys': a network or node name with ':' "
                    f"cannot have preshared keys ({PSK_PILLAR}:<network>:<node> is a pillar "
                    "path, which ':' splits)"
                )
    hosts = wgf_hosts.check(net.get("hosts"), f"{where}, key 'hosts'")
    for node_id, node in nodes.items():
        if node["endpoint"] is not None:
            node["endpoint"] = wgf_addr.endpoint_with_port(
                node["endpoint"], port, f"{where}, node {shown(node_id)}, key 'endpoint'"
            )
    return {
        "interface": interface,
        "topology": topology,
        "hubs": hubs,
        "nodes": nodes,
        "listen_port": port,
        "preshared_keys": psks,
        "hosts": hosts,
    }


def node_peers(settings, minion):
    nodes, hubs, topology = settings["nodes"], settings["hubs"], settings["topology"]
    me = nodes[minion]
    is_hub = topology == "hub" and minion in hubs
    if topology == "mesh" or is_hub:
        partners = [n for n in nodes if n != minion]
    else:
        partners = [h for h in hubs if h != minion]
    peers = {}
    for node_id in partners:
        node = nodes[node_id]
        allowed = [_host_network(node["address"])]
        if topology == "mesh" or is_hub:
            allowed += node["allowed_ips"]
        elif node_id == hubs[0]:
            # A spoke reaches the whole network, and every other node's networks,
            # through its first hub; other hubs only at their own address.
            allowed = [str(ipaddress.ip_interface(node["address"]).network)]
            allowed += [
                c for n, other in nodes.items() if n != minion for c in other["allowed_ips"]
            ]
        peer = {
            "minion": node_id,
            "minion_interface": settings["interface"],
            "allowed_ips": allowed,
        }
        if node["endpoint"]:
            peer["endpoint"] = node["endpoint"]
            keepalive = me["persistent_keepalive"]
            if keepalive is None and not me["endpoint"]:
                keepalive = ROAMING_KEEPALIVE
            if keepalive is not None:
                peer["persistent_keepalive"] = keepalive
        peers[node_id] = peer
    return peers, is_hub


def _host_network(cidr):
    return str(ipaddress.ip_network(ipaddress.ip_interface(cidr).ip))


def interfaces_for(networks, minion, errors, psks=None, psk_paths=None, hosts_nodes=None):
    """The interfaces (as pillar would write them) that ``networks`` give ``minion``.

    psks
        ``wireguard:network_psks``, ``{network: {partner: key}}`` (the ext_pillar's):
        the peers of a network with ``preshared_keys: true`` take their keys from it.
    psk_paths
        A dict filled with ``{(interface, peer): pillar path of its preshared key}``.
    hosts_nodes
        A dict filled with ``{interface: {node: address}}`` (every other node of the
        network) for the networks with ``hosts``: the names ``wgf_hosts`` writes.
    """
    built = {}
    if networks is None:
        return built
    if not isinstance(networks, dict):
        errors.append("wireguard:networks must be a mapping of network name to network")
        return built
    for netname, net in networks.items():
        where = f"network {shown(netname)}"
        if not isinstance(net, dict):
            errors.append(f"{where}: a network is a mapping of keys, got {type(net).__name__}")
            continue
        unknown = wgf_schema.unknown_keys(net, NETWORK_KEYS, where)
        if unknown:
            errors += unknown
            continue
        nodes = net.get("nodes")
        if isinstance(nodes, dict) and minion not in {str(n) for n in nodes}:
            continue
        try:
            settings = checked_network(netname, net)
        except SaltInvocationError as exc:
            errors.append(str(exc))
            continue
        peers, is_hub = node_peers(settings, minion)
        if settings["preshared_keys"]:
            _add_psks(str(netname), settings["interface"], peers, psks, errors, psk_paths)
        me = settings["nodes"][minion]
        iface = {
            "address": me["address"],
            "listen_port": settings["listen_port"],
            "peers": peers,
            "forwarding": is_hub or bool(me["allowed_ips"]),
            "purge_peers": net.get("purge_peers", True),
        }
        if net.get("mtu") is not None:
            iface["mtu"] = net["mtu"]
        if net.get("max_key_age") is not None:
            iface["max_key_age"] = net["max_key_age"]
        if net.get("backend") is not None:  # checked with the interface's by the schema
            iface["backend"] = net["backend"]
        if settings["hosts"] is not None:
            iface["hosts"] = settings["hosts"]
            if hosts_nodes is not None:
                hosts_nodes[settings["interface"]] = {
                    node: other["address"]
                    for node, other in settings["nodes"].items()
                    if node != minion
                }
        if settings["interface"] in built:
            errors.append(
                f"{where}: interface {shown(settings['interface'])} is used by another network too"
            )
        built[settings["interface"]] = iface
    return built


def _add_psks(netname, interface, peers, psks, errors, psk_paths):
    """Give each peer its pair's key from ``wireguard:network_psks``, checked."""
    found = len(errors)
    check_network_psks(netname, sorted(peers), psks, errors)
    if len(errors) > found:
        return
    for partner, peer in peers.items():
        peer["preshared_key"] = psks[netname][partner]
        if psk_paths is not None:
            psk_paths[(interface, partner)] = f"{PSK_PILLAR}:{netname}:{partner}"


def member_networks(networks, minion):
    """``(network name, checked settings)`` of each network ``minion`` is a node of.
    Networks that do not validate are left out: the minion's own validation names
    their problems."""
    if not isinstance(networks, dict):
        return
    for netname, net in networks.items():
        if not isinstance(net, dict) or not isinstance(net.get("nodes"), dict):
            continue
        if minion not in {str(n) for n in net["nodes"]}:
            continue
        try:
            yield str(netname), checked_network(netname, net)
        except SaltInvocationError:
            continue


def resolve_minion_peers(iface, published):
    """Fill in the public keys of peers named by ``minion`` from the mine.

    ``published`` is the mine's answer, ``{minion: {interface: key}}``. Mine data
    is untrusted: a value that is not exactly a 32-byte base64 key is refused, naming
    the minion. A peer without a usable key is left out of this run with a warning; the
    rest of the interface converges, and the next run completes it.
    """
    pending = {
        name: peer
        for name, peer in iface["peers"].items()
        if peer["minion"] and not peer["public_key"] and not peer["absent"]
    }
    for name, peer in pending.items():
        keys = published.get(peer["minion"])
        wanted = peer["minion_interface"] or iface["name"]
        if isinstance(keys, dict) and wanted not in keys and len(keys) == 1:
            wanted = next(iter(keys))
        key = keys.get(wanted) if isinstance(keys, dict) else None
        where = f"interface {shown(iface['name'])}, peer {shown(name)}"
        if key is None:
            iface["warnings"].append(
                f"{where}: minion {shown(peer['minion'])} has not published the public key "
                f"of {shown(wanted)} in the mine yet; the peer is added by a later run"
            )
        else:
            try:
                wgf_keys.decode(key, "it")
                peer["public_key"] = key
                continue
            except SaltInvocationError as exc:
                iface["warnings"].append(
                    f"{where}: refused the mine value minion {shown(peer['minion'])} "
                    f"published for {shown(wanted)} ({exc}); the peer is left out until it "
                    "is a valid key"
                )
        del iface["peers"][name]


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
                "(ext_pillar: [{wireguard: {}}]) and run salt-run saltutil.sync_all, then "
                "make the pair's key: salt-run wireguard.ensure_psks (the orchestration "
                "runs it)"
            )
            continue
        try:
            wgf_keys.decode(value, f"{where}, node {shown(partner)}: the preshared key")
        except SaltInvocationError as exc:
            errors.append(str(exc))


def declared(pillars, only=None):
    """``({network: definition}, {network: [minions whose pillar has it]})`` of the
    networks ``pillars`` ({minion: pillar}) define (only those in ``only``, when given);
    a network two pillars define differently is refused."""
    networks, holders = {}, {}
    for minion, pillar in pillars.items():
        wireguard = pillar.get("wireguard")
        defined = wireguard.get("networks") if isinstance(wireguard, dict) else None
        for netname, net in (defined if isinstance(defined, dict) else {}).items():
            if only is not None and netname not in only:
                continue
            if not isinstance(netname, str) or not isinstance(net, dict):
                raise SaltInvocationError(
                    f"minion {shown(minion)}: wireguard:networks holds "
                    f"{shown(netname)}, which is not a network"
                )
            if networks.setdefault(netname, net) != net:
                raise SaltInvocationError(
                    f"the master's pillar defines network {shown(netname)} "
                    f"differently for {', '.join(sorted(holders[netname]))} and "
                    f"{shown(minion)}: fix the pillar and run again"
                )
            holders.setdefault(netname, []).append(minion)
    return networks, holders
