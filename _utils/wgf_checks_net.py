"""The checks of ``wireguard.check`` on the network around an interface: overlapping
AllowedIPs, endpoints that do not resolve, the MTU against the path to each endpoint,
routes into the tunnel, forwarding, and each live peer's handshake (by the one
staleness rule, ``wgf_staleness.link_state``). Each ``check_*`` takes the data
``wgf_health.check_interface`` documents and returns findings (``wgf_findings.problem``).
"""

import ipaddress

from salt.exceptions import SaltInvocationError

import wgf_addr
from wgf_findings import APPLY_FIX, peer_label, peer_names, problem
from wgf_staleness import IDLE, KEEPALIVE_BYTES, NEVER, NEW, STALE, STALE_AFTER, link_state

#: Bytes WireGuard adds to each packet, by the IP version of the underlay: the outer
#: IP header (20 or 40), UDP (8) and WireGuard's own header and tag (32).
WG_OVERHEAD = {4: 60, 6: 80}


def check_allowed_ips(data):
    names, problems = peer_names(data), []
    owner = {}
    for peer in (data["conf"] or {}).get("peers", []):
        for cidr in peer["allowed_ips"]:
            if cidr in owner and owner[cidr] != peer["public_key"]:
                problems.append(
                    problem(
                        "error",
                        "allowed_ips",
                        f"{cidr} is in the AllowedIPs of {peer_label(owner[cidr], names)} and "
                        f"of {peer_label(peer['public_key'], names)} in {data['config_path']}: "
                        "WireGuard routes a prefix to one peer only, the last one",
                        "Keep the prefix in one peer's allowed_ips only.",
                        peer=peer["public_key"],
                    )
                )
            owner.setdefault(cidr, peer["public_key"])
    if data["live"] is not None:
        prefixes = [
            (ipaddress.ip_network(c, strict=False), k)
            for k, p in data["live"]["peers"].items()
            for c in p["allowed_ips"]
        ]
    else:
        prefixes = [(ipaddress.ip_network(cidr), key) for cidr, key in owner.items()]
    for outer, outer_key, inner, inner_key in nested_prefixes(prefixes):
        problems.append(
            problem(
                "info",
                "allowed_ips",
                f"{inner} of {peer_label(inner_key, names)} lies inside {outer} of "
                f"{peer_label(outer_key, names)}: traffic to {inner} goes to the first, the "
                "rest of the range to the second",
                "Nothing to do if this is meant; otherwise remove the narrower prefix.",
                peer=inner_key,
            )
        )
    return problems


def nested_prefixes(prefixes):
    """(outer, owner, inner, owner) for each prefix inside another owner's prefix.

    A sweep over the sorted prefixes with a stack of the enclosing ones: n log n, so a
    hub with thousands of peers is checked quickly.
    """
    found = []
    for version in (4, 6):
        items = sorted(
            ((n, k) for n, k in prefixes if n.version == version),
            key=lambda item: (int(item[0].network_address), item[0].prefixlen),
        )
        stack = []
        for net, key in items:
            while stack and not net.subnet_of(stack[-1][0]):
                stack.pop()
            outer = next(((o, k) for o, k in reversed(stack) if k != key), None)
            if outer is not None and outer[0] != net:
                found.append((outer[0], outer[1], net, key))
            stack.append((net, key))
    return found


def check_endpoints(data):
    names, problems = peer_names(data), []
    peers = [(p["public_key"], p["endpoint"]) for p in (data["conf"] or {}).get("peers", [])]
    if data["conf"] is None and data["pillar"]:
        peers = [(p["public_key"], p["endpoint"]) for p in data["pillar"]["peers"].values()]
    for key, endpoint in peers:
        result = data["resolved"].get(endpoint) if endpoint else None
        if result and result["error"]:
            problems.append(
                problem(
                    "error",
                    "endpoint",
                    f"The endpoint {endpoint} of {peer_label(key, names)} does not resolve",
                    "Fix the DNS record (or the /etc/hosts entry) of the name, or give the "
                    "endpoint as an address.",
                    peer=key,
                )
            )
    return problems


def check_mtu(data):
    live, link, name = data["live"], data["link"], data["name"]
    if live is None or link is None or not link.get("mtu"):
        return []
    names, problems, worst = peer_names(data), [], None
    for key, peer in live["peers"].items():
        address = wgf_addr.endpoint_ip(peer["endpoint"])[0]
        route = data["underlay"].get(str(address)) if address else None
        if not route or route["error"]:
            continue
        if route["dev"] == name:
            problems.append(
                problem(
                    "error",
                    "mtu",
                    f"The endpoint {peer['endpoint']} of {peer_label(key, names)} is routed into "
                    f"{name} itself, so its packets loop",
                    "Route the endpoint outside the tunnel (a more specific route via the "
                    "underlay, or wg-quick's table auto with a fwmark).",
                    peer=key,
                )
            )
            continue
        path_mtu = min(m for m in (route["mtu"], route["dev_mtu"], 65535) if m)
        limit = path_mtu - WG_OVERHEAD[address.version]
        if link["mtu"] > limit and (worst is None or limit < worst[0]):
            worst = (limit, path_mtu, key, peer["endpoint"], route["dev"], address.version)
    if worst:
        limit, path_mtu, key, endpoint, dev, version = worst
        problems.append(
            problem(
                "warning",
                "mtu",
                f"{name} has MTU {link['mtu']}, but the path to {peer_label(key, names)} at "
                f"{endpoint} (via {dev}) carries {path_mtu} bytes, and WireGuard over IPv{version} "
                f"adds {WG_OVERHEAD[version]}: tunnel packets above {limit} bytes are fragmented "
                "or dropped",
                f"Set mtu: {limit} for {name} in pillar and {APPLY_FIX.lower()}.",
                peer=key,
            )
        )
    return problems


def check_routes(data):
    live, routes, name = data["live"], data["routes"], data["name"]
    if live is None or routes is None:
        return []
    pillar, conf = data["pillar"], data["conf"]
    wanted = pillar["routes"] if pillar else (conf or {}).get("routes", [])
    problems = []
    for cidr in wanted:
        if str(ipaddress.ip_network(cidr, strict=False)) not in routes:
            problems.append(
                problem(
                    "error",
                    "routes",
                    f"The route {cidr} through {name} is missing",
                    f"{APPLY_FIX} (it adds routes live), or: ip route replace {cidr} dev "
                    f"{name} proto static.",
                )
            )
    covered = {ipaddress.ip_network(r) for r in routes}
    covered |= {
        ipaddress.ip_interface(a).network for a in (data["link"] or {}).get("addresses", [])
    }
    names = peer_names(data)
    for key, peer in live["peers"].items():
        for cidr in peer["allowed_ips"]:
            net = ipaddress.ip_network(cidr, strict=False)
            if not any(
                net.supernet(new_prefix=length) in covered
                for length in range(net.prefixlen, -1, -1)
            ):
                problems.append(
                    problem(
                        "warning",
                        "routes",
                        f"Nothing routes {cidr} ({peer_label(key, names)}'s AllowedIPs) into "
                        f"{name}, so this host never sends traffic for it into the tunnel",
                        f"Add {cidr} to the routes of {name} (needed with table: off), or "
                        "drop it from AllowedIPs.",
                        peer=key,
                    )
                )
    return problems


def check_forwarding(data):
    pillar, fwd = data["pillar"], data["forwarding"] or {}
    if not pillar or pillar["absent"] or not (pillar["forwarding"] or pillar["masquerade"]):
        return []
    why = "forwarding: true" if pillar["forwarding"] else "masquerade"
    problems = []
    families = [("ipv4", "net.ipv4.ip_forward")]
    if pillar["ipv6"]:
        families.append(("ipv6", "net.ipv6.conf.all.forwarding"))
    for family, sysctl in families:
        if fwd.get(family) is False:
            problems.append(
                problem(
                    "error",
                    "forwarding",
                    f"Pillar wants {data['name']} to forward ({why}), but {sysctl} is 0",
                    f"{APPLY_FIX} (it sets and persists it), or: sysctl -w {sysctl}=1.",
                )
            )
    return problems


def check_handshakes(data, stale_after=STALE_AFTER):
    live = data["live"]
    if live is None:
        return []
    names, samples, problems = peer_names(data), data.get("samples") or {}, []
    hostnames = any(
        p["endpoint"]
        and not wgf_addr.is_address(wgf_addr.split_endpoint(p["endpoint"])[0].split("%")[0])
        for p in (data["conf"] or {}).get("peers", [])
        if _valid_endpoint(p["endpoint"])
    )
    fix = (
        "Check that the peer is up, that each side holds the other's public key, and "
        "that the endpoint and its port are right (salt-run wireguard.audit compares "
        "both sides)"
        + (
            f"; salt-call wireguard.reresolve {data['name']} re-resolves host-name endpoints."
            if hostnames
            else "."
        )
    )
    for key, peer in live["peers"].items():
        label, age = peer_label(key, names), peer["latest_handshake_age"]
        sample = samples.get(key)
        state = link_state(peer, stale_after, sample)
        if state == NEVER:
            sent = peer["tx_bytes"] + (sample["tx"] if sample else 0)
            problems.append(
                problem(
                    "error",
                    "handshake",
                    f"{label} never completed a handshake, although {sent} bytes were sent to it",
                    fix,
                    peer=key,
                )
            )
        elif state == NEW and peer["endpoint"]:
            problems.append(
                problem(
                    "info",
                    "handshake",
                    f"{label} has no handshake yet: nothing was sent to it so far",
                    "Nothing to do; ping its tunnel address to test the link.",
                    peer=key,
                )
            )
        elif state == NEW:
            problems.append(
                problem(
                    "info",
                    "handshake",
                    f"{label} has not connected yet; with no endpoint here, it must dial in",
                    "Nothing to do unless the peer should be connected by now.",
                    peer=key,
                )
            )
        elif state == STALE:
            grew = sample is not None and sample["tx"] > KEEPALIVE_BYTES
            problems.append(
                problem(
                    "error",
                    "handshake",
                    f"{label} is stale: its last handshake was {age} s ago, although traffic"
                    " is being sent to it" + ("" if grew else " (persistent keepalive)"),
                    fix,
                    peer=key,
                )
            )
        elif state == IDLE:
            problems.append(
                problem(
                    "info",
                    "handshake",
                    f"{label} is idle: last handshake {age} s ago, no traffic since",
                    "Nothing to do; traffic starts a new handshake.",
                    peer=key,
                )
            )
    return problems


def _valid_endpoint(endpoint):
    try:
        return bool(endpoint) and bool(wgf_addr.endpoint(endpoint, "endpoint"))
    except SaltInvocationError:
        return False
