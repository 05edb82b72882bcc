"""The fingerprint of a running wg0 (issue 12's "live equals restart"): what a restart of
its service rebuilds from the file, as plain comparable data, and the check that the
live interface equals it."""

from __future__ import annotations

import json


def _route(route: dict) -> tuple:
    """One route of `ip -j route show table all`, without what differs per boot."""
    return (
        route.get("dst"),
        str(route.get("table", "main")),
        route.get("protocol", "boot"),
        route.get("scope", "global"),
        route.get("type", "unicast"),
        route.get("prefsrc"),
    )


FINGERPRINT_PARTS = {
    "public_key": "wg show {ifname} public-key",
    "listen_port": "wg show {ifname} listen-port",
    "fwmark": "wg show {ifname} fwmark",
    "allowed_ips": "wg show {ifname} allowed-ips",
    "keepalive": "wg show {ifname} persistent-keepalive",
    "link": "ip -j addr show dev {ifname}",
    "routes4": "ip -j -4 route show table all dev {ifname}",
    "routes6": "ip -j -6 route show table all dev {ifname}",
    "rules4": "ip -j -4 rule",
    "rules6": "ip -j -6 rule",
    "resolv_conf": "cat /etc/resolv.conf",
}
SEPARATOR = "@@@@"


def fingerprint(host, ifname: str = "wg0") -> dict:
    """What `systemctl restart wg-quick@wg0` (or networkd) rebuilds of ``ifname``, as
    plain comparable data: wg settings and peers (no counters, handshakes, endpoints, no
    secret), addresses and MTU, the device's routes in every table, policy rules and
    /etc/resolv.conf."""
    commands = (cmd.format(ifname=ifname) for cmd in FINGERPRINT_PARTS.values())
    script = f"; echo {SEPARATOR}; ".join(f"{cmd} 2>&1" for cmd in commands)
    parts = dict(zip(FINGERPRINT_PARTS, host.out(script).split(f"{SEPARATOR}\n"), strict=True))

    def peer_lines(text):
        return sorted(
            " ".join([key, *sorted(rest.split())])
            for key, _, rest in (line.partition("\t") for line in text.splitlines())
        )

    link = json.loads(parts["link"] or "[]")
    link = link[0] if link else {}
    return {
        "public_key": parts["public_key"].strip(),
        "listen_port": parts["listen_port"].strip(),
        "fwmark": parts["fwmark"].strip(),
        "allowed_ips": peer_lines(parts["allowed_ips"]),
        "keepalive": peer_lines(parts["keepalive"]),
        "mtu": link.get("mtu"),
        "flags": sorted(link.get("flags", [])),
        "addresses": sorted(
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", [])
            if a.get("scope") != "link"
        ),
        "routes": sorted(
            _route(r)
            for fam in ("routes4", "routes6")
            for r in json.loads(parts[fam] or "[]")
            if not str(r.get("dst", "")).startswith("fe80:")
        ),
        "rules": sorted(
            json.dumps(r, sort_keys=True)
            for fam in ("rules4", "rules6")
            for r in json.loads(parts[fam] or "[]")
        ),
        "resolv_conf": parts["resolv_conf"],
    }


def assert_restart_builds_the_same(host, unit: str = "wg-quick@wg0") -> None:
    """The live interface equals what a restart of its service builds from the file."""
    live = fingerprint(host)
    # this check's own restart must not meet systemd's start limit (5 starts in 10 s)
    # that the formula's restarts before it approached: the formula copes on its own
    host.run(["systemctl", "reset-failed", unit])
    host.run(["systemctl", "restart", unit])
    assert host.unit_state(unit)[0] == "active"
    restarted = fingerprint(host)
    differs = {
        k: {"live": live[k], "after restart": restarted[k]} for k in live if live[k] != restarted[k]
    }
    assert not differs, (
        "the live interface differs from what `systemctl restart` builds:\n"
        + json.dumps(differs, indent=1, default=str)
    )
