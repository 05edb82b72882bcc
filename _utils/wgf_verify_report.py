"""Reachability assertions (issue 22), around the decision of ``wgf_verify``: the
minions' facts read as untrusted data, the whole static run, the live probes each
minion gets (and checks), and what ``salt-run wireguard.verify`` shows.
"""

import ipaddress
import re
import time

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_verify
from wgf_addr import shown

#: Seconds a live probe waits for its answer.
PROBE_TIMEOUT = 2.0
_FACT_KEYS = ("interfaces", "routes", "addresses", "forwarding", "expect")


# ------------------------------------------------------------------ the facts


def facts(declared, live, own_keys, routes, links, forwarding, expect):
    """What ``wireguard.verify_facts`` returns (no private or preshared key): per
    interface of pillar (``declared``, ``wireguard.pillar_interfaces``) or of ``live``
    (``wireguard.show``): ``address``, ``listen_port``, ``public_key``, ``up``,
    ``masquerade``, ``access``, ``firewall`` and ``peers`` by name (``public_key``,
    ``allowed_ips``: the live ones while the interface runs, else pillar's,
    ``pillar_allowed_ips``, ``minion``, ``minion_interface``, ``client``); then the
    minion's ``routes`` (``ip -j route show table all``, unicast), ``addresses``
    (``ip -j address show``), ``forwarding`` and its checked ``expect``."""
    interfaces = {}
    for name in sorted(set(declared) | set(live)):
        pillar = declared.get(name) or {}
        if pillar.get("absent"):
            pillar = {}
        running = live.get(name)
        live_peers = dict((running or {}).get("peers") or {})
        peers = {}
        for pname, peer in sorted((pillar.get("peers") or {}).items()):
            if peer.get("absent"):
                continue
            key = peer.get("public_key")
            got = live_peers.pop(key, None) if key else None
            peers[pname] = {
                "public_key": key,
                "allowed_ips": list(
                    got["allowed_ips"] if got else ([] if running else peer["allowed_ips"])
                ),
                "pillar_allowed_ips": list(peer["allowed_ips"]),
                "live": got is not None,
                "minion": peer.get("minion"),
                "minion_interface": peer.get("minion_interface"),
                "client": bool(peer.get("client")),
            }
        for key, peer in sorted(live_peers.items()):
            peers[f"key:{key[:8]}"] = {
                "public_key": key,
                "allowed_ips": list(peer.get("allowed_ips") or []),
                "pillar_allowed_ips": [],
                "live": True,
                "minion": None,
                "minion_interface": None,
                "client": False,
            }
        address = [
            f"{a['local']}/{a['prefixlen']}"
            for link in links
            if link.get("ifname") == name
            for a in link.get("addr_info") or []
            if a.get("local") and not ipaddress.ip_address(a["local"]).is_link_local
        ]
        interfaces[name] = {
            "address": address if running else list(pillar.get("address") or []),
            "listen_port": (running or pillar).get("listen_port"),
            "public_key": (running or {}).get("public_key") or own_keys.get(name),
            "up": running is not None,
            "masquerade": list(pillar.get("masquerade") or []),
            "access": pillar.get("access"),
            "firewall": pillar.get("firewall", "none"),
            "peers": peers,
        }
    return {
        "interfaces": interfaces,
        "routes": [
            {
                "dst": r["dst"],
                "dev": r["dev"],
                "table": r.get("table", "main"),
            }
            for r in routes
            if r.get("dev") and r.get("dst") and r.get("type", "unicast") == "unicast"
        ],
        "addresses": [
            f"{a['local']}/{a['prefixlen']}"
            for link in links
            for a in link.get("addr_info") or []
            if a.get("local")
        ],
        "forwarding": dict(forwarding),
        "expect": expect,
    }


def tunnel_addresses(facts_value):
    """The addresses of the minion's tunnel interfaces (a probe's only sources)."""
    return [
        str(ipaddress.ip_interface(a).ip)
        for iface in facts_value["interfaces"].values()
        if iface["up"]
        for a in iface["address"]
    ]


def _strings(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _cidrs(value, interface=False):
    if not _strings(value):
        return False
    try:
        for v in value:
            (ipaddress.ip_interface if interface else ipaddress.ip_network)(v)
    except ValueError:
        return False
    return True


def _peer_shape(peer):
    return (
        isinstance(peer, dict)
        and _cidrs(peer.get("allowed_ips"))
        and all(
            peer.get(k) is None or isinstance(peer.get(k), str)
            for k in ("public_key", "minion", "minion_interface")
        )
    )


def _access_shape(access):
    if access is None:
        return True
    rules = access.get("rules") if isinstance(access, dict) else None
    return (
        access.get("default") in ("drop", "accept")
        and isinstance(rules, list)
        and all(
            isinstance(r, dict)
            and _cidrs(r.get("sources"))
            and _cidrs(r.get("to"))
            and r.get("proto") in ("tcp", "udp", "icmp", "any")
            and _strings(r.get("ports"))
            and all(re.fullmatch(r"[0-9]{1,5}(-[0-9]{1,5})?", p) for p in r["ports"])
            for r in rules
        )
    )


def _iface_shape(name, iface):
    return (
        isinstance(name, str)
        and isinstance(iface, dict)
        and _cidrs(iface.get("address"), interface=True)
        and (iface.get("public_key") is None or isinstance(iface.get("public_key"), str))
        and _strings(iface.get("masquerade"))
        and _access_shape(iface.get("access"))
        and isinstance(iface.get("peers"), dict)
        and all(isinstance(p, str) and _peer_shape(v) for p, v in iface["peers"].items())
    )


def _facts_shape(value):
    """Whether a minion's facts have the shape the decision reads (untrusted data)."""
    routes, forwarding = value["routes"], value["forwarding"]
    return (
        isinstance(value["interfaces"], dict)
        and all(_iface_shape(n, i) for n, i in value["interfaces"].items())
        and isinstance(routes, list)
        and all(
            isinstance(r, dict)
            and isinstance(r.get("dev"), str)
            and (r.get("dst") == "default" or _cidrs([r.get("dst")]))
            for r in routes
        )
        and _cidrs(value["addresses"], interface=True)
        and isinstance(forwarding, dict)
        and (value["expect"] is None or isinstance(value["expect"], list))
    )


def facts_from(returned):
    """``{minion: facts}`` of the minions that answered ``wireguard.verify_facts`` with
    facts; a minion that answered with an error (a refused ``wireguard:expect``) is
    refused, naming the minion, so nothing is probed."""
    facts, errors = {}, []
    for minion, value in sorted(returned.items()):
        if isinstance(value, dict) and all(k in value for k in _FACT_KEYS):
            if not _facts_shape(value):
                errors.append(f"{minion}: its facts are malformed")
                continue
            facts[minion] = value
        elif value is not None:
            text = value if isinstance(value, str) else type(value).__name__
            errors.append(f"{minion}: {wgf_addr.hide_keys(text)[:2000]}")
    if errors:
        raise SaltInvocationError(
            "wireguard.verify_facts failed (nothing was probed):\n- " + "\n- ".join(errors)
        )
    return facts


def assertions_of(facts):
    """Every minion's assertions, each with ``declared_by`` (the minion whose pillar holds
    it), in minion order."""
    return [
        {**a, "declared_by": minion}
        for minion, fact in sorted(facts.items())
        for a in wgf_verify.expect(fact["expect"])
    ]


def static(facts):
    """``(assertions, decisions)`` of the whole fleet: names checked, then each
    assertion decided (``wgf_verify.decide``)."""
    fleet = wgf_verify.Fleet(facts)
    assertions = assertions_of(facts)
    fleet.check_names(assertions)
    return assertions, [wgf_verify.decide(fleet, a) for a in assertions]


# ------------------------------------------------------------------ the probes


def probes(assertions, decisions):
    """``{minion: [probe]}``: each assertion whose ``from`` is a minion, probed there
    from its tunnel address. A probe: ``{"id", "to", "proto", "port", "source",
    "allow", "static"}``."""
    found = {}
    for number, (a, d) in enumerate(zip(assertions, decisions, strict=True)):
        if d["sender"] is None or d["source"] is None:
            continue
        found.setdefault(d["sender"], []).append(
            {
                "id": number,
                "to": d["target"],
                "proto": a["proto"],
                "port": a["port"],
                "source": d["source"],
                "allow": a["allow"],
                "static": d["static"],
            }
        )
    return found


def checked_probes(value, own_addresses):
    """The probes a minion was given (untrusted): each one's fields checked; a source
    that is not one of ``own_addresses`` (the minion's tunnel addresses) is refused."""
    if not isinstance(value, list):
        raise SaltInvocationError(f"probes: a list of probes, got {type(value).__name__}")
    own = {str(ipaddress.ip_address(a)) for a in own_addresses}
    checked = []
    for number, probe in enumerate(value, 1):
        where = f"probes, probe {number}"
        if not isinstance(probe, dict):
            raise SaltInvocationError(f"{where}: a mapping, got {type(probe).__name__}")
        try:
            target = str(ipaddress.ip_address(probe.get("to")))
            source = str(ipaddress.ip_address(probe.get("source")))
        except ValueError:
            raise SaltInvocationError(f"{where}: 'to' and 'source' must be addresses") from None
        proto, port = probe.get("proto"), probe.get("port")
        if proto not in wgf_verify.PROTOS:
            raise SaltInvocationError(f"{where}: proto {shown(proto)} is not icmp, tcp or udp")
        if proto != "icmp" and not (
            isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535
        ):
            raise SaltInvocationError(f"{where}: proto {proto} needs a port 1-65535")
        if source not in own:
            raise SaltInvocationError(
                f"{where}: source {shown(source)} is no tunnel address of this minion"
            )
        checked.append(
            {
                "id": probe.get("id"),
                "to": target,
                "proto": proto,
                "port": port if proto != "icmp" else None,
                "source": source,
                "allow": probe.get("allow") is not False,
                "static": probe.get("static")
                if probe.get("static") in (wgf_verify.ALLOW, wgf_verify.BLOCK)
                else None,
            }
        )
    return checked


def probe_results(checked, answers, now=None):
    """The minion's answer: ``{"results": [{"id", "live"}], "last": {"time", "passed",
    "failed"}}``; an assertion passes when static and live agree with ``allow``."""
    results, passed = [], 0
    for probe, answered in zip(checked, answers, strict=True):
        live = wgf_verify.ALLOW if answered else wgf_verify.BLOCK
        results.append({"id": probe["id"], "live": live})
        wanted = wgf_verify.ALLOW if probe["allow"] else wgf_verify.BLOCK
        passed += int(live == wanted and probe["static"] in (None, wanted))
    last = {
        "time": int(time.time() if now is None else now),
        "passed": passed,
        "failed": len(results) - passed,
    }
    return {"results": results, "last": last}


def live_of(answers, probes_by_minion):
    """``{assertion number: "allow"|"block"}`` from the minions' answers, and
    ``{assertion number: note}`` for those a minion did not probe."""
    live, notes = {}, {}
    for minion, sent in probes_by_minion.items():
        answer = answers.get(minion)
        got = {}
        if isinstance(answer, dict) and isinstance(answer.get("results"), list):
            got = {
                r.get("id"): r.get("live")
                for r in answer["results"]
                if isinstance(r, dict) and r.get("live") in (wgf_verify.ALLOW, wgf_verify.BLOCK)
            }
        for probe in sent:
            if probe["id"] in got:
                live[probe["id"]] = got[probe["id"]]
            else:
                why = "did not answer" if answer is None else "could not probe"
                if isinstance(answer, str):  # the minion's error, with no key in it
                    why += f": {wgf_addr.hide_keys(answer).strip()[-300:]}"
                notes[probe["id"]] = f"live check: {minion} {why}"
    return live, notes


# ------------------------------------------------------------------ the result


def result(assertions, decisions, live=None, notes=None):
    """``{"assertions": [...], "passed", "failed"}`` of ``salt-run wireguard.verify``."""
    live, notes = live or {}, notes or {}
    rows = [
        wgf_verify.verdict(a, d, live.get(n), notes.get(n))
        for n, (a, d) in enumerate(zip(assertions, decisions, strict=True))
    ]
    passed = sum(1 for r in rows if r["pass"])
    return {"assertions": rows, "passed": passed, "failed": len(rows) - passed}


def _assertion_text(row):
    port = f"/{row['port']}" if row["port"] is not None else ""
    must = "" if row["allow"] else " (must block)"
    return f"{row['from']} -> {row['to']} {row['proto']}{port}{must}"


def text_table(verified):
    """The table ``salt-run wireguard.verify`` prints: assertion, static, live,
    pass/fail, reason; a summary line first."""
    rows = [
        (
            _assertion_text(r),
            r["static"],
            r["live"] or "-",
            "pass" if r["pass"] else "FAIL",
            r["reason"],
        )
        for r in verified["assertions"]
    ]
    head = ("assertion", "static", "live", "result", "reason")
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(4)]
    lines = [
        f"WireGuard verify: {verified['passed']} passed, {verified['failed']} failed",
        "",
        "  ".join(h.ljust(w) for h, w in zip(head, [*widths, 0], strict=True)).rstrip(),
    ]
    for row in rows:
        lines.append(
            "  ".join(str(c).ljust(w) for c, w in zip(row, [*widths, 0], strict=True)).rstrip()
        )
    if not rows:
        lines.append("(no assertions: pillar wireguard:expect of the targeted minions is empty)")
    return "\n".join(lines)
