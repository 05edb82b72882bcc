"""Running `salt-run wireguard.audit` in the lab, for the e2e tests that need it."""

from __future__ import annotations

import json

SERIOUS = ("error", "warning")


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
