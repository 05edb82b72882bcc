"""The checks of ``wireguard.check`` on an interface's files and their agreement:
whether it exists where pillar says (presence), the files' modes and owners, the private
key's age, and drift: the config file against what pillar renders, and the live
interface against the config file. Each ``check_*`` takes the data
``wgf_health.check_interface`` documents and returns findings (``wgf_findings.problem``).
"""

import difflib
import ipaddress

import wgf_addr
import wgf_keys
from wgf_findings import APPLY_FIX, peer_label, peer_names, problem, service


def key_age_seconds(info, now):
    """Seconds since the private key file was last written (``info``: its stat as
    ``modes:key`` holds it, with ``mtime``), at ``now``; None without one. The one key
    age rule: ``wireguard.check``, the audit and ``wireguard.metrics``."""
    if not info or info.get("mtime") is None or now is None:
        return None
    return max(0.0, now - info["mtime"])


def key_age_days(data):
    """Days since the private key file was last written (None without one)."""
    age = key_age_seconds((data.get("modes") or {}).get("key"), data.get("now"))
    return None if age is None else round(age / 86400, 1)


def check_key_age(data):
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


def check_presence(data):
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
                f"{APPLY_FIX}, or {service(data, 'stop')}.",
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
                f"Start it: {service(data, 'start')} (its log says why it stopped).",
            )
        )
    return problems


def check_permissions(data):
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


def check_pillar_drift(data):
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


def check_drift(data):
    conf, live, link, name = data["conf"], data["live"], data["link"], data["name"]
    if conf is None or live is None:
        return []
    path, names = data["config_path"], peer_names(data)
    restart = f"Restart the interface: {service(data, 'restart')}."
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
                f"{peer_label(key, names)} is in {path} but not on the live {name}",
                sync,
                peer=key,
            )
        )
    for key in live["peers"].keys() - wanted.keys():
        problems.append(
            problem(
                "warning",
                "drift",
                f"{peer_label(key, names)} is on the live {name} but not in {path}: it is "
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
    label, path = peer_label(key, names), data["config_path"]
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
