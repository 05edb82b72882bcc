"""The formula's pillar schema: the shape of ``wireguard`` and its normalisation.

``normalise_interface`` takes one pillar interface and returns it with each default
filled in and the secrets apart, appending every problem to ``errors``, each naming the
interface, the peer (or client) and the key. A message never shows a value a key could
be part of: it names its place. Nothing here knows the minion (its mine, files, routing
tables or firewall): ``wgf_pipeline`` runs the schema, then the networks compiler
(``wgf_networks``), then resolves the result against the minion's facts.
"""

import difflib
import ipaddress

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_clients
import wgf_confirm
import wgf_firewall
import wgf_hosts
import wgf_keys
import wgf_limits
import wgf_networkd
import wgf_options
from wgf_addr import shown
from wgf_options import dns_entry, strings

#: The keys of an interface besides the plain options of ``wgf_options.OPTIONS``.
OTHER_INTERFACE_KEYS = {
    "private_key": None,
    "pre_up": [],
    "post_up": [],
    "pre_down": [],
    "post_down": [],
    "routes": [],
    "forwarding": False,
    "masquerade": [],
    "purge_peers": True,
    "peers": {},
    "open_port": False,
    "access": None,
    "endpoint": None,
    "pool": [],
    "client_defaults": {},
    "client_groups": {},
    "clients": {},
    "max_key_age": None,
    "confirm": None,
    "hosts": None,
    "backend": None,
}


def interface_keys():
    """Every key of an interface and its default: ``enabled``, ``absent``, the plain
    options' rows (read at call time), then the others."""
    return {
        "enabled": True,
        "absent": False,
        **{row.key: row.default for row in wgf_options.rows()},
        **OTHER_INTERFACE_KEYS,
    }


INTERFACE_KEYS = interface_keys()
PEER_KEYS = {
    "public_key": None,
    "minion": None,
    "minion_interface": None,
    "allowed_ips": [],
    "endpoint": None,
    "persistent_keepalive": None,
    "preshared_key": None,
    "absent": False,
}
#: A client's keys; each but address, public_key and absent may come from client_defaults.
CLIENT_KEYS = {
    "address": [],
    "allowed_ips": None,
    "dns": [],
    "persistent_keepalive": None,
    "preshared_key": False,
    "public_key": None,
    "group": None,
    "expires": None,
    "enabled": True,
    "limits": None,
    "absent": False,
}
CLIENT_DEFAULT_KEYS = ("allowed_ips", "dns", "persistent_keepalive", "preshared_key", "limits")
#: A client group's keys: what its clients take (their own keys override them), and
#: ``group``, a parent group whose keys it takes in turn.
GROUP_KEYS = (*CLIENT_DEFAULT_KEYS, "group")
TOP_KEYS = {
    "lookup": None,
    "interfaces": {},
    "networks": {},
    "network_psks": {},
    "expect": [],  # reachability assertions (wgf_verify), checked by the pipeline
}
#: Where the pillar holds the preshared keys of networks (the ext_pillar's answer).
PSK_PILLAR = "wireguard:network_psks"
REFUSED_KEYS = {
    "save_config": "wg-quick would overwrite the file Salt manages with the live state "
    "at every stop; Salt already keeps the file and the live interface in step",
}


def unknown_keys(data, known, where):
    """Problems for keys of ``data`` not in ``known``, with a "did you mean" hint."""
    errors = []
    for key in data:
        if key in known:
            continue
        if key in REFUSED_KEYS:
            errors.append(f"{where}, key '{key}': refused: {REFUSED_KEYS[key]}")
            continue
        folded = {k.replace("_", ""): k for k in known}
        name = str(key)
        guess = folded.get(name.lower().replace("_", "").replace("-", ""))
        if not guess:
            close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
            guess = close[0] if close else None
        hint = f"; did you mean '{guess}'?" if guess else f"; known keys: {', '.join(known)}"
        errors.append(f"{where}: unknown key {shown(name)}{hint}")
    return errors


def mapping(value, where, what):
    """``value`` when it is a mapping (None is an empty one), else raise naming ``what``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SaltInvocationError(f"{where}: {what}, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------ values


def keepalive(value, where):
    if value is None or value == "off":
        return None
    return wgf_addr.integer(value, where, 0, 65535, "persistent_keepalive") or None


def boolean(value, where):
    if not isinstance(value, bool):
        raise SaltInvocationError(f"{where}: expected true or false, got {type(value).__name__}")
    return value


def interface_name_item(value, where):
    problem = wgf_addr.interface_name_problem(value)
    if problem:
        raise SaltInvocationError(
            f"{where}: {shown(value)} is not a valid interface name: {problem}"
        )
    return value


# --------------------------------------------------------------- interfaces


def _checked(data, defaults, checks, where, errors):
    """Each key of ``defaults`` from ``data``, through its check; problems go to errors."""
    out = {}
    for key, default in defaults.items():
        try:
            out[key] = checks[key](data.get(key, default), f"{where}, key '{key}'")
        except SaltInvocationError as exc:
            errors.append(str(exc))
            out[key] = default
    return out


def normalise_peer(ifname, pname, peer, errors):
    """One pillar peer, normalised, with problems appended to ``errors``."""
    where = f"interface {shown(ifname)}, peer {shown(pname)}"
    if not isinstance(peer, dict):
        errors.append(f"{where}: a peer is a mapping of keys, got {type(peer).__name__}")
        return None
    errors += unknown_keys(peer, PEER_KEYS, where)
    checks = {
        "public_key": lambda v, w: v if wgf_keys.is_key(v, w) else None,
        "minion": lambda v, w: wgf_addr.text(v, w) if v is not None else None,
        "minion_interface": lambda v, w: interface_name_item(wgf_addr.text(v, w), w) if v else None,
        "allowed_ips": lambda v, w: sorted(
            dict.fromkeys(wgf_addr.network(i, w) for i in wgf_addr.as_list(v)),
            key=wgf_addr.cidr_sort_key,
        ),
        "endpoint": lambda v, w: wgf_addr.endpoint(v, w) if v else None,
        "persistent_keepalive": keepalive,
        "preshared_key": wgf_keys.is_key,
        "absent": boolean,
    }
    out = {"name": pname, **_checked(peer, PEER_KEYS, checks, where, errors)}
    out["has_preshared_key"] = bool(out.pop("preshared_key"))
    out["preshared_key_pillar"] = (
        f"wireguard:interfaces:{ifname}:peers:{pname}:preshared_key"
        if out["has_preshared_key"]
        else None
    )
    out["client"] = False  # True only for the peers clients become (wgf_clients)
    if not out["public_key"] and not out["minion"] and not out["absent"]:
        errors.append(f"{where}: key 'public_key' is missing (or name a 'minion')")
    return out


def normalise_interface(ifname, iface, errors):
    """One pillar interface, normalised (peers keyed by their name as a string)."""
    where = f"interface {shown(ifname)}"
    if not isinstance(iface, dict):
        errors.append(f"{where}: an interface is a mapping of keys, got {type(iface).__name__}")
        return None
    keys = interface_keys()
    errors += unknown_keys(iface, keys, where)
    checks = {
        "enabled": boolean,
        "absent": boolean,
        **{row.key: row.check for row in wgf_options.rows()},
        "private_key": wgf_keys.is_key,
        "pre_up": strings,
        "post_up": strings,
        "pre_down": strings,
        "post_down": strings,
        "routes": lambda v, w: [wgf_addr.network(i, w) for i in wgf_addr.as_list(v)],
        "forwarding": boolean,
        "masquerade": lambda v, w: strings(v, w, interface_name_item),
        "purge_peers": boolean,
        "peers": lambda v, w: mapping(v, w, "peers is a mapping of peer name to peer"),
        "open_port": wgf_firewall.open_port,
        "access": wgf_firewall.access,
        "endpoint": lambda v, w: wgf_addr.text(v, w) if v is not None else None,
        "pool": lambda v, w: [wgf_addr.network(i, w) for i in wgf_addr.as_list(v)],
        "client_defaults": lambda v, w: mapping(v, w, "client_defaults is a mapping"),
        "client_groups": lambda v, w: mapping(
            v, w, "client_groups is a mapping of group name to group"
        ),
        "clients": lambda v, w: mapping(v, w, "clients is a mapping of client name to client"),
        "max_key_age": lambda v, w: (
            wgf_addr.integer(v, w, 1, 36500, "max_key_age (days)") if v is not None else None
        ),
        # checked here, made effective with lookup's by the pipeline (wgf_pipeline)
        "confirm": lambda v, w: wgf_confirm.check(v, ifname),
        # {domain} checked here; the names it gives are the pipeline's (wgf_hosts)
        "hosts": wgf_hosts.check,
        # wg-quick or networkd; made effective with lookup's by the pipeline
        "backend": wgf_networkd.check_backend,
    }
    out = {"name": ifname, **_checked(iface, keys, checks, where, errors)}
    out["has_private_key"] = out.pop("private_key")
    out["ipv6"] = any(ipaddress.ip_interface(a).version == 6 for a in out["address"])
    if out["mtu"] is not None and out["ipv6"] and out["mtu"] < 1280:
        errors.append(
            f"{where}, key 'mtu': {out['mtu']} is too small for IPv6; "
            "with an IPv6 address the mtu is 1280-65535"
        )
    peers = {}
    for pname, peer in out["peers"].items():
        try:
            name = wgf_addr.text(pname, f"{where}, peer {shown(pname)}: the peer name")
        except SaltInvocationError as exc:
            errors.append(str(exc))
            continue
        if name in peers:
            errors.append(f"{where}, peer {shown(name)}: named twice")
            continue
        normalised = normalise_peer(ifname, name, peer, errors)
        if normalised is not None:
            peers[name] = normalised
    out["peers"] = peers
    out["warnings"] = []
    normalise_clients(out, errors)
    return out


# ------------------------------------------------------------------ clients


def client_address(value, where):
    """One host address of a client (``a.b.c.d``, ``a.b.c.d/32``, ``v6/128``)."""
    address = ipaddress.ip_interface(wgf_addr.interface_address(value, where))
    if address.network.num_addresses != 1:
        raise SaltInvocationError(
            f"{where}: {shown(value)} is not one host; a client's "
            "address is an address, /32 or /128"
        )
    return str(address.ip)


def _client_checks(defaults_from):
    return {
        "address": lambda v, w: strings(v, w, client_address),
        "allowed_ips": lambda v, w: (
            [wgf_addr.network(i, w) for i in wgf_addr.as_list(v)]
            if v is not None
            else list(defaults_from)
        ),
        "dns": lambda v, w: strings(v, w, dns_entry),
        "persistent_keepalive": keepalive,
        "preshared_key": lambda v, w: boolean(bool(v) if v is None else v, w),
        "public_key": lambda v, w: v if wgf_keys.is_key(v, w) else None,
        "group": lambda v, w: wgf_addr.text(v, w) if v is not None else None,
        "expires": wgf_clients.expires,
        "enabled": boolean,
        "limits": wgf_limits.limits,
        "absent": boolean,
    }


def normalise_clients(out, errors):
    """The interface's clients, endpoint and pool, normalised in place."""
    where = f"interface {shown(out['name'])}"
    networks = wgf_clients.networks_of(out["address"])
    out["pool"] = out["pool"] or networks
    if out["endpoint"] is not None:
        try:
            if out["listen_port"]:
                out["endpoint"] = wgf_addr.endpoint_with_port(
                    out["endpoint"], out["listen_port"], f"{where}, key 'endpoint'"
                )
            else:
                out["endpoint"] = wgf_addr.endpoint(
                    out["endpoint"], f"{where}, key 'endpoint' (no listen_port to default to)"
                )
        except SaltInvocationError as exc:
            errors.append(str(exc))
            out["endpoint"] = None
    raw_defaults = out["client_defaults"]
    allowed = {k: CLIENT_KEYS[k] for k in CLIENT_DEFAULT_KEYS}
    errors += unknown_keys(raw_defaults, allowed, f"{where}, client_defaults")
    checks = _client_checks(networks)
    defaults = _checked(raw_defaults, allowed, checks, f"{where}, client_defaults", errors)
    base = _checked({}, CLIENT_KEYS, checks, where, errors)  # what a client gives no value for
    groups = _groups(out, checks, errors)
    clients = {}
    for name, client in out["clients"].items():
        here = f"{where}, client {shown(name)}"
        if not wgf_clients.is_client_name(name):
            errors.append(
                f"{here}: a client name is 1-64 characters of a-z A-Z 0-9 "
                "_ = + . - and does not start with '.' (it names the client's "
                "files)"
            )
            continue
        if name in out["peers"]:
            errors.append(f"{here}: a peer of this interface has the same name")
            continue
        client = {} if client is None else client
        if not isinstance(client, dict):
            errors.append(f"{here}: a client is a mapping of keys, got {type(client).__name__}")
            continue
        errors += unknown_keys(client, CLIENT_KEYS, here)
        given = {k: CLIENT_KEYS[k] for k in client if k in CLIENT_KEYS}
        own = _checked(client, given, checks, here, errors)
        group = groups.get(own.get("group"), {})
        if own.get("group") is not None and own["group"] not in groups:
            errors.append(
                f"{here}, key 'group': no client group {shown(own['group'])} "
                f"(client_groups: {', '.join(map(shown, groups)) or 'none'})"
            )
        elif group and not own.get("absent"):
            group["clients"].append(name)
        taken = {k: v for k, v in group.items() if k not in ("group", "clients")}
        normalised = {"name": name, **base, **defaults, **taken, **own}
        normalised = {k: list(v) if isinstance(v, list) else v for k, v in normalised.items()}
        normalised["byo"] = bool(normalised["public_key"])
        if not normalised["allowed_ips"] and not normalised["absent"]:
            errors.append(
                f"{here}, key 'allowed_ips': none given, and the interface has no "
                "address whose network it could default to"
            )
        clients[name] = normalised
    out["clients"] = clients
    out["client_groups"] = groups
    out["client_retired"] = []
    out["clients_managed"] = False


def _groups(out, checks, errors):
    """``{group: {its keys, with its parent groups' under them; "group": parent;
    "clients": []}}`` from the interface's ``client_groups``; problems (an unknown key or
    parent group, a cycle, a name a peer or client has) go to ``errors``."""
    where = f"interface {shown(out['name'])}"
    given = {}
    for name, group in out["client_groups"].items():
        here = f"{where}, client group {shown(name)}"
        if not wgf_clients.is_client_name(name):
            errors.append(f"{here}: a group name follows the rules of a client name")
            continue
        if name in out["peers"] or name in out["clients"]:
            errors.append(
                f"{here}: a peer or client of this interface has the same name (access "
                "rules name all three in 'from')"
            )
            continue
        group = {} if group is None else group
        if not isinstance(group, dict):
            errors.append(f"{here}: a group is a mapping of keys, got {type(group).__name__}")
            continue
        allowed = {k: CLIENT_KEYS[k] for k in GROUP_KEYS}
        errors += unknown_keys(group, allowed, here)
        keys = {k: allowed[k] for k in group if k in allowed}
        given[name] = _checked(group, keys, checks, here, errors)
    groups = {}
    for name in given:
        chain, parent = [name], given[name].get("group")
        while parent is not None:
            if parent not in given:
                errors.append(
                    f"{where}, client group {shown(chain[-1])}, key 'group': no client "
                    f"group {shown(parent)}"
                )
                break
            if parent in chain:
                errors.append(
                    f"{where}, client group {shown(name)}, key 'group': a group cycle: "
                    + " -> ".join(map(shown, [*chain, parent]))
                )
                break
            chain.append(parent)
            parent = given[parent].get("group")
        merged = {}
        for member in reversed(chain):
            merged.update(given[member])
        groups[name] = {**merged, "group": given[name].get("group"), "clients": []}
    return groups


def check_peer_conflicts(iface, own_public_key, errors):
    """No AllowedIPs prefix in two peers; no key twice; not the interface's own key."""
    owner, keys = {}, {}
    where = f"interface {shown(iface['name'])}"
    for pname, peer in iface["peers"].items():
        if peer["absent"]:
            continue
        key = peer["public_key"]
        if own_public_key and key == own_public_key:
            errors.append(
                f"{where}, peer {shown(pname)}, key 'public_key': this is the interface's "
                "own public key; a peer is the other end of the tunnel"
            )
        if key and key in keys:
            errors.append(
                f"{where}, peer {shown(pname)}, key 'public_key': the same key as "
                f"peer {shown(keys[key])}"
            )
        elif key:
            keys[key] = pname
        for cidr in peer["allowed_ips"]:
            if cidr in owner:
                errors.append(
                    f"{where}, peer {shown(pname)}, key 'allowed_ips': {cidr} is also in "
                    f"peer {shown(owner[cidr])}; WireGuard routes a prefix to one peer only"
                )
            else:
                owner[cidr] = pname


# ------------------------------------------------------------------ secrets


def secrets_of(pillar, iface):
    """``{"private_key", "preshared_keys": {peer name: key}}`` pillar gives one validated
    interface (``wgf_pipeline``'s), read from the ``wireguard`` pillar itself."""
    raw = (
        (pillar.get("interfaces") or {}).get(iface["name"]) if isinstance(pillar, dict) else None
    ) or {}
    raw_peers = {str(name): peer for name, peer in (raw.get("peers") or {}).items()}
    return {
        "private_key": raw.get("private_key") if iface["has_private_key"] else None,
        "preshared_keys": {
            name: _preshared_key(pillar, raw_peers, name, peer)
            for name, peer in iface["peers"].items()
            if peer["has_preshared_key"] and not peer.get("client")
        },
    }


def _preshared_key(pillar, raw_peers, name, peer):
    """A peer's preshared key: in its pillar peer, or (a network's) in network_psks."""
    path = peer["preshared_key_pillar"] or ""
    if path.startswith(PSK_PILLAR + ":"):
        netname, partner = path[len(PSK_PILLAR) + 1 :].rsplit(":", 1)
        return pillar["network_psks"][netname][partner]
    return raw_peers[name]["preshared_key"]


# --------------------------------------------------------------- live peers


def normalise_peer_change(interface, peer):
    """One live peer change (as ``wireguard.apply_peers`` takes it), checked."""
    if not isinstance(peer, dict):
        raise SaltInvocationError(
            f"interface {shown(interface)}: a peer change is a mapping, got {type(peer).__name__}"
        )
    key = peer.get("public_key")
    wgf_keys.decode(key, f"interface {shown(interface)}: public_key")
    where = f"interface {shown(interface)}, peer {wgf_keys.short(key)}"
    out = {"public_key": key}
    if peer.get("remove"):
        out["remove"] = True
        return out
    if peer.get("allowed_ips") is not None:
        out["allowed_ips"] = [
            wgf_addr.network(item, f"{where}, allowed_ips")
            for item in wgf_addr.as_list(peer["allowed_ips"])
        ]
    if peer.get("endpoint"):
        out["endpoint"] = wgf_addr.endpoint(peer["endpoint"], f"{where}, endpoint")
    if peer.get("persistent_keepalive") is not None:
        out["persistent_keepalive"] = (
            keepalive(peer["persistent_keepalive"], f"{where}, persistent_keepalive") or 0
        )
    if peer.get("preshared_key") is not None:
        psk = peer["preshared_key"]
        if psk:
            wgf_keys.decode(psk, f"{where}: preshared_key")
        out["preshared_key"] = psk or ""
    return out
