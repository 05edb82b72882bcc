"""Health of WireGuard interfaces: when a link is stale, and every check of
``wireguard.check`` as a plain function of plain data.

``link_state`` is the one staleness rule: ``wireguard.check``, the fleet audit and
the beacon all judge a peer with it and with these constants. Each ``_check_*``
function takes the data ``check_interface`` documents and returns problems
``{"severity", "check", "peer", "message", "fix"}``; nothing here runs a command.
"""

import difflib
import ipaddress

from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_dump
import wgf_keys

#: Seconds without a handshake, while traffic is sent, after which a peer is stale.
#: WireGuard renews a session every 120 s while it carries traffic and drops its keys
#: after 180 s, so a working link never goes past this.
STALE_AFTER = 180
#: Size of a WireGuard keepalive as the transfer counters count it (header and tag):
#: one keepalive is not traffic.
KEEPALIVE_BYTES = 32
#: Seconds ``wireguard.check`` watches the counters of peers without a recent handshake.
SAMPLE = 2
#: What ``link_state`` says of a peer.
UP, IDLE, STALE, NEVER, NEW = "up", "idle", "stale", "never", "new"
#: Bytes WireGuard adds to each packet, by the IP version of the underlay: the outer
#: IP header (20 or 40), UDP (8) and WireGuard's own header and tag (32).
WG_OVERHEAD = {4: 60, 6: 80}
#: At most this many distinct endpoint addresses get an ``ip route get`` for the MTU
#: check, so a hub with thousands of peers is checked in bounded time.
MTU_PROBES = 64
#: Per interface, at most this many info lines go into the readable summary.
SUMMARY_INFOS = 10
SEVERITIES = ("error", "warning", "info")
APPLY_FIX = "Run salt-call state.apply wireguard on this minion"


def link_state(peer, stale_after=STALE_AFTER, sample=None):
    """The state of the link to one peer (a peer of ``wgf_dump.parse``).

    ``sample`` is None, or ``{"tx": bytes, "rx": bytes}`` that the peer's counters grew
    by over a while (a later look, or since the beacon's previous one).

    - ``up``: a handshake within ``stale_after`` seconds, or the peer answers (its
      received counter grows: a peer found at a new address keeps its session);
    - ``stale``: the last handshake is older while traffic is being sent: the sent
      counter grew by more than one keepalive, or a persistent keepalive is set;
    - ``idle``: the last handshake is older and nothing is being sent;
    - ``never``: no handshake at all although traffic was sent;
    - ``new``: no handshake and nothing sent yet.

    A persistent keepalive counts as sending for a peer that never had a handshake
    only over a sample: a peer just added has its first handshake on the way.
    """
    age = peer["latest_handshake_age"]
    if age is not None and age <= stale_after:
        return UP
    if sample is not None and sample["rx"] > 0:
        return UP
    grew = sample is not None and sample["tx"] > KEEPALIVE_BYTES
    keepalive = bool(peer["persistent_keepalive"]) and (age is not None or sample is not None)
    sending = grew or keepalive
    if age is None:
        return NEVER if sending or (sample is None and peer["tx_bytes"]) else NEW
    return STALE if sending else IDLE


def sample(before, after):
    """How much a peer's counters grew from one look (``before``) to a later one."""

    def grown(counter):
        earlier = before.get(counter)
        return after[counter] - earlier if isinstance(earlier, int) else 0

    return {"tx": grown("tx_bytes"), "rx": grown("rx_bytes")}


def worth_sampling(live, stale_after=STALE_AFTER):
    """Whether a live interface has a peer whose handshake is missing or old."""
    return live is not None and any(
        p["latest_handshake_age"] is None or p["latest_handshake_age"] > stale_after
        for p in live["peers"].values()
    )


def link_states(shown, now, stale_after=STALE_AFTER, since=None):
    """``wireguard.link_states``: every live peer of ``shown`` (``wgf_dump.parse``)
    judged, with the counters' growth since ``since`` (an earlier result, when it is
    at most ``max(stale_after, 60)`` seconds old) as the sample."""
    earlier = {}
    if (
        isinstance(since, dict)
        and isinstance(since.get("at"), (int, float))
        and 0 <= now - since["at"] <= max(stale_after, 60)
    ):
        earlier = since.get("interfaces") or {}
    result = {"at": now, "stale_after": stale_after, "interfaces": {}}
    for name, iface in shown.items():
        states = result["interfaces"][name] = {}
        before_peers = earlier.get(name) if isinstance(earlier.get(name), dict) else {}
        for key, peer in iface["peers"].items():
            before = before_peers.get(key)
            growth = sample(before, peer) if isinstance(before, dict) else None
            states[key] = {
                "state": link_state(peer, stale_after, growth),
                "latest_handshake": peer["latest_handshake"],
                "age": peer["latest_handshake_age"],
                "endpoint": peer["endpoint"],
                "tx_bytes": peer["tx_bytes"],
                "rx_bytes": peer["rx_bytes"],
            }
    return result


def endpoints(conf, pillar_iface):
    """The endpoints to resolve for the checks: the config file's, else pillar's."""
    if conf is None and pillar_iface:
        return [
            p["endpoint"]
            for p in pillar_iface["peers"].values()
            if p["endpoint"] and not p["absent"]
        ]
    return [p["endpoint"] for p in (conf or {}).get("peers", []) if p["endpoint"]]


def reresolve_skip(name, key, endpoint, live):
    """Why ``wireguard.reresolve`` leaves a peer's endpoint alone, or None."""
    if key not in live["peers"]:
        return f"it is not on the live {name}"
    if not endpoint:
        return "it has no endpoint in the config file"
    try:
        host, _ = wgf_addr.split_endpoint(wgf_addr.endpoint(endpoint, "endpoint"))
    except SaltInvocationError as exc:
        return str(exc)
    if wgf_addr.is_address(host):
        return f"its endpoint {endpoint} is an address, not a name"
    return None


def problem(severity, check, message, fix, peer=None):
    """One finding: ``peer`` is the peer's public key, or None for the interface."""
    return {"severity": severity, "check": check, "peer": peer, "message": message, "fix": fix}


def _peer_label(key, names):
    name = (names or {}).get(key)
    return f"peer '{name}' ({wgf_keys.short(key)})" if name else f"peer {wgf_keys.short(key)}"


def service_command(action, service, init=None):
    """The command that starts, stops or restarts an interface's service."""
    if init == "openrc" or (init is None and "@" not in service):
        return f"rc-service {service} {action}"
    return f"systemctl {action} {service}"


def _service(data, action):
    return service_command(action, data["service"], data.get("init"))


def check_interface(data, stale_after=STALE_AFTER):
    """Every problem of one interface, from plain data.

    ``data`` holds: ``name``; ``config_path``; ``conf`` (``wgf_conf.parse`` output or
    None) and ``conf_error``; ``modes`` (``conf``/``key``/``dir`` -> ``{"path",
    "mode", "uid"}`` or None); ``key_file_public``; ``pillar`` (one interface of
    ``wgf_pipeline``, or None); ``rendered`` and ``conf_masked`` (config texts
    with keys masked); ``live`` (one interface of ``wgf_dump.parse``, or None when it is down);
    ``samples`` (``{public key: {"tx", "rx"}}``, how much the counters grew while
    watched, or None); ``service`` (the interface's service name) and ``init`` (the
    init system); ``link`` (``{"mtu", "addresses"}``); ``routes`` (CIDRs routed through
    it); ``underlay`` (endpoint address -> ``{"dev", "mtu", "dev_mtu", "error"}``);
    ``resolved`` (endpoint -> ``{"addresses", "error"}``); ``forwarding`` (``{"ipv4", "ipv6"}``).
    """
    problems = _check_presence(data)
    for check in (
        _check_permissions,
        _check_pillar_drift,
        _check_drift,
        _check_allowed_ips,
        _check_endpoints,
        _check_mtu,
        _check_routes,
        _check_forwarding,
    ):
        problems += check(data)
    problems += _check_handshakes(data, stale_after)
    problems += _check_key_age(data)
    return problems


def key_age_days(data):
    """Days since the private key file was last written (None without one)."""
    info = (data.get("modes") or {}).get("key")
    if not info or info.get("mtime") is None or data.get("now") is None:
        return None
    return round(max(0.0, data["now"] - info["mtime"]) / 86400, 1)


def _check_key_age(data):
    pillar, age = data["pillar"], key_age_days(data)
    limit = (pillar or {}).get("max_key_age")
    if not limit or age is None or age <= limit:
        return []
    return [
        problem(
            "warning",
            "key_age",
            f"The private key of {data['name']} ({data['modes']['key']['path']}) is {age:g} "
            f"days old, older than max_key_age ({limit} days)",
            "Give the interface a new private key and its peers the new public key.",
        )
    ]


def _peer_names(data):
    names = {}
    if data.get("pillar"):
        names.update(
            {p["public_key"]: n for n, p in data["pillar"]["peers"].items() if p["public_key"]}
        )
    for peer in (data.get("conf") or {}).get("peers", []):
        if peer["public_key"] and peer["name"]:
            names[peer["public_key"]] = peer["name"]
    return names


def _check_presence(data):
    name, path = data["name"], data["config_path"]
    pillar, conf, live = data["pillar"], data["conf"], data["live"]
    problems = []
    if data["conf_error"]:
        problems.append(
            problem(
                "error",
                "config",
                data["conf_error"],
                f"Make {path} a readable file (mode 0600, owner root).",
            )
        )
    for error in (conf or {}).get("errors", []):
        problems.append(
            problem(
                "error", "config", f"{path}, {error}", f"{APPLY_FIX}, or correct the line by hand."
            )
        )
    if pillar and pillar["absent"]:
        if live is not None or conf is not None:
            problems.append(
                problem(
                    "warning",
                    "presence",
                    f"Pillar says {name} is absent, but it is still "
                    + ("up" if live is not None else f"configured in {path}"),
                    f"{APPLY_FIX} to remove it.",
                )
            )
        return problems
    if pillar and not pillar["enabled"] and live is not None:
        problems.append(
            problem(
                "warning",
                "presence",
                f"Pillar says {name} is disabled, but it is up",
                f"{APPLY_FIX}, or {_service(data, 'stop')}.",
            )
        )
    if conf is None and not data["conf_error"]:
        if live is not None:
            problems.append(
                problem(
                    "warning",
                    "presence",
                    f"{name} is up but {path} does not exist, so it does not come back after "
                    "a restart or reboot",
                    f"Declare {name} in pillar and {APPLY_FIX.lower()}, or remove it "
                    f"with ip link del {name}.",
                )
            )
        elif pillar:
            problems.append(
                problem(
                    "error",
                    "presence",
                    f"Pillar declares {name}, but it has no {path} and is not up",
                    f"{APPLY_FIX}.",
                )
            )
    elif conf is not None and live is None and (pillar is None or pillar["enabled"]):
        problems.append(
            problem(
                "error",
                "presence",
                f"{name} is down although {path} exists",
                f"Start it: {_service(data, 'start')} (its log says why it stopped).",
            )
        )
    return problems


def _check_permissions(data):
    problems = []
    for what in ("conf", "key"):
        info = data["modes"].get(what)
        if not info:
            continue
        path, mode = info["path"], info["mode"]
        holds = "the interface's private key"
        if mode & 0o044:
            who = "everyone" if mode & 0o004 else "its group"
            problems.append(
                problem(
                    "error",
                    "permissions",
                    f"{path} (mode {mode:04o}) is readable by {who}, and it holds {holds}",
                    f"chmod 600 {path}, then replace the key if others may have read it.",
                )
            )
        elif mode & 0o022:
            problems.append(
                problem(
                    "error",
                    "permissions",
                    f"{path} (mode {mode:04o}) is writable by others: they could change "
                    + ("the commands wg-quick runs as root" if what == "conf" else holds),
                    f"chmod 600 {path}.",
                )
            )
        elif mode & 0o077:
            problems.append(
                problem(
                    "warning",
                    "permissions",
                    f"{path} has mode {mode:04o}, not 0600",
                    f"chmod 600 {path}.",
                )
            )
        if info["uid"] != 0:
            problems.append(
                problem(
                    "warning",
                    "permissions",
                    f"{path} is owned by uid {info['uid']}, not root",
                    f"chown root:root {path}.",
                )
            )
    info = data["modes"].get("dir")
    if info and info["mode"] & 0o002:
        problems.append(
            problem(
                "error",
                "permissions",
                f"{info['path']} (mode {info['mode']:04o}) is writable by everyone",
                f"chmod 700 {info['path']}.",
            )
        )
    elif info and info["mode"] & 0o077:
        problems.append(
            problem(
                "warning",
                "permissions",
                f"{info['path']} has mode {info['mode']:04o}: others can look into it",
                f"chmod 700 {info['path']}.",
            )
        )
    return problems


def _check_pillar_drift(data):
    if data["rendered"] is None or data["conf_masked"] is None:
        return []
    if data["rendered"] == data["conf_masked"]:
        return []
    diff = [
        line
        for line in difflib.unified_diff(
            data["conf_masked"].splitlines(), data["rendered"].splitlines(), lineterm="", n=0
        )
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return [
        problem(
            "warning",
            "pillar",
            f"{data['config_path']} differs from what pillar renders "
            f"({len(diff)} line(s): {'; '.join(diff[:4])}{'; ...' if len(diff) > 4 else ''})",
            f"{APPLY_FIX}.",
        )
    ]


def _check_drift(data):
    conf, live, link, name = data["conf"], data["live"], data["link"], data["name"]
    if conf is None or live is None:
        return []
    path, names = data["config_path"], _peer_names(data)
    restart = f"Restart the interface: {_service(data, 'restart')}."
    sync = (
        f"{APPLY_FIX} (or wg syncconf {name} <(wg-quick strip {name})): "
        "peers change live, without a restart."
    )
    problems = []
    if conf["public_key"] and live["public_key"] and conf["public_key"] != live["public_key"]:
        problems.append(
            problem(
                "error",
                "drift",
                f"{name} runs the key of public key {wgf_keys.short(live['public_key'])}, but "
                f"{path} holds the key of {wgf_keys.short(conf['public_key'])}",
                restart,
            )
        )
    key_public = data.get("key_file_public")
    if key_public and conf["public_key"] and key_public != conf["public_key"]:
        problems.append(
            problem(
                "warning",
                "drift",
                f"The key file of {name} and {path} hold different private keys",
                f"{APPLY_FIX}: it writes the conf from the key file (or pillar's key).",
            )
        )
    if conf["listen_port"] and conf["listen_port"] != live["listen_port"]:
        problems.append(
            problem(
                "error",
                "drift",
                f"{name} listens on port {live['listen_port']}, {path} says {conf['listen_port']}",
                restart,
            )
        )
    if conf["fwmark"] and conf["fwmark"] != live["fwmark"]:
        problems.append(
            problem(
                "warning",
                "drift",
                f"{name} has fwmark {live['fwmark']}, {path} says {conf['fwmark']}",
                restart,
            )
        )
    if link is not None:
        if conf["mtu"] and conf["mtu"] != link["mtu"]:
            problems.append(
                problem(
                    "warning",
                    "drift",
                    f"{name} has MTU {link['mtu']}, {path} says {conf['mtu']}",
                    restart,
                )
            )
        for address in conf["address"]:
            if address not in link["addresses"]:
                problems.append(
                    problem(
                        "error", "drift", f"Address {address} of {path} is not on {name}", restart
                    )
                )
        for address in link["addresses"]:
            if conf["address"] and address not in conf["address"]:
                problems.append(
                    problem(
                        "warning",
                        "drift",
                        f"{name} has address {address}, which {path} does not list",
                        restart,
                    )
                )
    wanted = {p["public_key"]: p for p in conf["peers"] if p["public_key"]}
    for key in wanted.keys() - live["peers"].keys():
        problems.append(
            problem(
                "error",
                "drift",
                f"{_peer_label(key, names)} is in {path} but not on the live {name}",
                sync,
                peer=key,
            )
        )
    for key in live["peers"].keys() - wanted.keys():
        problems.append(
            problem(
                "warning",
                "drift",
                f"{_peer_label(key, names)} is on the live {name} but not in {path}: it is "
                "gone after the next restart",
                f"Declare it in pillar and {APPLY_FIX.lower()}, or remove it with "
                f"wg set {name} peer {key} remove.",
                peer=key,
            )
        )
    for key in sorted(wanted.keys() & live["peers"].keys()):
        problems += _peer_drift(data, key, wanted[key], live["peers"][key], names, sync)
    return problems


def _peer_drift(data, key, want, have, names, sync):
    label, path = _peer_label(key, names), data["config_path"]
    problems = []
    if sorted(want["allowed_ips"], key=wgf_addr.cidr_sort_key) != sorted(
        (str(ipaddress.ip_network(c, strict=False)) for c in have["allowed_ips"]),
        key=wgf_addr.cidr_sort_key,
    ):
        problems.append(
            problem(
                "error",
                "drift",
                f"{label} has AllowedIPs {', '.join(have['allowed_ips']) or '(none)'} live, "
                f"{path} says {', '.join(want['allowed_ips']) or '(none)'}",
                sync,
                peer=key,
            )
        )
    if (want["persistent_keepalive"] or None) != have["persistent_keepalive"]:
        problems.append(
            problem(
                "warning",
                "drift",
                f"{label} has PersistentKeepalive {have['persistent_keepalive'] or 'off'} live, "
                f"{path} says {want['persistent_keepalive'] or 'off'}",
                sync,
                peer=key,
            )
        )
    if want["has_preshared_key"] != have["preshared_key"]:
        problems.append(
            problem(
                "error",
                "drift",
                f"{label} has {'a' if have['preshared_key'] else 'no'} preshared key live, "
                f"{path} has {'one' if want['has_preshared_key'] else 'none'}",
                sync,
                peer=key,
            )
        )
    if want["endpoint"]:
        resolved = data["resolved"].get(want["endpoint"]) or {}
        if have["endpoint"] is None:
            problems.append(
                problem(
                    "warning",
                    "drift",
                    f"{label} has no live endpoint, {path} says {want['endpoint']}",
                    sync,
                    peer=key,
                )
            )
        elif resolved.get("addresses") and have["endpoint"] not in resolved["addresses"]:
            problems.append(
                problem(
                    "info",
                    "drift",
                    f"{label} is reached at {have['endpoint']}, not at {want['endpoint']} "
                    f"({', '.join(resolved['addresses'])}): it roamed, or its name now "
                    "resolves elsewhere",
                    f"If the peer moved, salt-call wireguard.reresolve {data['name']} sets the "
                    "endpoint from its name again.",
                    peer=key,
                )
            )
    return problems


def _check_allowed_ips(data):
    names, problems = _peer_names(data), []
    owner = {}
    for peer in (data["conf"] or {}).get("peers", []):
        for cidr in peer["allowed_ips"]:
            if cidr in owner and owner[cidr] != peer["public_key"]:
                problems.append(
                    problem(
                        "error",
                        "allowed_ips",
                        f"{cidr} is in the AllowedIPs of {_peer_label(owner[cidr], names)} and "
                        f"of {_peer_label(peer['public_key'], names)} in {data['config_path']}: "
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
                f"{inner} of {_peer_label(inner_key, names)} lies inside {outer} of "
                f"{_peer_label(outer_key, names)}: traffic to {inner} goes to the first, the "
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


def _check_endpoints(data):
    names, problems = _peer_names(data), []
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
                    f"The endpoint {endpoint} of {_peer_label(key, names)} does not resolve",
                    "Fix the DNS record (or the /etc/hosts entry) of the name, or give the "
                    "endpoint as an address.",
                    peer=key,
                )
            )
    return problems


def _check_mtu(data):
    live, link, name = data["live"], data["link"], data["name"]
    if live is None or link is None or not link.get("mtu"):
        return []
    names, problems, worst = _peer_names(data), [], None
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
                    f"The endpoint {peer['endpoint']} of {_peer_label(key, names)} is routed into "
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
                f"{name} has MTU {link['mtu']}, but the path to {_peer_label(key, names)} at "
                f"{endpoint} (via {dev}) carries {path_mtu} bytes, and WireGuard over IPv{version} "
                f"adds {WG_OVERHEAD[version]}: tunnel packets above {limit} bytes are fragmented "
                "or dropped",
                f"Set mtu: {limit} for {name} in pillar and {APPLY_FIX.lower()}.",
                peer=key,
            )
        )
    return problems


def _check_routes(data):
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
    names = _peer_names(data)
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
                        f"Nothing routes {cidr} ({_peer_label(key, names)}'s AllowedIPs) into "
                        f"{name}, so this host never sends traffic for it into the tunnel",
                        f"Add {cidr} to the routes of {name} (needed with table: off), or "
                        "drop it from AllowedIPs.",
                        peer=key,
                    )
                )
    return problems


def _check_forwarding(data):
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


def _check_handshakes(data, stale_after=STALE_AFTER):
    live = data["live"]
    if live is None:
        return []
    names, samples, problems = _peer_names(data), data.get("samples") or {}, []
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
        label, age = _peer_label(key, names), peer["latest_handshake_age"]
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


def report(gathered, problems, stale_after=STALE_AFTER):
    """``wireguard.check``'s result: per interface its problems, ``ok`` and facts."""
    result = {"interfaces": {}, "problems": problems}
    for name, data in gathered.items():
        found = check_interface(data, stale_after)
        result["interfaces"][name] = {
            "problems": found,
            "ok": not any(p["severity"] in ("error", "warning") for p in found),
            "facts": facts(data, stale_after),
        }
    result["ok"] = all(i["ok"] for i in result["interfaces"].values()) and not any(
        p["severity"] in ("error", "warning") for p in problems
    )
    result["summary"] = summary(result)
    return result


def summary(result):
    counts = {s: 0 for s in SEVERITIES}
    lines = []
    for problem in result["problems"]:
        counts[problem["severity"]] += 1
        lines.append(f"  [{problem['severity']}] {problem['message']}. Fix: {problem['fix']}")
    for name, iface in result["interfaces"].items():
        mine = {s: [p for p in iface["problems"] if p["severity"] == s] for s in SEVERITIES}
        for severity in SEVERITIES:
            counts[severity] += len(mine[severity])
        state = "up" if iface["facts"]["live"] else "down"
        if not mine["error"] and not mine["warning"]:
            lines.append(
                f"{name} ({state}): ok" + (f", {len(mine['info'])} note(s)" if mine["info"] else "")
            )
        else:
            lines.append(
                f"{name} ({state}): {len(mine['error'])} error(s), "
                f"{len(mine['warning'])} warning(s)"
            )
        shown = mine["error"] + mine["warning"] + mine["info"][:SUMMARY_INFOS]
        for problem in shown:
            lines.append(
                f"  [{problem['severity']}] {problem['check']}: "
                f"{problem['message']}. Fix: {problem['fix']}"
            )
        if len(mine["info"]) > SUMMARY_INFOS:
            lines.append(f"  ... and {len(mine['info']) - SUMMARY_INFOS} more note(s)")
    head = (
        "wireguard check: " + ("OK" if result["ok"] else "PROBLEMS") + f" ({counts['error']}"
        f" error(s), {counts['warning']} warning(s), {counts['info']} note(s) on "
        f"{len(result['interfaces'])} interface(s))"
    )
    return "\n".join([head, *lines])


def facts(data, stale_after=STALE_AFTER):
    """What ``check`` tells about an interface besides its problems (for the audit):
    ``link_states`` judges every live peer with ``link_state``."""
    conf, live, link = data["conf"] or {}, data["live"], data["link"] or {}
    samples = data.get("samples") or {}
    peers = {}
    for peer in conf.get("peers", []):
        if not peer["public_key"]:
            continue
        resolved = data["resolved"].get(peer["endpoint"]) if peer["endpoint"] else None
        peers[peer["public_key"]] = {
            "name": peer["name"],
            "endpoint": peer["endpoint"],
            "endpoint_resolved": resolved["addresses"] if resolved else None,
            "allowed_ips": peer["allowed_ips"],
            "persistent_keepalive": peer["persistent_keepalive"],
        }
    public = (live or {}).get("public_key") or conf.get("public_key")
    if not public and data["key_file_public"] != "invalid":
        public = data["key_file_public"]
    return {
        "live": live is not None,
        "config_file": data["config_path"] if data["conf"] is not None else None,
        "public_key": public,
        "listen_port": live["listen_port"] if live else conf.get("listen_port"),
        "addresses": link.get("addresses") if live else conf.get("address", []),
        "mtu": link.get("mtu") if live else conf.get("mtu"),
        "forwarding": data["forwarding"],
        "service": data["service"],
        "key_age_days": key_age_days(data),
        "peers": peers,
        "clients": {
            p["public_key"]: n
            for n, p in (data["pillar"] or {}).get("peers", {}).items()
            if p.get("client")
        },
        "link_states": {
            key: link_state(peer, stale_after, samples.get(key))
            for key, peer in (live or {}).get("peers", {}).items()
        },
    }


def reresolve_interface(name, conf, live, wanted_peer, test, resolve, wg):
    """``wireguard.reresolve`` for one interface: ``resolve(endpoint)`` gives the
    addresses a name has now, ``wg(args)`` runs ``wg``."""
    done = {}
    for item in conf["peers"]:
        key, endpoint = item["public_key"], item["endpoint"]
        if not key or (wanted_peer is not None and wanted_peer not in (key, item["name"])):
            continue
        skip = reresolve_skip(name, key, endpoint, live)
        if skip:
            if wanted_peer is not None:  # asked for by name: say why nothing was done
                done[item["name"] or key] = {
                    "public_key": key,
                    "endpoint": endpoint,
                    "old": None,
                    "new": None,
                    "result": "skipped",
                    "comment": f"Nothing to re-resolve: {skip}",
                }
            continue
        old = live["peers"][key]["endpoint"]
        entry = {"public_key": key, "endpoint": endpoint, "old": old, "new": old}
        done[item["name"] or key] = entry
        try:
            addresses = resolve(endpoint)
        except CommandExecutionError as exc:
            entry.update(result="failed", comment=str(exc))
            continue
        if old in addresses:
            entry.update(result="unchanged", comment=f"{endpoint} still resolves to {old}")
            continue
        if test:
            entry.update(
                result="would change",
                new=addresses[0],
                comment=f"{endpoint} now resolves to {', '.join(addresses)}",
            )
            continue
        try:
            # the address just resolved: what was compared is what is set (wg itself
            # would resolve the name with the same resolver and take the first answer)
            wg(["set", name, "peer", key, "endpoint", addresses[0]])
            now = wgf_dump.parse(wg(["show", name, "dump"]), name)
            entry["new"] = now[name]["peers"].get(key, {}).get("endpoint")
            entry.update(result="changed", comment=f"{endpoint} resolved to {entry['new']}")
        except CommandExecutionError as exc:
            entry.update(result="failed", comment=str(exc))
    return done
