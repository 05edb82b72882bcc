"""``wireguard.reresolve``: set a peer's endpoint again from the name in its config
file, when the name now resolves elsewhere (wg resolves a name only once, when the
interface starts). ``resolve`` and ``wg`` are handed in: nothing here runs a command.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_dump


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
