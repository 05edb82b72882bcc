"""What every check of ``wireguard.check`` shares: a finding's shape (``problem``), how
it names a peer, and the fix commands it quotes (apply the formula, start or restart
the interface's service).
"""

import wgf_keys

SEVERITIES = ("error", "warning", "info")
APPLY_FIX = "Run salt-call state.apply wireguard on this minion"


def problem(severity, check, message, fix, peer=None):
    """One finding: ``peer`` is the peer's public key, or None for the interface."""
    return {"severity": severity, "check": check, "peer": peer, "message": message, "fix": fix}


def peer_label(key, names):
    name = (names or {}).get(key)
    return f"peer '{name}' ({wgf_keys.short(key)})" if name else f"peer {wgf_keys.short(key)}"


def peer_names(data):
    names = {}
    if data.get("pillar"):
        names.update(
            {p["public_key"]: n for n, p in data["pillar"]["peers"].items() if p["public_key"]}
        )
    for peer in (data.get("conf") or {}).get("peers", []):
        if peer["public_key"] and peer["name"]:
            names[peer["public_key"]] = peer["name"]
    return names


def service_command(action, service, init=None):
    """The command that starts, stops or restarts an interface's service."""
    if init == "openrc" or (init is None and "@" not in service):
        return f"rc-service {service} {action}"
    return f"systemctl {action} {service}"


def service(data, action):
    return service_command(action, data["service"], data.get("init"))
