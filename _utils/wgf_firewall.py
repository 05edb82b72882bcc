"""The formula's firewall: ``open_port``, ``access`` and ``masquerade`` of each interface,
checked, and rendered as one nftables table (``table inet wireguard``) or as the
iptables-restore input of the formula's own chains (``WIREGUARD-*``).

A peer name in ``from`` stands for its AllowedIPs: cryptokey routing drops anything
else arriving on the interface from that peer.

The chains (the same in both backends):

- input (``chain input`` / ``WIREGUARD-INPUT``, hook input): ``open_port`` for the
  listen port, then ``access`` for traffic from the tunnel to the minion itself;
- forward (``chain forward`` / ``WIREGUARD-FORWARD``, hook forward): ``access`` for
  traffic from the tunnel routed on (anywhere), and the accepts ``masquerade`` needs;
- postrouting (``chain postrouting`` / ``WIREGUARD-POSTROUTING``, nat): ``masquerade``;
- output (``chain output`` / ``WIREGUARD-OUTPUT``, hook output), only while a client's
  ``limits`` set a quota: what the minion itself sends to a client.

Clients' rates are not here: tc shapes them on the interface (``wgf_tc``). Quotas
(``wgf_quota``) come first in each chain.

``access`` is checked on every packet of the direction that opened a connection (a rule
change takes effect at once); replies and related ICMP errors pass.
"""

import ipaddress

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_quota
from wgf_addr import shown

BACKENDS = ("nftables", "iptables", "none")
TABLE = "wireguard"
PROTOCOLS = ("tcp", "udp", "icmp", "any")
ACCESS_DEFAULTS = ("drop", "accept")
ACCESS_KEYS = ("default", "rules")
RULE_KEYS = ("from", "to", "proto", "ports")
ICMP = {4: "icmp", 6: "ipv6-icmp"}
NFT_FAMILY = {4: "ip", 6: "ip6"}


# ------------------------------------------------------------------ checking


def backend(value, has_nft):
    """The firewall backend ``wireguard:lookup:firewall`` asks for; ``auto`` (or
    nothing) is nftables where ``nft`` exists, else iptables."""
    if value in (None, "", "auto"):
        return "nftables" if has_nft else "iptables"
    if value not in BACKENDS:
        raise SaltInvocationError(
            f"wireguard:lookup, key 'firewall': {shown(value)} is not one of auto, "
            f"{', '.join(BACKENDS)}"
        )
    return value


def open_port(value, where):
    """``true`` (from anywhere), ``false`` (leave input alone) or a list of CIDRs."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    cidrs = [wgf_addr.network(item, where) for item in wgf_addr.as_list(value)]
    if not cidrs:
        raise SaltInvocationError(
            f"{where}: true, false or a list of CIDRs; an empty list would drop every handshake"
        )
    return sorted(dict.fromkeys(cidrs), key=wgf_addr.cidr_sort_key)


def access(value, where):
    """``{"default": drop|accept, "rules": [...]}`` with each rule's syntax checked;
    ``from`` names are resolved later (``check``), when the peers are known."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SaltInvocationError(
            f"{where}: a mapping with 'default' and 'rules', got {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in value if k not in ACCESS_KEYS)
    if unknown:
        raise SaltInvocationError(
            f"{where}: unknown key {shown(unknown[0])}; known keys: {', '.join(ACCESS_KEYS)}"
        )
    default = value.get("default", "drop")
    if default not in ACCESS_DEFAULTS:
        raise SaltInvocationError(f"{where}, default: {shown(default)} is not drop or accept")
    rules = value.get("rules") or []
    if not isinstance(rules, list):
        raise SaltInvocationError(f"{where}, rules: a list of rules, got {type(rules).__name__}")
    return {
        "default": default,
        "rules": [_rule(rule, f"{where}, rule {number}") for number, rule in enumerate(rules, 1)],
    }


def _rule(rule, where):
    if not isinstance(rule, dict):
        raise SaltInvocationError(f"{where}: a rule is a mapping, got {type(rule).__name__}")
    unknown = sorted(str(k) for k in rule if k not in RULE_KEYS)
    if unknown:
        raise SaltInvocationError(
            f"{where}: unknown key {shown(unknown[0])}; known keys: {', '.join(RULE_KEYS)}"
        )
    sources = [wgf_addr.text(item, f"{where}, from") for item in wgf_addr.as_list(rule.get("from"))]
    if not sources:
        raise SaltInvocationError(f"{where}, from: name the peers (or CIDRs) the rule is for")
    targets = [wgf_addr.network(item, f"{where}, to") for item in wgf_addr.as_list(rule.get("to"))]
    proto = rule.get("proto", "any")
    if proto not in PROTOCOLS:
        raise SaltInvocationError(
            f"{where}, proto: {shown(proto)} is not one of {', '.join(PROTOCOLS)}"
        )
    ports = [_port(item, f"{where}, ports") for item in wgf_addr.as_list(rule.get("ports"))]
    if ports and proto not in ("tcp", "udp"):
        raise SaltInvocationError(f"{where}, ports: ports need proto tcp or udp, not {proto}")
    return {"from": sources, "to": targets, "proto": proto, "ports": ports}


def _port(value, where):
    """A port (``22``) or a range (``"8000-8100"``), as text."""
    if isinstance(value, str) and "-" in value:
        low, _, high = value.partition("-")
        low = wgf_addr.integer(low.strip(), where, 1, 65535, "a port")
        high = wgf_addr.integer(high.strip(), where, 1, 65535, "a port")
        if low >= high:
            raise SaltInvocationError(f"{where}: {shown(value)} is not a range low-high")
        return f"{low}-{high}"
    return str(wgf_addr.integer(value, where, 1, 65535, "a port"))


def check(iface, firewall, errors, names=None):
    """Resolve ``from`` names (``names``: peer or client name -> its CIDRs; by default
    the peers' AllowedIPs; a client group's name stands for its clients' CIDRs) and
    check what needs the peers or the backend; problems go to ``errors``. Sets
    ``iface["firewall"]``."""
    iface["firewall"] = firewall
    where = f"interface {shown(iface['name'])}"
    if firewall == "none":
        for key in ("open_port", "access"):
            if iface[key]:
                errors.append(
                    f"{where}, key '{key}': needs the formula's firewall "
                    "(wireguard:lookup:firewall nftables or iptables), not none"
                )
        _limits_need_a_firewall(iface, where, errors)
        return
    if iface["open_port"] and iface["listen_port"] is None:
        errors.append(f"{where}, key 'open_port': needs a listen_port to open")
    if not iface["access"]:
        return
    # an absent peer's name stands for no address: its AllowedIPs route to nobody
    peers = (
        names
        if names is not None
        else {
            name: [] if peer["absent"] else peer["allowed_ips"]
            for name, peer in iface["peers"].items()
        }
    )
    groups = {name: group["clients"] for name, group in iface.get("client_groups", {}).items()}
    for number, rule in enumerate(iface["access"]["rules"], 1):
        rule_where = f"{where}, key 'access', rule {number}"
        sources = []
        for item in rule["from"]:
            if item in peers:
                sources += peers[item]
                continue
            if item in groups:
                sources += [c for member in groups[item] for c in peers.get(member, [])]
                continue
            try:
                sources.append(wgf_addr.network(item, f"{rule_where}, from"))
            except SaltInvocationError:
                errors.append(
                    f"{rule_where}, from: {shown(item)} names no peer or client "
                    "(nor client group) of this interface and is no CIDR"
                )
        rule["sources"] = sorted(dict.fromkeys(sources), key=wgf_addr.cidr_sort_key)
        if sources and not rule_families(rule):
            errors.append(
                f"{rule_where}: from and to share no address family, so the rule could never match"
            )


def _limits_need_a_firewall(iface, where, errors):
    """``limits`` are enforced in the formula's firewall: refused without one, named
    where pillar sets them (a group, or the client itself)."""
    need = "needs the formula's firewall (wireguard:lookup:firewall nftables or iptables), not none"
    for name, group in iface.get("client_groups", {}).items():
        if group.get("limits"):
            errors.append(f"{where}, client group {shown(name)}, key 'limits': {need}")
    grouped = {
        n for g in iface.get("client_groups", {}).values() if g.get("limits") for n in g["clients"]
    }
    for name, client in iface.get("clients", {}).items():
        if client["limits"] and not client["absent"] and name not in grouped:
            errors.append(f"{where}, client {shown(name)}, key 'limits': {need}")


def needs_table(iface):
    """Whether the interface needs the formula's firewall (and it has one)."""
    return (
        iface["firewall"] != "none"
        and iface["enabled"]
        and not iface["absent"]
        and bool(
            iface["masquerade"]
            or iface["open_port"]
            or iface["access"]
            or wgf_quota.needs_table(iface)
        )
    )


# ----------------------------------------------------------------- rendering


def by_version(cidrs):
    out = {4: [], 6: []}
    for cidr in cidrs:
        out[ipaddress.ip_network(cidr).version].append(cidr)
    return out


def rule_families(rule):
    """``{version: (sources, targets)}`` for each address family the rule can match;
    no ``to`` means anywhere."""
    sources, targets = by_version(rule["sources"]), by_version(rule["to"])
    return {
        version: (sources[version], targets[version])
        for version in (4, 6)
        if sources[version] and (targets[version] or not rule["to"])
    }


def access_verdict(access, source, target, proto, port=None):
    """What the formula's ``access`` (its rules' ``sources`` resolved by ``check``)
    does with the first packet of a connection from ``source`` to ``target`` (``proto``
    tcp, udp or icmp; ``port`` for tcp/udp): ``("accept", rule number)`` of the first
    rule that matches, else ``(default, None)``. The same match as the rendered rules:
    ``rule_families`` per address family, then the protocol and the ports."""
    source, target = ipaddress.ip_address(source), ipaddress.ip_address(target)
    for number, rule in enumerate(access["rules"], 1):
        family = rule_families(rule).get(source.version)
        if family is None or target.version != source.version:
            continue
        sources, targets = family
        if not any(source in ipaddress.ip_network(c) for c in sources):
            continue
        if targets and not any(target in ipaddress.ip_network(c) for c in targets):
            continue
        if rule["proto"] not in ("any", proto):
            continue
        if rule["ports"] and not (
            port is not None and any(_in_range(p, port) for p in rule["ports"])
        ):
            continue
        return "accept", number
    return access["default"], None


def _in_range(ports, port):
    """Whether ``port`` is the port (``"22"``) or inside the range (``"8000-8100"``)."""
    low, _, high = ports.partition("-")
    return int(low) <= int(port) <= int(high or low)


def tunnel_networks(iface):
    """The tunnel's networks per IP version: its addresses' and its peers' AllowedIPs."""
    nets = [ipaddress.ip_interface(a).network for a in iface["address"]]
    nets += [
        ipaddress.ip_network(c)
        for p in iface["peers"].values()
        if not p["absent"]
        for c in p["allowed_ips"]
    ]
    return {
        version: [
            str(n) for n in ipaddress.collapse_addresses(n for n in nets if n.version == version)
        ]
        for version in (4, 6)
    }


def _nft_set(items):
    return "{ " + ", ".join(items) + " }"


def _nft_access(iface):
    name, rules = iface["name"], []
    head = f'iifname "{name}"'
    rules.append(f"{head} ct direction reply accept")
    rules.append(f"{head} ct state related accept")
    for number, rule in enumerate(iface["access"]["rules"], 1):
        for version, (sources, targets) in rule_families(rule).items():
            family = NFT_FAMILY[version]
            match = f"{head} {family} saddr {_nft_set(sources)}"
            if targets:
                match += f" {family} daddr {_nft_set(targets)}"
            if rule["proto"] == "icmp":
                match += f" meta l4proto {ICMP[version]}"
            elif rule["ports"]:
                match += f" {rule['proto']} dport {_nft_set(rule['ports'])}"
            elif rule["proto"] != "any":
                match += f" meta l4proto {rule['proto']}"
            rules.append(f'{match} accept comment "{name} rule {number}"')
    default = iface["access"]["default"]
    rules.append(f'{head} {default} comment "{name} default {default}"')
    return rules


def _nft_open_port(iface):
    port, allowed, name = iface["listen_port"], iface["open_port"], iface["name"]
    comment = f'comment "{name} open_port"'
    if allowed is True:
        return [f"udp dport {port} accept {comment}"]
    allowed = by_version(allowed)
    rules = [
        f"udp dport {port} {NFT_FAMILY[v]} saddr {_nft_set(allowed[v])} accept {comment}"
        for v in (4, 6)
        if allowed[v]
    ]
    return [*rules, f"udp dport {port} drop {comment}"]


def nft_table(interfaces, used=None):
    """The whole ``table inet wireguard`` for the interfaces that need it, or None;
    ``used``: ``{quota object: bytes}`` to start the clients' quotas from."""
    chains = {"input": [], "forward": [], "output": [], "postrouting": []}
    objects = []
    for iface in sorted(interfaces, key=lambda i: i["name"]):
        if not needs_table(iface):
            continue
        name = iface["name"]
        # quotas first: no accept below lets a packet over its quota past
        objects += wgf_quota.nft_objects(iface, used)
        for chain, rules in wgf_quota.nft_rules(iface).items():
            chains[chain] += rules
        if iface["open_port"]:
            chains["input"] += _nft_open_port(iface)
        if iface["access"]:
            chains["input"] += _nft_access(iface)
            chains["forward"] += _nft_access(iface)
        if iface["masquerade"]:
            if not iface["access"]:
                chains["forward"].append(f'iifname "{name}" accept comment "{name} masquerade"')
            chains["forward"].append(
                f'oifname "{name}" ct state established,related accept comment "{name} masquerade"'
            )
            nets = tunnel_networks(iface)
            chains["postrouting"] += [
                f'oifname "{out}" {NFT_FAMILY[v]} saddr {_nft_set(nets[v])} masquerade '
                f'comment "{name} masquerade"'
                for out in iface["masquerade"]
                for v in (4, 6)
                if nets[v]
            ]
    if not any(chains.values()):
        return None
    hooks = {
        "input": "type filter hook input priority filter; policy accept;",
        "forward": "type filter hook forward priority filter; policy accept;",
        "output": "type filter hook output priority filter; policy accept;",
        "postrouting": "type nat hook postrouting priority srcnat; policy accept;",
    }
    lines = [f"table inet {TABLE} {{", *[f"\t{line}" for line in objects]]
    for chain, rules in chains.items():
        if chain == "output" and not rules:  # only client quotas use it
            continue
        lines += [f"\tchain {chain} {{", f"\t\t{hooks[chain]}"]
        lines += [f"\t\t{rule}" for rule in rules]
        lines.append("\t}")
    return "\n".join([*lines, "}"]) + "\n"


def nft_replace(table_text):
    """``nft -f`` input that replaces the formula's table in one transaction (or
    removes it when ``table_text`` is None): creating it first makes the delete safe."""
    head = f"table inet {TABLE}\ndelete table inet {TABLE}\n"
    return head + (table_text or "")
