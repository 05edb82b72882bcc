"""The fleet audit's cross-checks: every pair of minions whose interfaces are peers,
checked both ways (keys, AllowedIPs, endpoints, forwarding, asymmetric pairs), and
each link's state as both ends see it.

Plain data in, plain data out: ``cross_check`` takes the fleet ``wgf_fleet.fleet_from``
made of the minions' (untrusted) answers and returns the pair problems, the links and
the peers no minion owns; ``wgf_audit_report`` draws them and writes the report. A
link's handshake is judged by ``wgf_staleness.link_state`` on each end, as
``wireguard.check`` and the beacon do.
"""

import ipaddress

import wgf_addr
import wgf_findings
import wgf_keys
import wgf_staleness

SEVERITIES = wgf_findings.SEVERITIES
#: Checks that mean the pair is misconfigured; its handshake is then not judged apart.
CONFIG_CHECKS = {"key", "asymmetric", "allowed_ips", "endpoint"}


# ------------------------------------------------------------------ cross-checks


def _label(minion, ifname):
    return f"{minion} ({ifname})"


def _host_ips(addresses):
    ips = []
    for cidr in addresses:
        try:
            ips.append(ipaddress.ip_interface(cidr).ip)
        except ValueError:
            continue
    return ips


def _nets(cidrs):
    nets = []
    for cidr in cidrs or []:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    return nets


def _covers(nets, ip):
    return any(ip.version == n.version and ip in n for n in nets)


def _index(fleet):
    """public key -> [(minion, interface)], from live keys and key files."""
    index = {}
    for minion, entry in fleet.items():
        for ifname, iface in entry["interfaces"].items():
            if iface["public_key"]:
                index.setdefault(iface["public_key"], []).append((minion, ifname))
    return index


def _problem(severity, check, a, b, key, message, fix):
    return {
        "severity": severity,
        "check": check,
        "minion": a[0],
        "interface": a[1],
        "peer_minion": b[0] if b else None,
        "peer_interface": b[1] if b else None,
        "peer": key,
        "message": message,
        "fix": fix,
    }


def _intended(fleet, minion, ifname, peer):
    """Which (minion, interface) a peer entry whose key is nobody's was meant for:
    by its name, its endpoint, or a host address in its AllowedIPs."""
    others = [(m, i) for m, e in fleet.items() for i in e["interfaces"] if m != minion]
    if peer["name"] in fleet and peer["name"] != minion:
        candidates = [(m, i) for m, i in others if m == peer["name"]]
        for m, i in candidates:
            if i == ifname:
                return m, i
        if candidates:
            return candidates[0]
    endpoints = [
        wgf_addr.endpoint_ip(e) for e in (peer["endpoint_resolved"] or []) + [peer["live_endpoint"]]
    ]
    for m, i in others:
        iface = fleet[m]["interfaces"][i]
        for ip, port in endpoints:
            if ip is not None and str(ip) in fleet[m]["underlay"] and port == iface["listen_port"]:
                return m, i
    hosts = [
        n.network_address for n in _nets(peer["allowed_ips"]) if n.prefixlen == n.max_prefixlen
    ]
    for m, i in others:
        if any(ip in hosts for ip in _host_ips(fleet[m]["interfaces"][i]["addresses"])):
            return m, i
    return None


def cross_check(fleet, stale_after=wgf_staleness.STALE_AFTER):
    """Every pair problem of the fleet, the links between interfaces, and the peers
    that belong to no minion. Plain data in (see ``_fleet``), plain data out:
    ``{"problems": [...], "links": [...], "unknown_peers": [...]}``."""
    index = _index(fleet)
    problems, unknown, pairs = [], [], {}
    for key, owners in sorted(index.items()):
        if len({m for m, _ in owners}) > 1:
            (a, b) = owners[0], owners[1]
            problems.append(
                _problem(
                    "error",
                    "key",
                    a,
                    b,
                    key,
                    f"{_label(*a)} and {_label(*b)} have the same public key "
                    f"{wgf_keys.short(key)}: a copied private key",
                    f"Remove {b[1]}.key on {b[0]} and apply the formula there, so it gets a "
                    "key of its own.",
                )
            )
    # who holds whom: (a, b) -> (key held by a, peer entry)
    wrong = set()
    for minion, entry in fleet.items():
        for ifname, iface in entry["interfaces"].items():
            for key, peer in iface["peers"].items():
                a = (minion, ifname)
                owners = [o for o in index.get(key, []) if o != a]
                if owners:
                    pairs[(a, owners[0])] = (key, peer)
                    continue
                if index.get(key):
                    continue  # its own key: reported by the minion's own check
                b = _intended(fleet, minion, ifname, peer)
                if b is None:
                    unknown.append(
                        {
                            "minion": minion,
                            "interface": ifname,
                            "peer": key,
                            "name": peer["name"],
                            "client": iface.get("clients", {}).get(key),
                            "endpoint": peer["live_endpoint"] or peer["endpoint"],
                        }
                    )
                    continue
                real = fleet[b[0]]["interfaces"][b[1]]["public_key"]
                wrong.add((a, b))
                if len({m for m, _ in index.get(real, [])}) > 1:
                    continue  # b runs a copied key: reported above, this follows from it
                problems.append(
                    _problem(
                        "error",
                        "key",
                        a,
                        b,
                        key,
                        f"{_label(*a)} holds the key {wgf_keys.short(key)} for {b[0]}, but the "
                        f"public key of {_label(*b)} is {wgf_keys.short(real)}, so they cannot "
                        "handshake",
                        f"Set the public key of peer '{peer['name'] or b[0]}' of {ifname} on "
                        f"{minion} to {real} (or give the peer minion: {b[0]} instead of a key).",
                    )
                )
    memo = {}  # what every pair with the same B shares, worked out once: N^2, not N^3
    for (a, b), (key, peer) in sorted(pairs.items()):
        problems += _check_pair(fleet, pairs, wrong, a, b, key, peer, memo)
    links = _links(fleet, pairs, wrong, problems, stale_after)
    problems += _handshake_problems(fleet, links, problems, stale_after)
    problems.sort(
        key=lambda p: (
            SEVERITIES.index(p["severity"]),
            p["minion"],
            p["interface"],
            p["peer_minion"] or "",
            p["check"],
        )
    )
    return {"problems": problems, "links": links, "unknown_peers": unknown}


def _check_pair(fleet, pairs, wrong, a, b, key, peer, memo):
    """A holds B with B's real key: the other checks of that direction."""
    problems = []
    mine = fleet[a[0]]["interfaces"][a[1]]
    theirs = fleet[b[0]]["interfaces"][b[1]]
    name = peer["name"] or b[0]
    if (b, a) not in pairs and (b, a) not in wrong:
        ips = (
            ", ".join(f"{i}/{i.max_prefixlen}" for i in _host_ips(mine["addresses"]))
            or "its address"
        )
        problems.append(
            _problem(
                "error",
                "asymmetric",
                a,
                b,
                key,
                f"{_label(*a)} holds {b[0]} as a peer, but {_label(*b)} does not hold {a[0]}",
                f"Add {a[0]} to the peers of {b[1]} on {b[0]} (public key "
                f"{mine['public_key']}, allowed_ips {ips}), or remove '{name}' from {a[0]}.",
            )
        )
    allowed = _nets(peer["allowed_ips"])
    missing = [ip for ip in _host_ips(theirs["addresses"]) if not _covers(allowed, ip)]
    if missing:
        problems.append(
            _problem(
                "error",
                "allowed_ips",
                a,
                b,
                key,
                f"The AllowedIPs {a[0]} holds for {b[0]} on {a[1]} "
                f"({', '.join(peer['allowed_ips']) or 'none'}) do not cover the address "
                f"{', '.join(map(str, missing))} of {_label(*b)}, so {a[0]} drops its packets",
                f"Add {', '.join(f'{ip}/{ip.max_prefixlen}' for ip in missing)} to the "
                f"allowed_ips of peer '{name}' of {a[1]} on {a[0]}.",
            )
        )
    problems += _check_endpoint(fleet, a, b, key, peer, memo)
    problems += _check_forwarding(fleet, a, b, peer, memo)
    return problems


def _address_of(fleet, b, hints, memo):
    """The address of ``b`` others should dial: one of its own addresses that some
    peer already uses (``hints`` first, then the whole fleet), else its first."""
    underlay = fleet[b[0]]["underlay"]
    for endpoint in hints:
        ip, _ = wgf_addr.endpoint_ip(endpoint)
        if ip is not None and str(ip) in underlay:
            return str(ip)
    if ("address", b) not in memo:  # the fleet's answer is the same for every pair
        key = fleet[b[0]]["interfaces"][b[1]]["public_key"]
        seen = [
            e
            for entry in fleet.values()
            for iface in entry["interfaces"].values()
            for item in [iface["peers"].get(key)]
            if item
            for e in (item["endpoint_resolved"] or []) + [item["live_endpoint"]]
        ]
        ips = [str(ip) for ip, _ in map(wgf_addr.endpoint_ip, seen) if ip is not None]
        memo[("address", b)] = next((ip for ip in ips if ip in underlay), None) or (
            underlay[0] if underlay else f"<address of {b[0]}>"
        )
    return memo[("address", b)]


def _check_endpoint(fleet, a, b, key, peer, memo):
    theirs = fleet[b[0]]["interfaces"][b[1]]
    underlay, port = fleet[b[0]]["underlay"], theirs["listen_port"]
    name = peer["name"] or b[0]
    address = _address_of(
        fleet, b, (peer["endpoint_resolved"] or []) + [peer["live_endpoint"]], memo
    )
    where = f"{address}:{port}"
    fix = f"Set the endpoint of peer '{name}' of {a[1]} on {a[0]} to {address}:{port}."
    if peer["endpoint"]:
        if not port:
            return [
                _problem(
                    "error",
                    "endpoint",
                    a,
                    b,
                    key,
                    f"{a[0]} dials {b[0]} at {peer['endpoint']}, but {_label(*b)} has no fixed "
                    "listen port, so the endpoint is wrong after each restart of it",
                    f"Give {b[1]} on {b[0]} a listen_port, or remove the endpoint from {a[0]}.",
                )
            ]
        resolved = [wgf_addr.endpoint_ip(e) for e in peer["endpoint_resolved"] or []]
        if not resolved:
            return []  # it does not resolve: the minion's own check reports that
        if any(str(ip) in underlay and p == port for ip, p in resolved):
            return []
        if any(str(ip) in underlay for ip, _ in resolved):
            return [
                _problem(
                    "error",
                    "endpoint",
                    a,
                    b,
                    key,
                    f"{a[0]} dials {b[0]} at {peer['endpoint']}, but {_label(*b)} listens on "
                    f"port {port}",
                    fix,
                )
            ]
        if any(p == port for _, p in resolved):
            return [
                _problem(
                    "info",
                    "endpoint",
                    a,
                    b,
                    key,
                    f"{a[0]} dials {b[0]} at {peer['endpoint']}, which is not an address of "
                    f"{b[0]} ({where}): fine when it is a NAT router that forwards to it",
                    "Nothing to do if a NAT router forwards the port; otherwise "
                    + fix[0].lower()
                    + fix[1:],
                )
            ]
        return [
            _problem(
                "warning",
                "endpoint",
                a,
                b,
                key,
                f"{a[0]} dials {b[0]} at {peer['endpoint']}, but {b[0]} listens at {where}: "
                "neither the address nor the port is its own",
                "Unless a NAT router forwards that port to it: " + fix[0].lower() + fix[1:],
            )
        ]
    ip, live_port = wgf_addr.endpoint_ip(peer["live_endpoint"])
    if ip is not None and str(ip) in underlay and port and live_port != port:
        return [
            _problem(
                "error",
                "endpoint",
                a,
                b,
                key,
                f"{a[0]} sends to {b[0]} at {peer['live_endpoint']}, but {_label(*b)} listens "
                f"on port {port}",
                fix,
            )
        ]
    return []


def _interface_nets(fleet, b, memo):
    """Parsed once per interface: its own addresses, tunnel networks, peers' prefixes."""
    if ("nets", b) not in memo:
        theirs = fleet[b[0]]["interfaces"][b[1]]
        memo[("nets", b)] = {
            "own": {str(ip) for ip in _host_ips(theirs["addresses"])}
            | set(fleet[b[0]]["underlay"]),
            "tunnel": [
                ipaddress.ip_interface(c).network
                for c in theirs["addresses"]
                if _valid_interface(c)
            ],
            "peers": [(n, k) for k, p in theirs["peers"].items() for n in _nets(p["allowed_ips"])],
        }
    return memo[("nets", b)]


def _overlapping_owners(fleet, b, net, memo):
    """The keys of the peers of ``b`` with a prefix overlapping ``net``."""
    if ("overlap", b, net) not in memo:
        memo[("overlap", b, net)] = {
            k
            for n, k in _interface_nets(fleet, b, memo)["peers"]
            if n.version == net.version and n.overlaps(net)
        }
    return memo[("overlap", b, net)]


def _check_forwarding(fleet, a, b, peer, memo):
    """A holds B; if A's AllowedIPs for B reach beyond B itself (a network behind B,
    or other peers of B), B forwards that traffic: it must have forwarding on."""
    theirs = fleet[b[0]]["interfaces"][b[1]]
    a_key = fleet[a[0]]["interfaces"][a[1]]["public_key"]
    nets = _interface_nets(fleet, b, memo)
    own, tunnel = nets["own"], nets["tunnel"]
    needed = {}
    for net in _nets(peer["allowed_ips"]):
        if net.prefixlen == net.max_prefixlen and str(net.network_address) in own:
            continue
        inside = any(net.version == t.version and net.subnet_of(t) for t in tunnel)
        via_others = bool(_overlapping_owners(fleet, b, net, memo) - {a_key})
        if not inside or via_others:
            needed.setdefault(net.version, []).append(str(net))
    problems = []
    for version, nets in sorted(needed.items()):
        family = "ipv4" if version == 4 else "ipv6"
        sysctl = "net.ipv4.ip_forward" if version == 4 else "net.ipv6.conf.all.forwarding"
        if theirs["forwarding"].get(family) is False:
            problems.append(
                _problem(
                    "warning",
                    "forwarding",
                    b,
                    a,
                    a_key,
                    f"{a[0]} sends {', '.join(nets)} to {_label(*b)}, which does not forward "
                    f"({sysctl} is 0), so that traffic ends at {b[0]}",
                    f"Set forwarding: true for {b[1]} on {b[0]}, or narrow the allowed_ips of "
                    f"peer '{peer['name'] or b[0]}' on {a[0]} to {b[0]}'s own address.",
                )
            )
    return problems


def _valid_interface(cidr):
    try:
        ipaddress.ip_interface(cidr)
        return True
    except ValueError:
        return False


def _links(fleet, pairs, wrong, problems, stale_after):
    """One link per pair of interfaces that know each other (or one of them the other)."""
    bad = {}
    for p in problems:
        if p["peer_minion"] and p["check"] in CONFIG_CHECKS:
            ends = frozenset(
                {(p["minion"], p["interface"]), (p["peer_minion"], p["peer_interface"])}
            )
            bad.setdefault(ends, set()).add(p["check"])
    links = {}
    for a, b in list(pairs) + sorted(wrong):
        ends = frozenset({a, b})
        if ends in links or a == b:
            continue
        first, second = sorted(ends)
        view = {
            end: _view(fleet, pairs, end, other)
            for end, other in ((first, second), (second, first))
        }
        ages = [v["age"] for v in view.values() if v and v["age"] is not None]
        judged = [_end_state(v, stale_after) for v in view.values() if v]
        if ends in bad:
            state = "one-way" if bad[ends] == {"asymmetric"} else "broken"
        elif not all(fleet[m]["interfaces"][i]["live"] for m, i in ends):
            state = "down"
        elif not ages:
            state = "never"
        elif len(ages) == 1:
            state = "one-sided"
        elif all(s == wgf_staleness.UP for s in judged):
            state = "up"
        elif any(s in (wgf_staleness.STALE, wgf_staleness.NEVER) for s in judged):
            state = "stale"
        else:
            state = "up" if wgf_staleness.UP in judged else "idle"
        links[ends] = {
            "a": first[0],
            "a_interface": first[1],
            "b": second[0],
            "b_interface": second[1],
            "state": state,
            "age": min(ages) if ages else None,
            "problems": sorted(bad.get(ends, ())),
            "_view": view,
        }
    return [links[k] for k in sorted(links, key=lambda e: sorted(e))]


def _end_state(view, stale_after):
    """How one end judges the link: its own ``wireguard.check`` verdict, or the same
    rule on what it showed (a minion that sent no verdict)."""
    if view["state"]:
        return view["state"]
    return wgf_staleness.link_state(
        {
            "latest_handshake_age": view["age"],
            "persistent_keepalive": view["keepalive"],
            "tx_bytes": view["tx"],
        },
        stale_after,
    )


def _view(fleet, pairs, end, other):
    """How ``end`` sees ``other``: its handshake age, bytes sent, keepalive, endpoint."""
    found = pairs.get((end, other))
    if not found:
        return None
    _, peer = found
    return {
        "age": peer["latest_handshake_age"],
        "tx": peer["tx_bytes"],
        "keepalive": peer["persistent_keepalive"],
        "endpoint": peer["endpoint"],
        "live_endpoint": peer["live_endpoint"],
        "state": peer.get("state"),
    }


def _handshake_problems(fleet, links, problems, stale_after):
    """The handshake of each well-configured pair, as both ends see it."""
    found = []
    for link in links:
        a, b = (link["a"], link["a_interface"]), (link["b"], link["b_interface"])
        view = link.pop("_view")
        va, vb = view.get(a), view.get(b)
        if link["problems"] or link["state"] == "down" or not va or not vb:
            continue
        key = fleet[b[0]]["interfaces"][b[1]]["public_key"]
        check = (
            "Check that both are up and that nothing between them drops UDP to their listen ports."
        )
        if (
            not va["endpoint"]
            and not vb["endpoint"]
            and not va["live_endpoint"]
            and not vb["live_endpoint"]
        ):
            found.append(
                _problem(
                    "error",
                    "handshake",
                    a,
                    b,
                    key,
                    f"Neither {_label(*a)} nor {_label(*b)} has an endpoint for the other, so "
                    "neither can start a handshake",
                    f"Give one side an endpoint: the address and listen port of {b[0]} in the "
                    f"peers of {a[0]}, or the other way round.",
                )
            )
        elif link["state"] == "never" and (va["tx"] or vb["tx"]):
            found.append(
                _problem(
                    "error",
                    "handshake",
                    a,
                    b,
                    key,
                    f"{_label(*a)} and {_label(*b)} never completed a handshake, although "
                    "traffic was sent",
                    check,
                )
            )
        elif link["state"] == "one-sided":
            seen, blind = (a, b) if va["age"] is not None else (b, a)
            service = fleet[blind[0]]["interfaces"][blind[1]]["service"]
            found.append(
                _problem(
                    "warning",
                    "handshake",
                    seen,
                    blind,
                    key,
                    f"{_label(*seen)} had a handshake with {blind[0]}, but {_label(*blind)} "
                    f"has none with {seen[0]}: it restarted since, or runs another key",
                    f"Send traffic from {blind[0]} to {seen[0]} and audit again; if it stays, "
                    f"restart its interface on {blind[0]} "
                    f"({wgf_findings.service_command('restart', service)}).",
                )
            )
        elif link["state"] == "stale":
            found.append(
                _problem(
                    "error",
                    "handshake",
                    a,
                    b,
                    key,
                    f"{_label(*a)} and {_label(*b)} have had no handshake for {link['age']} s "
                    "although traffic is being sent",
                    check,
                )
            )
    return found
