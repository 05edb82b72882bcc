"""Peers by name (issue 22): the ``hosts`` option of an interface or a network, and the
block it keeps in the hosts file (``wgf_layout.HOSTS_FILE``, ``/etc/hosts``).

One block per interface, between ``# BEGIN wireguard-formula <if>`` and ``# END
wireguard-formula <if>``, with ``<address> <name>.<domain>`` for the minion itself
(its first interface address) and for each node, peer and client of the interface
(their first tunnel address). The text around the block is never changed: these
functions cut the file into lines at ``\\n`` only and put every other line back as it
was. Plain Python: the state (``_states/wireguard_hosts.py``) reads and writes the file
through the host adapter.
"""

import ipaddress
import re

from salt.exceptions import CommandExecutionError, SaltInvocationError

from wgf_addr import shown

#: The keys of ``hosts``.
KEYS = ("domain",)
#: One DNS label: letters, digits and hyphens, 1-63, no hyphen first or last.
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
#: A name as long as DNS allows (RFC 1035: 253 characters written without the root dot).
MOST_CHARACTERS = 253
MARK = "wireguard-formula"


def begin(interface):
    return f"# BEGIN {MARK} {interface}"


def end(interface):
    return f"# END {MARK} {interface}"


# ------------------------------------------------------------------ the option


def domain_problem(value):
    """Why ``value`` is not a DNS name (labels of letters, digits and hyphens, 1-63
    characters each, not starting or ending with a hyphen, 253 at most), or None."""
    if not isinstance(value, str) or not value:
        return "a DNS name (a string such as wg.example)"
    if len(value) > MOST_CHARACTERS:
        return f"a DNS name is at most {MOST_CHARACTERS} characters"
    for label in value.split("."):
        if not LABEL.fullmatch(label):
            return (
                "each label of a DNS name is 1-63 letters, digits and hyphens, "
                "not starting or ending with a hyphen"
            )
    return None


def check(value, where):
    """The ``hosts`` option (``where`` names the interface or network and the key):
    None (off), or ``{"domain": <lower-cased DNS name>}``; raise otherwise."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SaltInvocationError(
            f"{where}: expected a mapping such as {{domain: wg.example}}, "
            f"got {type(value).__name__}"
        )
    unknown = [key for key in value if key not in KEYS]
    if unknown:
        raise SaltInvocationError(
            f"{where}: unknown key {shown(unknown[0])}; the only key is 'domain'"
        )
    if "domain" not in value:
        raise SaltInvocationError(f"{where}: key 'domain' is missing")
    problem = domain_problem(value["domain"])
    if problem:
        raise SaltInvocationError(
            f"{where}: domain {shown(value['domain'])} is not a DNS name: {problem}"
        )
    return {"domain": value["domain"].lower()}


def name_label(kind, name, where):
    """``name`` (of a peer, client, node or the minion) lower-cased, or raise naming
    it when it is not one DNS label."""
    if not isinstance(name, str) or not LABEL.fullmatch(name):
        raise SaltInvocationError(
            f"{where}: {kind} {shown(name)} is not a DNS label (1-63 letters, digits and "
            "hyphens, not starting or ending with a hyphen), so it cannot be named in "
            "the hosts file: rename it, or leave 'hosts' out"
        )
    return name.lower()


def host_address(cidrs):
    """The first host address (a /32 or /128) of ``cidrs``, as the audit picks a peer's
    tunnel address out of its AllowedIPs (``wgf_audit``), or None."""
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.prefixlen == net.max_prefixlen:
            return str(net.network_address)
    return None


def _ip(address):
    return str(ipaddress.ip_interface(address).ip)


def entries(iface, own_name, nodes, errors):
    """``[[address, name], ...]``: the names the ``hosts`` option of one normalised
    interface gives (the minion first, then the others by name), problems appended to
    ``errors`` naming the interface, the key and the name. A peer, node or client with
    the minion's own name keeps it: the minion's line is left out, with a warning in
    ``iface["warnings"]``.

    own_name
        The minion id: named for the interface's first address.
    nodes
        ``{node: address/prefix}`` of the interface's network (the others), or None
        for an interface of ``wireguard:interfaces``; a network's peers are its nodes.
    """
    where = f"interface {shown(iface['name'])}, key 'hosts'"
    found = {}  # lower-cased name -> (kind, name, address)
    candidates = []
    if nodes is not None:
        candidates += [("node", node, _ip(address)) for node, address in sorted(nodes.items())]
    else:
        for name, peer in sorted(iface["peers"].items()):
            address = host_address(peer["allowed_ips"])
            if not peer["absent"] and address:
                candidates.append(("peer", name, address))
    for name, client in sorted(iface["clients"].items()):
        if not client["absent"] and client["address"]:
            candidates.append(("client", name, _ip(client["address"][0])))
    for kind, name, address in candidates:
        try:
            label = name_label(kind, name, where)
        except SaltInvocationError as exc:
            errors.append(str(exc))
            continue
        if label in found:
            other_kind, other, _ = found[label]
            errors.append(
                f"{where}: {kind} {shown(name)} and {other_kind} {shown(other)} would be "
                "the same name in the hosts file"
            )
            continue
        found[label] = (kind, name, address)
    names = [[address, label] for label, (_, _, address) in found.items()]
    if not iface["address"]:
        return names
    try:
        own = name_label("the minion id", own_name, where)
    except SaltInvocationError as exc:
        errors.append(str(exc))
        return names
    if own in found:
        kind, name, _ = found[own]
        iface["warnings"].append(
            f"{where}: {kind} {shown(name)} has the name of this minion; the hosts file "
            f"names it, not this minion's own address"
        )
        return names
    return [[_ip(iface["address"][0]), own], *names]


def block(domain, names):
    """The lines of an interface's block between its markers."""
    return [f"{address} {name}.{domain}" for address, name in names]


def render(interface, domain, names):
    """The whole block of an interface as it stands in the file, markers included."""
    lines = [begin(interface), *block(domain, names), end(interface)]
    return "".join(f"{line}\n" for line in lines)


# ------------------------------------------------------------------ the file


def _lines(text):
    """``text`` cut after each ``\\n`` (the last line may have none): joined again
    they are ``text`` byte for byte."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text or "")


def _blocks(lines, interface, path):
    """``[(first, last)]`` line indexes of each block of ``interface`` (markers
    included); an unclosed block is refused, naming the file and the line."""
    spans, start = [], None
    for index, line in enumerate(lines):
        bare = line.rstrip()
        if bare == begin(interface) and start is None:
            start = index
        elif bare == end(interface) and start is not None:
            spans.append((start, index))
            start = None
    if start is not None:
        raise CommandExecutionError(
            f"{path}, line {start + 1}: {begin(interface)!r} has no {end(interface)!r} "
            "after it; put the end line back (or remove the block) by hand"
        )
    return spans


def current(text, interface, path="the hosts file"):
    """The lines of the interface's block now in ``text``, or None when it has none."""
    lines = _lines(text)
    spans = _blocks(lines, interface, path)
    if not spans:
        return None
    first, last = spans[0]
    return [line.rstrip("\r\n") for line in lines[first + 1 : last]]


def splice(text, interface, wanted, path="the hosts file"):
    """``text`` with the interface's block holding the lines ``wanted`` (None: without
    the block). The block keeps its place (a second copy of it goes); a new one is added
    at the end. Every other line stays as it was."""
    text = text or ""
    lines = _lines(text)
    spans = _blocks(lines, interface, path)
    new = None
    if wanted is not None:
        new = [begin(interface) + "\n", *(line + "\n" for line in wanted), end(interface) + "\n"]
    if not spans:
        if new is None:
            return text
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return "".join(lines + new)
    out, at = [], 0
    for number, (first, last) in enumerate(spans):
        out += lines[at:first]
        if number == 0 and new is not None:
            out += new
        at = last + 1
    return "".join(out + lines[at:])


def remove(text, interface, path="the hosts file"):
    """``text`` without the interface's block."""
    return splice(text, interface, None, path)
