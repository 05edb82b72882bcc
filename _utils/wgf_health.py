"""Health of WireGuard interfaces: ``wireguard.check`` as a plain function of plain
data. ``check_interface`` runs every check (``wgf_checks_files``: presence,
permissions, key age, drift; ``wgf_checks_net``: AllowedIPs, endpoints, MTU, routes,
forwarding, handshakes) in a fixed order; ``report`` adds each interface's facts and the
readable summary. Nothing here runs a command.
"""

import wgf_checks_files
import wgf_checks_net
from wgf_checks_files import key_age_days
from wgf_findings import SEVERITIES
from wgf_staleness import (
    STALE_AFTER,
    link_state,
)

#: At most this many distinct endpoint addresses get an ``ip route get`` for the MTU
#: check, so a hub with thousands of peers is checked in bounded time.
MTU_PROBES = 64
#: Per interface, at most this many info lines go into the readable summary.
SUMMARY_INFOS = 10


def endpoints(conf, pillar_iface):
    """The endpoints to resolve for the checks: the config file's, else pillar's."""
    if conf is None and pillar_iface:
        return [
            p["endpoint"]
            for p in pillar_iface["peers"].values()
            if p["endpoint"] and not p["absent"]
        ]
    return [p["endpoint"] for p in (conf or {}).get("peers", []) if p["endpoint"]]


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
    problems = wgf_checks_files.check_presence(data)
    for check in (
        wgf_checks_files.check_permissions,
        wgf_checks_files.check_pillar_drift,
        wgf_checks_files.check_drift,
        wgf_checks_net.check_allowed_ips,
        wgf_checks_net.check_endpoints,
        wgf_checks_net.check_mtu,
        wgf_checks_net.check_routes,
        wgf_checks_net.check_forwarding,
    ):
        problems += check(data)
    problems += wgf_checks_net.check_handshakes(data, stale_after)
    problems += wgf_checks_files.check_key_age(data)
    return problems


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
    for finding in result["problems"]:
        counts[finding["severity"]] += 1
        lines.append(f"  [{finding['severity']}] {finding['message']}. Fix: {finding['fix']}")
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
        for finding in shown:
            lines.append(
                f"  [{finding['severity']}] {finding['check']}: "
                f"{finding['message']}. Fix: {finding['fix']}"
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
