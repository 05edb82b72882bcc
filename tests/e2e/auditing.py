"""Running `salt-run wireguard.audit` in the lab, for the e2e tests that need it."""

from __future__ import annotations

import json

SERIOUS = ("error", "warning")

# The reactor example (docs/audit.md), in the e2e lab's master config from its start: it
# reacts only to the wireguard beacon's stale events, which only tests that add the
# beacon cause, and it only re-resolves host-name endpoints (harmless elsewhere).
REACTOR_CONF_PATH = "/etc/salt/master.d/wgaudit-reactor.conf"
REACTOR_CONF = """\
reactor:
  - 'salt/beacon/*/wireguard/stale':
    - salt://reactor/wireguard-stale.sls
"""


def audit(lab, minions) -> dict:
    """`salt-run wireguard.audit` on these minions, as JSON (--out=json)."""
    data = lab.master.salt_run(
        "wireguard.audit", tgt=",".join(sorted(minions)), tgt_type="list", timeout=60
    )
    assert isinstance(data, dict) and "problems" in data, data
    return data


def report(lab, minions) -> str:
    out = lab.master.salt_run(
        "wireguard.audit", tgt=",".join(sorted(minions)), tgt_type="list", report="text", timeout=60
    )
    return out if isinstance(out, str) else json.dumps(out, indent=1)


def serious(data) -> set:
    """(check, minion, interface, other minion, other interface) of every error and
    warning between minions."""
    return {
        (p["check"], p["minion"], p["interface"], p["peer_minion"], p["peer_interface"])
        for p in data["problems"]
        if p["severity"] in SERIOUS
    }


def local_serious(data) -> dict:
    return {
        m: [f"{p['check']}: {p['message']}" for p in items if p["severity"] in SERIOUS]
        for m, items in data["local"].items()
        if any(p["severity"] in SERIOUS for p in items)
    }
