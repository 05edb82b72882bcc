"""The minions' answers to the fleet audit, read as untrusted data: ``fleet_from`` turns
``{minion: {function: return}}`` into the fleet the cross-checks work on. A minion whose
answer has the wrong shape is named as unreadable and left out; a message never quotes
more of an answer than an error text with anything shaped like a key hidden.
"""

import ipaddress
import re

import wgf_findings
import wgf_layout

#: What the audit asks every minion, in one job.
FUNCTIONS = ["wireguard.show", "wireguard.public_keys", "wireguard.check", "network.interfaces"]
SEVERITIES = wgf_findings.SEVERITIES


#: A WireGuard key in a text (a minion's error message may quote one).
KEY_SHAPED = re.compile(r"[A-Za-z0-9+/]{43}=")


def _named(value, length=15):
    """A name a minion gave, as a message shows it: at most 15 characters (an interface
    name's length, too short for a key), or its type."""
    return repr(value[:length]) if isinstance(value, str) else type(value).__name__


def _quoted(value):
    """A minion's raw answer as a message shows it: an error text (anything shaped like
    a key hidden, the first 200 characters), else only its type."""
    if isinstance(value, str):
        return KEY_SHAPED.sub("(a key)", value)[:200]
    return type(value).__name__


def _is_list_of(value, kind):
    return isinstance(value, list) and all(isinstance(v, kind) for v in value)


def _optional(value, kind):
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _days(value):
    """Whether ``value`` is a key age: none, or a number of days (at most a million
    years either way: the report formats it as a float)."""
    return value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and -3.7e8 <= value <= 3.7e8
    )


def _problems_shape(problems):
    """Whether ``problems`` is a list of ``wgf_findings.problem`` findings."""
    return isinstance(problems, list) and all(
        isinstance(p, dict)
        and p.get("severity") in SEVERITIES
        and all(isinstance(p.get(k), str) for k in ("check", "message", "fix"))
        and _optional(p.get("peer"), str)
        for p in problems
    )


def _entry_shape(key, value, fields_shape):
    """Whether one entry of a mapping a minion sent (a peer, keyed by its public key) is
    a string key and a mapping whose fields pass ``fields_shape``."""
    return isinstance(key, str) and isinstance(value, dict) and bool(fields_shape(value))


def _live_peer_shape(peer):
    return (
        _optional(peer.get("endpoint"), str)
        and _is_list_of(peer.get("allowed_ips"), str)
        and _optional(peer.get("latest_handshake_age"), int)
        and _optional(peer.get("persistent_keepalive"), int)
        and isinstance(peer.get("tx_bytes"), int)
        and isinstance(peer.get("rx_bytes"), int)
    )


def _facts_peer_shape(peer):
    return (
        _optional(peer.get("name"), str)
        and _optional(peer.get("endpoint"), str)
        and _is_list_of(peer.get("allowed_ips") or [], str)
        and (peer.get("endpoint_resolved") is None or _is_list_of(peer["endpoint_resolved"], str))
    )


def _live_shape(show):
    """Why ``wireguard.show``'s answer cannot be read, or None."""
    if not isinstance(show, dict):
        return "wireguard.show did not return a mapping"
    for ifname, iface in show.items():
        if (
            not isinstance(ifname, str)
            or not isinstance(iface, dict)
            or not isinstance(iface.get("peers"), dict)
        ):
            return f"wireguard.show: interface {_named(ifname)} is not a mapping with peers"
        if not _optional(iface.get("public_key"), str) or not _optional(
            iface.get("listen_port"), int
        ):
            return f"wireguard.show: interface {_named(ifname)} has a malformed key or port"
        for key, peer in iface["peers"].items():
            if not _entry_shape(key, peer, _live_peer_shape):
                return f"wireguard.show: peer {_named(key, 12)} of {_named(ifname)} is malformed"
    return None


def _facts_shape(ifname, entry):
    if (
        not isinstance(ifname, str)
        or not isinstance(entry, dict)
        or not _problems_shape(entry.get("problems", []))
    ):
        return f"wireguard.check: interface {_named(ifname)} is malformed"
    facts = entry.get("facts") or {}
    if not isinstance(facts, dict) or not (
        _optional(facts.get("public_key"), str)
        and _optional(facts.get("listen_port"), int)
        and _is_list_of(facts.get("addresses") or [], str)
        and isinstance(facts.get("forwarding") or {}, dict)
        and isinstance(facts.get("link_states") or {}, dict)
        and _optional(facts.get("service"), str)
        and isinstance(facts.get("peers") or {}, dict)
        and isinstance(facts.get("clients") or {}, dict)
        and _days(facts.get("key_age_days"))
    ):
        return f"wireguard.check: the facts of {_named(ifname)} are malformed"
    for key, peer in (facts.get("peers") or {}).items():
        if not _entry_shape(key, peer, _facts_peer_shape):
            return f"wireguard.check: a peer in the facts of {_named(ifname)} is malformed"
    return None


def _answer_problems(funs):
    """``{function: why its answer cannot be read}`` for a minion's answer."""
    show, keys, check, _ = (funs.get(f) for f in FUNCTIONS)
    problems = {"wireguard.show": _live_shape(show)}
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        problems["wireguard.public_keys"] = "it did not return {interface: public key}"
    if (
        not isinstance(check, dict)
        or not isinstance(check.get("interfaces"), dict)
        or not _problems_shape(check.get("problems", []))
    ):
        problems["wireguard.check"] = "it did not return its report"
    else:
        problems["wireguard.check"] = next(
            (p for p in (_facts_shape(i, e) for i, e in check["interfaces"].items()) if p), None
        )
    return {f: why for f, why in problems.items() if why}


def local_addresses(interfaces, wireguard_names):
    """The addresses of a minion's interfaces other than WireGuard and loopback."""
    found = []
    if not isinstance(interfaces, dict):
        return found
    for name, iface in interfaces.items():
        if name in wireguard_names or name == "lo" or not isinstance(iface, dict):
            continue
        for family in ("inet", "inet6"):
            addrs = iface.get(family)
            for addr in addrs if isinstance(addrs, list) else []:
                if not isinstance(addr, dict):
                    continue
                address = str(addr.get("address", "")).split("%")[0]
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    continue
                if not ip.is_loopback and not ip.is_link_local:
                    found.append(str(ip))
    return found


def fleet_from(returned):
    """Turn the raw returns into the plain data ``cross_check`` takes.

    ``{minion: {"error": text or None, "underlay": [ip], "local": [problems],
    "interfaces": {if: {"public_key", "live", "listen_port", "addresses",
    "forwarding", "peers": {key: {"name", "endpoint", "endpoint_resolved",
    "live_endpoint", "allowed_ips", "latest_handshake_age", "tx_bytes",
    "persistent_keepalive", "live", "state"}}, "service"}}}}``; ``state`` is how
    this end judges the link (``wgf_staleness.link_state``).
    """
    fleet = {}
    for minion, funs in sorted(returned.items()):
        entry = {"error": None, "underlay": [], "local": [], "interfaces": {}}
        fleet[minion] = entry
        if not isinstance(funs, dict):
            entry["error"] = f"its answer cannot be read ({type(funs).__name__}: {_quoted(funs)})"
            continue
        broken = _answer_problems(funs)
        if broken:
            entry["error"] = "; ".join(
                f"{f}: {why} ({_quoted(funs.get(f))})" for f, why in broken.items()
            )
        show, keys, check, nics = ({} if f in broken else funs.get(f) for f in FUNCTIONS)
        checked = check.get("interfaces") or {}
        entry["underlay"] = local_addresses(nics, set(show) | set(checked) | set(keys))
        entry["local"] = [dict(p, interface=None) for p in check.get("problems") or []]
        for ifname in sorted(set(show) | set(checked) | set(keys)):
            live = show.get(ifname)
            facts = (checked.get(ifname) or {}).get("facts") or {}
            entry["local"] += [
                dict(p, interface=ifname) for p in (checked.get(ifname) or {}).get("problems") or []
            ]
            entry["interfaces"][ifname] = _interface(ifname, live, facts, keys.get(ifname))
    return fleet


def _interface(ifname, live, facts, key_file_public):
    configured = facts.get("peers") or {}
    states = facts.get("link_states") or {}
    peers = {}
    for key in sorted(set(configured) | set((live or {}).get("peers") or {})):
        conf = configured.get(key) or {}
        now = ((live or {}).get("peers") or {}).get(key) or {}
        peers[key] = {
            "name": conf.get("name"),
            "endpoint": conf.get("endpoint"),
            "endpoint_resolved": conf.get("endpoint_resolved"),
            "live_endpoint": now.get("endpoint"),
            "allowed_ips": now.get("allowed_ips", conf.get("allowed_ips", [])),
            "latest_handshake_age": now.get("latest_handshake_age"),
            "tx_bytes": now.get("tx_bytes", 0),
            "persistent_keepalive": now.get(
                "persistent_keepalive", conf.get("persistent_keepalive")
            ),
            "live": bool(now),
            "state": states.get(key),
        }
    return {
        "public_key": (live or {}).get("public_key") or key_file_public or facts.get("public_key"),
        "live": live is not None,
        "listen_port": (live or {}).get("listen_port", facts.get("listen_port")),
        "addresses": facts.get("addresses") or [],
        "forwarding": facts.get("forwarding") or {},
        "service": facts.get("service") or wgf_layout.Layout().unit(ifname),
        "key_age_days": facts.get("key_age_days"),
        "peers": peers,
        "clients": {str(k): str(v) for k, v in (facts.get("clients") or {}).items()},
    }
