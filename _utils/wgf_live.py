"""The live interface: what ``wg-quick up`` builds from a config, what runs now, and
the steps that turn one into the other without restarting it.

``wanted`` says what a restart would build (keys, port, fwmark, addresses, MTU, DNS,
and the routes wg-quick derives from AllowedIPs, plus the formula's ``routes``);
``running`` reads the same from ``wg show``, ``ip -j`` and resolvconf; ``plan`` lists
the commands, each with its undo. ``restart_reasons`` names what only a restart can
change: hooks, the table mode, wg-quick's default-route setup, and the options
``wgf_options`` marks so. The plain options are read from ``wgf_options.OPTIONS``: a
row applied by ``ip link set`` or ``wg set`` is planned here without naming it. Plain
data in and out: the state runs the commands.
"""

import ipaddress
import re

import wgf_addr
import wgf_conf
import wgf_iproute
import wgf_options
import wgf_tc

#: Hook keys of wg-quick: commands cannot be undone in place.
HOOKS = ("preup", "postup", "predown", "postdown")
#: wg-quick's MTU when nothing tells it better: 1500 less its 80 bytes.
OVERHEAD = 80
DEFAULT_UNDERLAY_MTU = 1500


def _net(cidr):
    return ipaddress.ip_network(cidr, strict=False)


def default_route_mode(table, allowed_ips):
    """Whether wg-quick sets up its default-route machinery (fwmark, policy rules):
    ``table: auto`` and a /0 among the AllowedIPs."""
    return table == "auto" and wgf_addr.has_default_route(allowed_ips)


def derived_routes(table, allowed_ips, addresses, link_local=False):
    """``{(dst, table): protocol}`` of the routes wg-quick adds for these AllowedIPs.

    ``auto``: a route in main unless a connected route of an address covers it (/0 is
    the default-route machinery, not a route here); a table: every AllowedIP there;
    ``off``: none. ``link_local``: the device has fe80::/64 (IPv6 on, no explicit one).
    """
    if table == "off":
        return {}
    if table != "auto":
        return {(str(_net(c)), table): "boot" for c in allowed_ips}
    return {
        (str(_net(cidr)), "main"): "boot"
        for cidr in wgf_addr.off_link(allowed_ips, addresses, link_local)
    }


def wanted(iface, public_key, allowed_ips, link_local, auto_mtu, protocol="boot"):
    """What a restart builds from the rendered config of ``iface`` (``wgf_schema``).

    ``allowed_ips``: every AllowedIP the peers hold (live, after the peer states);
    ``auto_mtu``: the MTU wg-quick picks when the config names none (computed by the
    caller from the endpoints' routes, see ``mtu_from_routes``); ``protocol``: that of
    the routes derived from AllowedIPs (wg-quick's ``ip route add``: boot).
    """
    derived = derived_routes(iface["table"], allowed_ips, iface["address"], link_local)
    routes = dict.fromkeys(derived, protocol)
    for cidr in iface["routes"]:
        routes[(cidr, "main")] = "static"
    dns = dns_record(iface["dns"])
    return {
        "public_key": public_key,
        **{row.key: iface[row.key] for row in wgf_options.rows() if row.live in ("wg", "link")},
        "addresses": sorted(iface["address"], key=wgf_addr.cidr_sort_key),
        "mtu": iface["mtu"] or auto_mtu,
        "dns": dns,
        "routes": routes,
        "default_route": default_route_mode(iface["table"], allowed_ips),
    }


def running(live, link, routes_v4, routes_v6, dns_text, default_route):
    """What runs now: ``live`` from ``wgf_dump.parse``, ``link`` from
    ``wgf_iproute.link``, the ``ip -j route show table all dev IF`` answers, and the
    resolvconf record of the interface (or None)."""
    routes = {}
    for family, answer in (("-4", routes_v4), ("-6", routes_v6)):
        for route in answer:
            if (
                route.get("type", "unicast") != "unicast"
                or route.get("table") == "local"
                or route.get("protocol") == "kernel"
            ):
                continue
            dst = route.get("dst", "")
            dst = wgf_iproute.DEFAULT_ROUTE[family] if dst == "default" else str(_net(dst))
            table = str(route.get("table", "main"))
            if default_route and table != "main" and _net(dst).prefixlen == 0:
                continue  # wg-quick's default-route table: left to a restart
            routes[(dst, table)] = route.get("protocol", "boot")
    return {
        "public_key": live["public_key"],
        **{row.key: live[row.key] for row in wgf_options.rows("wg")},
        **{row.key: link[row.key] for row in wgf_options.rows("link")},
        "addresses": sorted(link["addresses"], key=wgf_addr.cidr_sort_key),
        "dns": parse_dns_record(dns_text),
        "routes": routes,
    }


def has_link_local(routes_v6):
    return any(r.get("dst") == "fe80::/64" and r.get("protocol") == "kernel" for r in routes_v6)


def mtu_from_routes(endpoint_routes, link_mtus, default_route):
    """wg-quick's automatic MTU: the largest MTU of the paths to the peers' endpoints
    (a route's ``mtu`` or its device's), else the default route's device's, else
    1500; less 80 bytes."""
    mtu = 0
    for route in endpoint_routes:
        found = wgf_iproute.route_mtu(route) or link_mtus.get(route.get("dev"), 0)
        mtu = max(mtu, found or 0)
    if not mtu and default_route:
        mtu = wgf_iproute.route_mtu(default_route) or link_mtus.get(default_route.get("dev"), 0)
    return (mtu or DEFAULT_UNDERLAY_MTU) - OVERHEAD


# ------------------------------------------------------------------------ DNS


def dns_record(entries):
    """The record wg-quick gives resolvconf: ``{"nameservers", "search"}``, or None."""
    if not entries:
        return None
    return {
        "nameservers": [e for e in entries if wgf_addr.is_address(e)],
        "search": [e for e in entries if not wgf_addr.is_address(e)],
    }


def dns_text(record):
    """What wg-quick pipes into ``resolvconf -a <if> -m 0 -x``."""
    lines = [f"nameserver {server}" for server in record["nameservers"]]
    if record["search"]:
        lines.append(f"search {' '.join(record['search'])}")
    return "\n".join(lines) + "\n"


def parse_dns_record(text):
    if not text or not text.strip():
        return None
    record = {"nameservers": [], "search": []}
    for line in text.split("\n"):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            record["nameservers"].append(fields[1])
        elif len(fields) >= 2 and fields[0] == "search":
            record["search"] += fields[1:]
    return record if record["nameservers"] or record["search"] else None


def resolvconf_name(interface, interface_order):
    """The name wg-quick registers DNS under: ``<prefix>.<if>`` when Debian's resolvconf
    lists a ``prefix*`` line in /etc/resolvconf/interface-order, else the interface."""
    for line in (interface_order or "").split("\n"):
        line = line.strip()
        if line.endswith("*") and line[:-1] and all(c.isalnum() or c == "-" for c in line[:-1]):
            return f"{line[:-1]}.{interface}"
    return interface


# ---------------------------------------------------------------------- plan


def _family(cidr):
    return "-6" if ":" in cidr else "-4"


def _route_argv(verb, dst, table, protocol, interface):
    argv = ["ip", _family(dst), "route", verb, dst, "dev", interface]
    if table != "main":
        argv += ["table", table]
    if protocol != "boot":
        argv += ["proto", protocol]
    return argv


def plan(want, have, interface):
    """The live steps from ``have`` to ``want``, in the order they run, and the
    ``changes`` they make. Each step is ``{"name", "do": [argv], "undo": [argv],
    "wg": {option: value}}`` (``wg`` for ``wg set``: the state writes keys to files)."""
    steps, changes = [], {}
    add = [a for a in want["addresses"] if a not in have["addresses"]]
    drop = [a for a in have["addresses"] if a not in want["addresses"]]
    if add or drop:
        changes["address"] = {"old": have["addresses"], "new": want["addresses"]}
    for address in add:
        steps.append(
            {
                "name": f"add address {address}",
                "do": [["ip", _family(address), "address", "add", address, "dev", interface]],
                "undo": [["ip", _family(address), "address", "del", address, "dev", interface]],
            }
        )
    steps += _link_steps(want, have, interface, changes)
    for address in drop:
        steps.append(
            {
                "name": f"remove address {address}",
                "do": [["ip", _family(address), "address", "del", address, "dev", interface]],
                "undo": [["ip", _family(address), "address", "add", address, "dev", interface]],
            }
        )
    steps += _route_steps(want["routes"], have["routes"], interface, changes)
    if want["dns"] != have["dns"]:
        changes["dns"] = {"old": have["dns"], "new": want["dns"]}
        steps.append(
            {
                "name": "set DNS" if want["dns"] else "remove DNS",
                "dns": want["dns"],
                "undo_dns": have["dns"],
            }
        )
    wg, undo = {}, {}
    keeps = {"public_key": True, **{row.key: row.none_keeps_live for row in wgf_options.rows("wg")}}
    for key, none_keeps_live in keeps.items():
        if none_keeps_live and want[key] is None:
            continue  # e.g. no port configured: the kernel picks one; no key known: none to set
        if key == "fwmark" and want["default_route"]:
            continue  # wg-quick's default-route setup owns it
        if want[key] != have[key]:
            changes[key] = {"old": have[key], "new": want[key]}
            wg[key], undo[key] = want[key], have[key]
    if wg:
        steps.append({"name": "wg set " + ", ".join(sorted(wg)), "wg": wg, "undo_wg": undo})
    return steps, changes


def _link_steps(want, have, interface, changes):
    """``ip link set`` of each option applied so (``wgf_options``: the MTU)."""
    steps = []
    for row in wgf_options.rows("link"):
        new, old = want[row.key], have[row.key]
        if new == old or (new is None and row.none_keeps_live):
            continue
        changes[row.key] = {"old": old, "new": new}
        argv = ["ip", "link", "set", row.set_word]
        steps.append(
            {
                "name": f"set {row.key} {new}",
                "do": [[*argv, str(new), "dev", interface]],
                "undo": [] if old is None else [[*argv, str(old), "dev", interface]],
            }
        )
    return steps


def _route_steps(want, have, interface, changes):
    steps = []
    for (dst, table), protocol in sorted(want.items()):
        old = have.get((dst, table))
        if old == protocol:
            continue
        verb = "add" if old is None else "replace"
        undo = (
            _route_argv("del", dst, table, protocol, interface)
            if old is None
            else _route_argv("replace", dst, table, old, interface)
        )
        steps.append(
            {
                "name": f"{verb} route {dst}" + (f" table {table}" if table != "main" else ""),
                "do": [_route_argv(verb, dst, table, protocol, interface)],
                "undo": [undo],
            }
        )
    for (dst, table), protocol in sorted(have.items()):
        if (dst, table) not in want:
            steps.append(
                {
                    "name": f"remove route {dst}" + (f" table {table}" if table != "main" else ""),
                    "do": [_route_argv("del", dst, table, protocol, interface)],
                    "undo": [_route_argv("add", dst, table, protocol, interface)],
                }
            )
    if steps:
        changes["routes"] = {"old": _route_list(have), "new": _route_list(want)}
    return steps


def _route_list(routes):
    return [
        dst if table == "main" else f"{dst} table {table}"
        for dst, table in sorted(routes, key=lambda r: (wgf_addr.cidr_sort_key(r[0]), r[1]))
    ]


# ------------------------------------------------------------------- restarts


#: The first ``[Peer]`` section line.
_PEER_SECTION = re.compile(r"^[^\S\n]*\[[^\S\n]*peer[^\S\n]*\]", re.MULTILINE | re.IGNORECASE)
#: What a peer section holds that a restart applies: an AllowedIPs with a /0.
_DEFAULT_ROUTE = re.compile(
    r"^[^\S\n]*allowedips[^\S\n]*=[^\n]*/0.*$", re.MULTILINE | re.IGNORECASE
)
#: How a /0 can end in an AllowedIPs line (a key, base64, has none of them after "/0").
_SLASH_ZERO_ENDS = ("/0\n", "/0,", "/0 ", "/0\t", "/0#", "/0\r")


def _restart_lines(text, at_start):
    """``(section, line)`` of each line of ``text`` that ``_restart_facts`` reads: only
    the hooks, table, fwmark and ``at_start`` keys, and AllowedIPs with a /0; when every
    section after the first ``[Peer]`` is a peer's (a hub's 10,000), those are read for
    their /0 alone, without a look at each section line (issue 24)."""
    keys = "|".join(re.escape(k) for k in (*HOOKS, "table", "fwmark", *at_start))
    candidates = re.compile(
        rf"^[^\S\n]*(?:\[|(?:{keys})[^\S\n]*=|allowedips[^\S\n]*=[^\n]*/0).*$",
        re.MULTILINE | re.IGNORECASE,
    )
    peers = _PEER_SECTION.search(text)
    tail = text[peers.start() :] if peers else ""
    # every bracket after the first peer opens a section the formula writes, "[Peer]"
    only_peers = peers is not None and tail.count("[") == tail.count("[Peer]")
    head = text[: peers.start()] if only_peers else text
    section = None
    for found in candidates.finditer(head):
        line = found.group(0).split("#", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]").strip().lower()
        else:
            yield section, line
    if only_peers and (tail.endswith("/0") or any(end in tail for end in _SLASH_ZERO_ENDS)):
        for found in _DEFAULT_ROUTE.finditer(tail):
            yield "peer", found.group(0).split("#", 1)[0].strip()


def _restart_facts(text):
    """Hooks (less the formula's own route and client rate lines), table, default-route
    setup and the options only a restart applies (``wgf_options``) of a config text, as
    a restart would apply them."""
    hooks, table, fwmark, allowed = [], "auto", None, []
    at_start = {row.conf.lower(): row.key for row in wgf_options.rows("restart")}
    options = {}
    for section, line in _restart_lines(text, at_start):
        key, sep, value = line.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            continue
        if section == "interface" and key in HOOKS:
            if not (key == "postup" and wgf_conf.ROUTE_COMMAND.fullmatch(value)) and not (
                wgf_tc.is_hook(value)  # client rates: applied live (wireguard.client_rates)
            ):
                hooks.append((key, " ".join(value.split())))
        elif section == "interface" and key == "table":
            table = value or "auto"
        elif section == "interface" and key == "fwmark":
            fwmark = value
        elif section == "interface" and key in at_start:
            options[at_start[key]] = value
        elif section == "peer" and key == "allowedips":
            allowed += [c for c in wgf_addr.as_list(value) if c.endswith("/0")]
    if table == "off" and wgf_conf.ON_LINK_NOTE in text:
        table = "auto"  # the formula's own off: wg-quick would add no route either way
    default_route = sorted({_family(c) for c in allowed}) if table == "auto" else []
    return {
        "hooks": hooks,
        "table": table,
        "default_route": default_route,
        "fwmark": fwmark if default_route else None,
        "options": options,
    }


def restart_reasons(old_text, new_text):
    """What changed between two config texts that only a restart applies."""
    if old_text is None:
        return []
    old, new = _restart_facts(old_text), _restart_facts(new_text)
    reasons = []
    if old["hooks"] != new["hooks"]:
        reasons.append(
            "its PreUp/PostUp/PreDown/PostDown hooks changed (hooks cannot be undone in place)"
        )
    for row in wgf_options.rows("restart"):
        if old["options"].get(row.key) != new["options"].get(row.key):
            reasons.append(f"its {row.conf} changed (wg-quick applies it only at start)")
    if old["table"] != new["table"]:
        reasons.append(f"its table changed from {old['table']} to {new['table']}")
    elif old["default_route"] != new["default_route"] or old["fwmark"] != new["fwmark"]:
        reasons.append(
            "its default route (a /0 in AllowedIPs with table auto) changed: "
            "wg-quick sets up fwmark, policy rules and src_valid_mark for it"
        )
    return reasons
