"""Clients: devices without Salt (phones, laptops) that an interface serves.

A client is a peer of the interface whose address comes from a pool and whose key is
made on the minion (or brought by the device: BYO). This file holds what is decided
about clients: names, the allocation of addresses (stable: kept in a record on the
minion, ``wgf_client_record``), the server-side peers they become, and the wg-quick
config a device imports (as text or a QR code).
"""

import datetime
import importlib.util
import io
import ipaddress
import os
import re

from salt.exceptions import SaltInvocationError

import wgf_files
import wgf_layout
import wgf_tc
from wgf_addr import ip as parse_ip
from wgf_addr import shown

#: Whether segno (QR codes) is installed. It is imported where a code is made: every
#: state run loads this module, and segno with xml.sax cost each one 6 ms (issue 24).
HAS_SEGNO = importlib.util.find_spec("segno") is not None

#: A client name is also a file name (<client>.conf, .key, .psk): no path, no dot first.
CLIENT_NAME = re.compile(r"[A-Za-z0-9_=+-][A-Za-z0-9_=+.-]{0,63}")
#: What a BYO client's config holds in place of the key only the device has.
PLACEHOLDER = "<this device's own private key>"
QR_KINDS = ("ansi", "utf8", "png", "svg")
QR_IMAGES = ("png", "svg")
#: A client's status in ``wireguard.clients`` (``over quota`` only where the counting
#: of ``limits`` says so).
STATUSES = ("active", "disabled", "expired", "over quota")
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6})\d*)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?"
)


def is_client_name(name):
    return isinstance(name, str) and CLIENT_NAME.fullmatch(name) is not None


# ------------------------------------------------------------------- expiry


def expires(value, where):
    """Pillar's ``expires`` as UTC ISO 8601 text (``2027-01-31T18:00:00Z``), or None.

    An ISO 8601 date or datetime (``T`` or a space between); no zone is UTC, and a date
    alone is 00:00:00Z of that day. YAML dates and datetimes are taken too."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        when = value
    elif isinstance(value, datetime.date):
        when = datetime.datetime(value.year, value.month, value.day)
    else:
        match = _ISO.fullmatch(value.strip()) if isinstance(value, str) else None
        try:
            if match is None:
                raise ValueError
            year, month, day, hour, minute, second, micro, zone = match.groups()
            tz = datetime.timezone.utc
            if zone and zone != "Z":
                digits = zone[1:].replace(":", "")
                offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
                tz = datetime.timezone(-offset if zone[0] == "-" else offset)
            when = datetime.datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                int((micro or "0").ljust(6, "0")),
                tzinfo=tz,
            )
        except (ValueError, OverflowError):
            raise SaltInvocationError(
                f"{where}: {shown(value)} is no ISO 8601 date or datetime (e.g. 2027-01-31 "
                "or 2027-01-31T18:00:00Z; UTC when no zone is given)"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        when = when.astimezone(datetime.timezone.utc)
    except OverflowError:
        raise SaltInvocationError(
            f"{where}: {shown(value)} is out of range of an ISO 8601 datetime in UTC"
        ) from None
    return when.isoformat(timespec="microseconds" if when.microsecond else "seconds").replace(
        "+00:00", "Z"
    )


def expires_at(client):
    """The client's ``expires`` as an aware datetime (UTC), or None."""
    text = client.get("expires")
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def utc_now():
    """The current time, as ``now`` is passed to the functions here."""
    return datetime.datetime.now(datetime.timezone.utc)


def status(client, now, use=None):
    """``active``, ``disabled`` (``enabled: false``), ``expired`` (``expires`` <= ``now``)
    or ``over quota`` (``use``, the counting of ``limits``, says ``over_quota``)."""
    if not client["enabled"]:
        return "disabled"
    when = expires_at(client)
    if when is not None and when <= now:
        return "expired"
    if (use or {}).get("over_quota"):
        return "over quota"
    return "active"


def set_status(iface, now):
    """Each present client of ``iface`` gets its ``status`` at ``now`` (no quota use:
    the apply knows none); only ``active`` ones become live peers (``allocate``)."""
    for client in iface["clients"].values():
        client["status"] = None if client["absent"] else status(client, now)


def next_expiry(iface, now):
    """The next instant (aware datetime, UTC) at which a client of the validated
    ``iface`` that is live now expires: the earliest ``expires`` after ``now`` of its
    enabled, present clients; None when there is none. A timer armed for it removes
    that client's live peer on time (the apply then finds it expired)."""
    future = [
        when
        for client in iface["clients"].values()
        if not client["absent"] and client["enabled"]
        for when in [expires_at(client)]
        if when is not None and when > now
    ]
    return min(future, default=None)


# --------------------------------------------------------------- allocation


def networks_of(addresses):
    """The networks of interface addresses, each once, in order."""
    return list(dict.fromkeys(str(ipaddress.ip_interface(a).network) for a in addresses))


def _host_range(net):
    """First and last usable address of a pool network, as integers."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.num_addresses > 2:
        first += 1  # the network (IPv6: subnet-router anycast) address
        if net.version == 4:
            last -= 1  # the broadcast address
    return first, last


def _in_pool(ip, pools):
    return any(ip in net for net in pools if net.version == ip.version)


class _Free:
    """The free addresses of one IP version's pools, lowest first; retired ones last."""

    def __init__(self, pools, taken, retired):
        self.ranges = [_host_range(net) for net in pools]
        self.taken, self.retired = taken, retired
        self.cursor = [first for first, _ in self.ranges]

    def next(self, version):
        for index, (_, last) in enumerate(self.ranges):
            while self.cursor[index] <= last:
                ip = (
                    parse_ip(self.cursor[index])
                    if version == 4
                    else ipaddress.IPv6Address(self.cursor[index])
                )
                self.cursor[index] += 1
                if ip not in self.taken and str(ip) not in self.retired:
                    return ip
        for text in list(self.retired):
            ip = parse_ip(text)
            if ip.version == version and ip not in self.taken:
                self.retired.remove(text)
                return ip
        return None


def allocate(iface, record, own_public_key, errors):
    """Give each client of the normalised ``iface`` its addresses and public key.

    Kept allocations stay; a new client gets the lowest free address of each IP
    version of the pool; revoked clients' addresses are retired and handed out only
    when nothing else is free. Sets ``address`` and ``public_key`` (None: to be made on
    the minion) of every client, ``client_retired``, and adds each client that has a
    key to ``peers`` as a client peer. Problems go to ``errors``.
    """
    where = f"interface {shown(iface['name'])}"
    clients = iface["clients"]
    pools = [ipaddress.ip_network(c) for c in iface["pool"]]
    versions = sorted({net.version for net in pools})
    taken = {ipaddress.ip_interface(a).ip: "the interface's own address" for a in iface["address"]}
    for pname, peer in iface["peers"].items():
        if peer["absent"]:
            continue
        for cidr in peer["allowed_ips"]:
            net = ipaddress.ip_network(cidr)
            if _in_pool(net.network_address, pools) and net.num_addresses <= 65536:
                for ip in net if net.num_addresses > 1 else [net.network_address]:
                    taken.setdefault(ip, f"peer {shown(pname)}")
    active = {name: c for name, c in sorted(clients.items()) if not c["absent"]}
    if active and not pools:
        errors.append(
            f"{where}, key 'pool': no pool: give the interface an address or a "
            "pool to take its clients' addresses from"
        )
    retired = [a for a in record["retired"] if _in_pool(parse_ip(a), pools)]
    for name, entry in sorted(record["clients"].items()):
        if name not in active:
            retired += [a for a in entry["address"] if a not in retired]
    chosen, label = {name: {} for name in active}, {n: f"client {shown(n)}" for n in active}
    recorded = {
        parse_ip(a): name
        for name in active
        for a in (record["clients"].get(name) or {}).get("address", [])
    }
    for name, client in active.items():  # addresses pillar gives
        for text in client["address"]:
            ip = ipaddress.ip_interface(text).ip
            here = f"{where}, client {shown(name)}, key 'address'"
            if not _in_pool(ip, pools):
                errors.append(
                    f"{here}: {ip} is outside the pool ({', '.join(iface['pool']) or 'none'})"
                )
            elif ip in taken:
                errors.append(f"{here}: {ip} is in use by {taken[ip]}")
            elif recorded.get(ip, name) != name:
                errors.append(f"{here}: {ip} is in use by client {shown(recorded[ip])}")
            elif ip.version in chosen[name]:
                errors.append(
                    f"{here}: two IPv{ip.version} addresses; a client has one "
                    "address per IP version"
                )
            else:
                taken[ip] = label[name]
                chosen[name][ip.version] = ip
    for name in active:  # allocations kept from earlier runs
        for text in (record["clients"].get(name) or {}).get("address", []):
            ip = parse_ip(text)
            if ip.version not in chosen[name] and _in_pool(ip, pools) and ip not in taken:
                taken[ip] = label[name]
                chosen[name][ip.version] = ip
    free = {v: _Free([n for n in pools if n.version == v], taken, retired) for v in versions}
    for name in active:  # new allocations
        for version in versions:
            if version in chosen[name]:
                continue
            ip = free[version].next(version)
            if ip is None:
                errors.append(
                    f"{where}, client {shown(name)}: the pool is full: no IPv{version} "
                    f"address of {', '.join(str(n) for n in pools if n.version == version)} "
                    "is free; widen 'pool' or revoke a client"
                )
                continue
            taken[ip] = label[name]
            chosen[name][version] = ip
    iface["client_retired"] = [a for a in retired if parse_ip(a) not in taken]
    keys = {own_public_key: "the interface's own key"} if own_public_key else {}
    keys.update(
        {
            p["public_key"]: f"peer {shown(n)}"
            for n, p in iface["peers"].items()
            if p["public_key"] and not p["absent"]
        }
    )
    for name, client in active.items():
        recorded = record["clients"].get(name) or {}
        client["address"] = [str(chosen[name][v]) for v in sorted(chosen[name])]
        if not client["public_key"] and not recorded.get("byo"):
            client["public_key"] = recorded.get("public_key")
        key = client["public_key"]
        if key in keys:
            errors.append(
                f"{where}, client {shown(name)}, key 'public_key': the same key as {keys[key]}"
            )
        elif key:
            keys[key] = label[name]
    _add_client_peers(iface)


def _add_client_peers(iface):
    """Each present, active client with a key and an address becomes a peer."""
    for name, client in sorted(iface["clients"].items()):
        live = client.get("status", "active") == "active"
        if not client["absent"] and client["public_key"] and client["address"] and live:
            iface["peers"][name] = server_peer(name, client)


def with_made_keys(iface, made):
    """The allocated ``iface`` as allocating it again finds it once the public keys
    ``made`` ({client: key}) are on record: a copy; ``iface`` and what it holds stay as
    they are (they are the run's cached value)."""
    clients = dict(iface["clients"])
    for name, key in made.items():
        clients[name] = {**clients[name], "public_key": key}
    peers = {name: peer for name, peer in iface["peers"].items() if not peer["client"]}
    out = {**iface, "clients": clients, "peers": peers}
    _add_client_peers(out)
    return out


def server_peer(name, client):
    """The peer a client is on the interface: its key, its addresses as /32 and /128."""
    return {
        "name": name,
        "public_key": client["public_key"],
        "minion": None,
        "minion_interface": None,
        "allowed_ips": [f"{a}/128" if ":" in a else f"{a}/32" for a in client["address"]],
        "endpoint": None,
        "persistent_keepalive": None,
        "has_preshared_key": client["preshared_key"],
        "preshared_key_pillar": None,
        "absent": False,
        "client": True,
    }


def held_back(iface):
    """``{public key: (client, status)}`` of the present clients that are no live peer
    now (disabled or expired): their addresses and keys stay on record."""
    return {
        client["public_key"]: (name, client["status"])
        for name, client in sorted(iface["clients"].items())
        if not client["absent"]
        and client["public_key"]
        and client.get("status", "active") not in ("active", "over quota")
    }


# ------------------------------------------------------------ client config


def client_config(iface, name, server_public_key, private_key=None, preshared_key=None):
    """The wg-quick config of client ``name`` of the validated ``iface``: what the device
    imports. A BYO client gets ``PLACEHOLDER`` in place of its private key."""
    client = iface["clients"][name]
    addresses = [str(ipaddress.ip_network(a)) for a in client["address"]]
    lines = [
        f"# {name}: a client of {iface['name']} (Salt wireguard formula)",
        "[Interface]",
        f"PrivateKey = {private_key or PLACEHOLDER}",
        f"Address = {', '.join(addresses)}",
    ]
    if client["dns"]:
        lines.append(f"DNS = {', '.join(client['dns'])}")
    lines += ["", "[Peer]", f"PublicKey = {server_public_key}"]
    if preshared_key:
        lines.append(f"PresharedKey = {preshared_key}")
    lines.append(f"AllowedIPs = {', '.join(client['allowed_ips'])}")
    lines.append(f"Endpoint = {iface['endpoint']}")
    if client["persistent_keepalive"]:
        lines.append(f"PersistentKeepalive = {client['persistent_keepalive']}")
    return "\n".join(lines) + "\n"


def qr_kind(kind, path):
    """``kind`` checked: one of QR_KINDS; the images only with a ``path`` to write to."""
    if kind is None:
        return None
    if kind not in QR_KINDS:
        raise SaltInvocationError(f"qr is one of {', '.join(QR_KINDS)}, not {shown(kind)}")
    if kind in QR_IMAGES and not path:
        raise SaltInvocationError(f"qr={kind} is an image: give path=DIR to write it to")
    if not HAS_SEGNO:
        raise SaltInvocationError("QR codes need segno on this minion (pip install segno)")
    return kind


def qr_code(text, kind):
    """``text`` as a QR code: terminal text (``ansi``, ``utf8``) or image bytes."""
    import segno

    code = segno.make(text, error="l", micro=False)
    if kind in QR_IMAGES:
        out = io.BytesIO()
        code.save(out, kind=kind, scale=6, border=4)
        return out.getvalue()
    out = io.StringIO()
    code.terminal(out=out, compact=kind == "utf8", border=2)
    return out.getvalue()


def qr_suffix(kind):
    return kind if kind in QR_IMAGES else f"{kind}.txt"


def _burst(client):
    """The burst in bytes tc allows the client's rate (``wgf_tc``), or None: no rate."""
    return wgf_tc.burst(client["limits"]["rate"]) if client["limits"].get("rate") else None


def listing(iface, live, now, use=None):
    """Each client of ``iface`` with its live peer (``wgf_dump`` shape, or None): no secret.

    ``status`` at ``now`` (``status``), ``expires``, ``group``, ``limits`` and ``use``:
    ``use`` is ``{client: {...}}`` from the counting of quotas (``wgf_quota.use``: its
    ``over_quota`` makes the status ``over quota``); a client without one has ``use``
    None."""
    peers = (live or {}).get("peers") or {}
    result = {}
    for name, client in sorted(iface["clients"].items()):
        if client["absent"]:
            continue
        counted = (use or {}).get(name)
        here = peers.get(client["public_key"]) or {}
        result[name] = {
            "status": status(client, now, counted),
            "expires": client["expires"],
            "group": client["group"],
            "limits": client["limits"] and {**client["limits"], "burst": _burst(client)},
            "use": counted,
            "address": client["address"],
            "public_key": client["public_key"],
            "byo": client["byo"],
            "preshared_key": client["preshared_key"],
            "allowed_ips": client["allowed_ips"],
            "live": bool(here),
            "endpoint": here.get("endpoint"),
            "latest_handshake": here.get("latest_handshake"),
            "latest_handshake_age": here.get("latest_handshake_age"),
            "rx_bytes": here.get("rx_bytes"),
            "tx_bytes": here.get("tx_bytes"),
        }
    return result


#: Where wg-quick looks for ``<interface>.conf``, whatever the formula's config_dir.
WG_QUICK_DIR = "/etc/wireguard"


def export_dir(path, config_dir):
    """``path`` as a directory only root can enter: made 0700, or refused when it
    exists and group or others may enter it, or when it is (or is inside) the config
    directory or wg-quick's, where a client's ``<client>.conf`` could replace an
    interface's."""
    if not isinstance(path, str) or not path:
        raise SaltInvocationError("path is a directory on the minion")
    for directory in dict.fromkeys([config_dir, WG_QUICK_DIR]):
        wgf_files.refuse_inside(
            path, directory, "path", "a client's config there could replace an interface's"
        )
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700)
        os.chmod(path, 0o700)
    elif os.stat(path).st_mode & 0o077:
        raise SaltInvocationError(
            f"{path} can be entered by group or others; give a directory only its owner "
            "can enter (or a new one, which is made 0700)"
        )
    return path


def export(directory, name, text, kind):
    """Write the config and the QR code of ``kind`` (or none) into ``directory``;
    return their paths."""
    written = {"config": os.path.join(directory, f"{name}.conf")}
    wgf_files.write_private(written["config"], text)
    if kind:
        written["qr"] = os.path.join(directory, f"{name}.{qr_suffix(kind)}")
        wgf_files.write_private(written["qr"], qr_code(text, kind))
    return written


def device_config(iface, ifname, name, config_dir, server_public_key):
    """``client_config`` of client ``name`` with its keys read from ``config_dir``;
    raise naming interface and client when it is not declared or not made yet."""
    client = (iface or {}).get("clients", {}).get(name)
    if not client or client["absent"]:
        raise SaltInvocationError(
            f"interface {shown(ifname)} has no client {shown(name)} in pillar"
        )
    if client.get("status") == "expired":
        raise SaltInvocationError(
            f"interface {shown(ifname)}, client {shown(name)}: expired at "
            f"{client['expires']}: no config is exported for an expired client (move its "
            "'expires' in pillar to give it access again)"
        )
    private = (
        None
        if client["byo"]
        else wgf_files.read_key(wgf_layout.Layout(config_dir).client_key(ifname, name, "key"))
    )
    psk = (
        wgf_files.read_key(wgf_layout.Layout(config_dir).client_key(ifname, name, "psk"))
        if client["preshared_key"]
        else None
    )
    missing = [
        what
        for what, there in (
            ("the interface's 'endpoint' in pillar", iface["endpoint"]),
            ("the interface's key", server_public_key),
            ("the client's key", client["byo"] or (private and client["public_key"])),
            ("the client's preshared key", psk or not client["preshared_key"]),
        )
        if not there
    ]
    if missing:
        raise SaltInvocationError(
            f"interface {shown(ifname)}, client {shown(name)}: no config yet: "
            f"{', '.join(missing)} missing (state.apply wireguard makes the keys)"
        )
    return client_config(iface, name, server_public_key, private, psk)
