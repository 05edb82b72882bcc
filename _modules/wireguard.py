"""
Manage WireGuard: keys, live interfaces and peers, and the formula's pillar.

:depends: PyNaCl (keys), ``wg`` from wireguard-tools (live interfaces)

Key functions are pure Python and work without ``wg``. Private and preshared keys
never reach a command line, a log line or a return value: ``wg`` reads them from
0600 files in a private temporary directory.

The pillar this module validates is documented in the formula's README; see
:py:func:`pillar_interfaces`.
"""

import base64
import binascii
import difflib
import hashlib
import ipaddress
import logging
import os
import re
import shutil
import socket
import tempfile
import time

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    import nacl.bindings
    import nacl.utils

    HAS_NACL = True
except ImportError:
    HAS_NACL = False

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"

DEFAULT_CONFIG_DIR = "/etc/wireguard"
INTERFACE_NAME = re.compile(r"^[a-zA-Z0-9_=+.-]{1,15}$")
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$"
)
TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MASK = "<hidden>"
#: Peers per ``wg set`` call, so the argv stays far below ARG_MAX.
PEERS_PER_CALL = 500

INTERFACE_KEYS = {
    "enabled": True,
    "absent": False,
    "address": [],
    "listen_port": None,
    "private_key": None,
    "dns": [],
    "mtu": None,
    "table": "auto",
    "fwmark": None,
    "pre_up": [],
    "post_up": [],
    "pre_down": [],
    "post_down": [],
    "routes": [],
    "forwarding": False,
    "masquerade": [],
    "purge_peers": True,
    "peers": {},
}
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
NETWORK_KEYS = {
    "interface": None,
    "listen_port": 51820,
    "topology": "mesh",
    "hubs": [],
    "nodes": {},
    "mtu": None,
    "purge_peers": True,
}
NODE_KEYS = {"address": None, "endpoint": None, "allowed_ips": [],
             "persistent_keepalive": None}
#: Keepalive a roaming node (no endpoint) sends toward the nodes it dials.
ROAMING_KEEPALIVE = 25
#: The mine function that publishes each minion's public keys.
MINE_FUNCTION = "wireguard.public_keys"
REFUSED_KEYS = {
    "save_config": "wg-quick would overwrite the file Salt manages with the live state "
    "at every stop; Salt already keeps the file and the live interface in step",
}


def __virtual__():
    # Loads without ``wg``: the key functions need only PyNaCl. Functions that need
    # ``wg`` say so when it is missing.
    if not HAS_NACL:
        return (False, "The wireguard module needs PyNaCl (python3-nacl / pip install pynacl)")
    return __virtualname__


# --------------------------------------------------------------------------- keys


def _decode_key(key, what="key"):
    """Return the 32 bytes of a base64 WireGuard key, or raise naming ``what``."""
    if not isinstance(key, str):
        raise SaltInvocationError(f"{what} must be a base64 string, not {type(key).__name__}")
    if CONTROL_CHARS.search(key) or key != key.strip():
        raise SaltInvocationError(f"{what} contains whitespace or a control character")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise SaltInvocationError(f"{what} is not valid base64") from None
    if len(raw) != 32:
        raise SaltInvocationError(
            f"{what} decodes to {len(raw)} bytes; a WireGuard key is 32 bytes "
            "(44 base64 characters)"
        )
    return raw


def _encode_key(raw):
    return base64.b64encode(raw).decode("ascii")


def _clamp(raw):
    clamped = bytearray(raw)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    return bytes(clamped)


def genkey():
    """
    Generate a private key, as ``wg genkey`` does: 32 random bytes, clamped, base64.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.genkey
    """
    return _encode_key(_clamp(nacl.utils.random(32)))


def pubkey(private_key):
    """
    Return the public key of a private key, as ``wg pubkey`` does.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.pubkey "$(cat /etc/wireguard/wg0.key)"
    """
    raw = _decode_key(private_key, "private key")
    return _encode_key(nacl.bindings.crypto_scalarmult_base(_clamp(raw)))


def genpsk():
    """
    Generate a preshared key, as ``wg genpsk`` does: 32 random bytes, base64.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.genpsk
    """
    return _encode_key(nacl.utils.random(32))


# ---------------------------------------------------------------- running ``wg``


def _wg(args, quiet=False):
    """Run ``wg ARGS`` and return its stdout; raise CommandExecutionError on failure.

    ``quiet`` keeps the output out of the log; ``wg show dump`` prints private keys.
    """
    if not salt.utils.path.which("wg"):
        raise CommandExecutionError(
            "The 'wg' command is missing: install wireguard-tools on this minion"
        )
    result = __salt__["cmd.run_all"](
        ["wg", *args],
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="quiet" if quiet else "debug",
        env={"LC_ALL": "C", "WG_HIDE_KEYS": "always"},
    )
    if result["retcode"] != 0:
        error = (result.get("stderr") or result.get("stdout") or "").strip()
        raise CommandExecutionError(f"wg {' '.join(args[:2])} failed: {error}")
    return result["stdout"]


def _optional_int(value):
    """A dump number; ``off``, ``0`` and ``(none)`` are None; fwmark comes as hex."""
    return None if value in ("off", "0", "(none)") else int(value, 0)


def _parse_dump(text, interface=None, psk_digests=False):
    """Parse ``wg show all dump`` (or ``wg show IF dump`` with ``interface``).

    Interface lines carry the private key and peer lines the preshared key: both are
    dropped here (a preshared key at most becomes its SHA-256 with ``psk_digests``),
    so nothing above this function ever sees them.
    """
    now = int(time.time())
    interfaces = {}
    for line in text.splitlines():
        if not line:
            continue
        fields = line.split("\t")
        if interface is not None:
            fields.insert(0, interface)
        name = fields[0]
        if len(fields) == 5:
            interfaces[name] = {
                "public_key": None if fields[2] == "(none)" else fields[2],
                "listen_port": _optional_int(fields[3]),
                "fwmark": _optional_int(fields[4]),
                "peers": {},
            }
        elif len(fields) == 9:
            handshake = int(fields[5])
            interfaces.setdefault(
                name, {"public_key": None, "listen_port": None, "fwmark": None, "peers": {}}
            )["peers"][fields[1]] = {
                "preshared_key": fields[2] != "(none)",
                "endpoint": None if fields[3] == "(none)" else fields[3],
                "allowed_ips": [] if fields[4] == "(none)" else fields[4].split(","),
                "latest_handshake": handshake or None,
                "latest_handshake_age": now - handshake if handshake else None,
                "rx_bytes": int(fields[6]),
                "tx_bytes": int(fields[7]),
                "persistent_keepalive": _optional_int(fields[8]),
            }
            if psk_digests:
                peer = interfaces[name]["peers"][fields[1]]
                peer["preshared_key_sha256"] = (
                    key_digest(fields[2]) if fields[2] != "(none)" else None)
        else:
            raise CommandExecutionError(
                f"Unexpected line in 'wg show dump' output with {len(fields)} fields"
            )
    return interfaces


def show(interface=None, psk_digests=False):
    """
    Return the live state of all WireGuard interfaces, or of one.

    Per interface: ``public_key``, ``listen_port``, ``fwmark`` and ``peers`` keyed by
    public key, each with ``endpoint``, ``allowed_ips``, ``latest_handshake`` (epoch
    seconds or None), ``latest_handshake_age`` (seconds), ``rx_bytes``, ``tx_bytes``,
    ``persistent_keepalive`` and ``preshared_key`` (True when one is set). No private
    or preshared key is returned; ``psk_digests=True`` adds each preshared key's
    SHA-256 as ``preshared_key_sha256``, so states can compare keys without seeing them.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.show
        salt '*' wireguard.show wg0 --out=json
    """
    if interface is None:
        return _parse_dump(_wg(["show", "all", "dump"], quiet=True), psk_digests=psk_digests)
    _check_interface_name(interface)
    _require_interface(interface)
    return _parse_dump(_wg(["show", interface, "dump"], quiet=True), interface, psk_digests)


def key_digest(key):
    """
    Return the SHA-256 (hex) of a key, to compare keys without showing them.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.key_digest "$(wg genpsk)"
    """
    return hashlib.sha256(str(key).strip().encode("ascii", "replace")).hexdigest()


def interfaces():
    """
    Return the names of the live WireGuard interfaces.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.interfaces
    """
    return _wg(["show", "interfaces"]).split()


def _require_interface(interface):
    if interface not in interfaces():
        raise CommandExecutionError(
            f"WireGuard interface '{interface}' does not exist on this minion; "
            f"bring it up first (systemctl start wg-quick@{interface})"
        )


# ------------------------------------------------------------------ live peers


def _peer_args(peer, keydir):
    """``wg set`` arguments for one peer dict; a preshared key goes into a file."""
    args = ["peer", peer["public_key"]]
    if peer.get("remove"):
        return [*args, "remove"]
    if peer.get("allowed_ips") is not None:
        args += ["allowed-ips", ",".join(peer["allowed_ips"])]
    if peer.get("endpoint"):
        args += ["endpoint", peer["endpoint"]]
    if peer.get("persistent_keepalive") is not None:
        args += ["persistent-keepalive", str(peer["persistent_keepalive"] or "off")]
    if peer.get("preshared_key") is not None:
        if peer["preshared_key"]:
            fd, path = tempfile.mkstemp(dir=keydir)
            with os.fdopen(fd, "w") as handle:
                handle.write(peer["preshared_key"] + "\n")
        else:
            path = "/dev/null"  # wg: an all-zero key from /dev/null removes it
        args += ["preshared-key", path]
    return args


def _normalise_peer_change(interface, peer):
    """Validate one peer change for ``apply_peers``; return it normalised."""
    where = f"interface '{interface}', peer '{peer.get('public_key')}'"
    _decode_key(peer.get("public_key"), f"{where}: public_key")
    out = {"public_key": peer["public_key"]}
    if peer.get("remove"):
        out["remove"] = True
        return out
    if peer.get("allowed_ips") is not None:
        out["allowed_ips"] = [
            _network(item, f"{where}, allowed_ips") for item in _as_list(peer["allowed_ips"])
        ]
    if peer.get("endpoint"):
        out["endpoint"] = _endpoint(peer["endpoint"], f"{where}, endpoint")
    if peer.get("persistent_keepalive") is not None:
        out["persistent_keepalive"] = _keepalive(
            peer["persistent_keepalive"], f"{where}, persistent_keepalive"
        ) or 0  # 0: turn it off
    if peer.get("preshared_key") is not None:
        psk = peer["preshared_key"]
        if psk:
            _decode_key(psk, f"{where}: preshared_key")
        out["preshared_key"] = psk or ""
    return out


def normalise_peer(interface, peer):
    """
    Validate one live peer change (a dict as ``apply_peers`` takes) and return it
    normalised; raise an error naming interface, peer and key when it is bad.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.normalise_peer wg0 '{public_key: "3cp0...=", allowed_ips: [10.0.0.2]}'
    """
    _check_interface_name(interface)
    return _normalise_peer_change(interface, peer)


def apply_peers(interface, peers=None, remove=None):
    """
    Apply many live peer changes to an interface with as few ``wg set`` calls as
    possible (one per 500 peers). Nothing is changed when any change is invalid.

    peers
        List of dicts with ``public_key`` and any of ``allowed_ips`` (list, replaces
        the peer's list; ``[]`` clears it), ``endpoint``, ``persistent_keepalive``
        (0 turns it off) and ``preshared_key`` (``""`` removes it).

    remove
        List of public keys to remove.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.apply_peers wg0 remove='["3cp0...="]'
    """
    _check_interface_name(interface)
    changes = [_normalise_peer_change(interface, peer) for peer in peers or []]
    changes += [_normalise_peer_change(interface, {"public_key": key, "remove": True})
                for key in remove or []]
    if not changes:
        return True
    keydir = tempfile.mkdtemp(prefix="wireguard-", dir="/run" if os.access("/run", os.W_OK)
                              else None)
    try:
        for start in range(0, len(changes), PEERS_PER_CALL):
            args = ["set", interface]
            for change in changes[start:start + PEERS_PER_CALL]:
                args += _peer_args(change, keydir)
            _wg(args)
    finally:
        shutil.rmtree(keydir, ignore_errors=True)
    return True


def set_peer(interface, public_key, allowed_ips=None, endpoint=None,
             persistent_keepalive=None, preshared_key=None):
    """
    Add a peer to a live interface, or change it. Arguments left at None keep the
    peer's current value. The preshared key never appears on a command line.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.set_peer wg0 "3cp0...=" allowed_ips='[10.0.0.2/32]' \\
            endpoint=vpn.example.com:51820 persistent_keepalive=25
    """
    return apply_peers(interface, peers=[{
        "public_key": public_key,
        "allowed_ips": allowed_ips,
        "endpoint": endpoint,
        "persistent_keepalive": persistent_keepalive,
        "preshared_key": preshared_key,
    }])


def remove_peer(interface, public_key):
    """
    Remove a peer from a live interface.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.remove_peer wg0 "3cp0...="
    """
    return apply_peers(interface, remove=[public_key])


def resolve_endpoint(endpoint):
    """
    Return the set of ``ip:port`` strings (IPv6 as ``[addr]:port``) an endpoint
    resolves to, the way ``wg`` prints a live endpoint.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.resolve_endpoint vpn.example.com:51820
    """
    host, port = _split_endpoint(_endpoint(endpoint, "endpoint"))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise CommandExecutionError(f"Endpoint '{endpoint}' does not resolve: {exc}") from None
    found = []
    for family, _, _, _, sockaddr in infos:
        text = f"[{sockaddr[0]}]:{port}" if family == socket.AF_INET6 else f"{sockaddr[0]}:{port}"
        if text not in found:
            found.append(text)
    return found


# --------------------------------------------------------------- validation


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [value]


def _text(value, where):
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise SaltInvocationError(f"{where}: expected a string, got {value!r}")
    value = str(value)
    if CONTROL_CHARS.search(value):
        raise SaltInvocationError(
            f"{where}: newlines and control characters are refused "
            "(they could inject lines into the config file)"
        )
    return value


def _network(value, where, strict_host=False):
    """A normalised CIDR (host bits cleared); a bare address becomes /32 or /128."""
    text = _text(value, where)
    try:
        net = ipaddress.ip_network(text, strict=strict_host)
    except ValueError:
        raise SaltInvocationError(f"{where}: '{text}' is not a valid CIDR") from None
    return str(net)


def _interface_address(value, where):
    text = _text(value, where)
    try:
        return str(ipaddress.ip_interface(text))
    except ValueError:
        raise SaltInvocationError(f"{where}: '{text}' is not a valid address/prefix") from None


def _int(value, where, low, high, what):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SaltInvocationError(f"{where}: {what} must be a number from {low} to {high}")
    try:
        number = int(value, 0) if isinstance(value, str) else value
    except ValueError:
        raise SaltInvocationError(
            f"{where}: '{value}' is not a number; {what} is {low}-{high}"
        ) from None
    if not low <= number <= high:
        raise SaltInvocationError(f"{where}: {number} is out of range; {what} is {low}-{high}")
    return number


def _port(value, where):
    return _int(value, where, 1, 65535, "a port")


def _keepalive(value, where):
    if value is None or value == "off":
        return None
    return _int(value, where, 0, 65535, "persistent_keepalive") or None


def _split_endpoint(endpoint):
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def _endpoint(value, where):
    """``host:port``, ``a.b.c.d:port`` or ``[v6]:port``, returned as written."""
    text = _text(value, where)
    match = re.fullmatch(r"\[([0-9A-Fa-f:.%a-zA-Z]+)\]:(\d+)", text)
    if match:
        try:
            ipaddress.IPv6Address(match.group(1))
        except ValueError:
            raise SaltInvocationError(
                f"{where}: '{match.group(1)}' is not an IPv6 address") from None
        _port(match.group(2), where)
        return text
    if text.count(":") > 1:
        raise SaltInvocationError(
            f"{where}: '{text}' looks like an IPv6 address without brackets; "
            "write it as [address]:port"
        )
    host, sep, port = text.partition(":")
    if not sep or not port:
        raise SaltInvocationError(
            f"{where}: '{text}' has no port; write host:port, a.b.c.d:port or [v6]:port"
        )
    if not HOSTNAME.match(host):
        raise SaltInvocationError(f"{where}: '{host}' is not a valid host name or address")
    if not port.isdigit():
        raise SaltInvocationError(f"{where}: port '{port}' is not a number")
    _port(port, where)
    return text


def _check_interface_name(name):
    if (not isinstance(name, str) or not INTERFACE_NAME.match(name)
            or name in (".", "..")):
        raise SaltInvocationError(
            f"interface '{name}': an interface name is 1-15 characters of "
            "a-z A-Z 0-9 _ = + . - (and not '.' or '..')"
        )
    return name


def _unknown_keys(data, known, where):
    """Refuse keys that are not in ``known``, with a "did you mean" hint."""
    errors = []
    for key in data:
        if key in known:
            continue
        if key in REFUSED_KEYS:
            errors.append(f"{where}, key '{key}': refused: {REFUSED_KEYS[key]}")
            continue
        folded = {k.replace("_", ""): k for k in known}
        guess = folded.get(str(key).lower().replace("_", "").replace("-", ""))
        if not guess:
            close = difflib.get_close_matches(str(key).lower(), list(known), n=1, cutoff=0.6)
            guess = close[0] if close else None
        hint = f"; did you mean '{guess}'?" if guess else f"; known keys: {', '.join(known)}"
        errors.append(f"{where}: unknown key '{key}'{hint}")
    return errors


def _strings(value, where, check=None):
    items = []
    for item in _as_list(value) if not isinstance(value, str) else [value]:
        text = _text(item, where)
        items.append(check(text, where) if check else text)
    return items


def _dns_entry(value, where):
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        if HOSTNAME.match(value):
            return value  # wg-quick takes a non-address as a search domain
    raise SaltInvocationError(f"{where}: '{value}' is neither an address nor a search domain")


def _iface_name_item(value, where):
    if not INTERFACE_NAME.match(value) or value in (".", ".."):
        raise SaltInvocationError(f"{where}: '{value}' is not a valid interface name")
    return value


def _table(value, where):
    if isinstance(value, bool):
        raise SaltInvocationError(f"{where}: table is auto, off, a number or a table name")
    if isinstance(value, int):
        return str(_int(value, where, 0, 2**32 - 1, "a table number"))
    text = _text(value, where)
    if text in ("auto", "off") or text.isdigit() or TABLE_NAME.match(text):
        return text
    raise SaltInvocationError(f"{where}: '{text}' is not auto, off, a number or a table name")


def _fwmark(value, where):
    if value is None or value in ("off", 0):
        return None
    return _int(value, where, 0, 2**32 - 1, "fwmark") or None


def _bool(value, where):
    if not isinstance(value, bool):
        raise SaltInvocationError(f"{where}: expected true or false, got {value!r}")
    return value


def _normalise_peer(ifname, pname, peer, errors):
    """Validate one pillar peer; append problems to ``errors``; return it normalised."""
    where = f"interface '{ifname}', peer '{pname}'"
    if not isinstance(peer, dict):
        errors.append(f"{where}: a peer is a mapping of keys, got {peer!r}")
        return None
    errors += _unknown_keys(peer, PEER_KEYS, where)
    out = {"name": pname}
    checks = {
        "public_key": lambda v, w: (_decode_key(v, w), v)[1] if v is not None else None,
        "minion": lambda v, w: _text(v, w) if v is not None else None,
        "minion_interface": lambda v, w: _iface_name_item(_text(v, w), w) if v else None,
        "allowed_ips": lambda v, w: sorted(
            dict.fromkeys(_network(i, w) for i in _as_list(v)), key=_cidr_sort_key),
        "endpoint": lambda v, w: _endpoint(v, w) if v else None,
        "persistent_keepalive": _keepalive,
        "preshared_key": lambda v, w: bool(v) and (_decode_key(v, w), True)[1],
        "absent": _bool,
    }
    for key, default in PEER_KEYS.items():
        value = peer.get(key, default)
        try:
            out[key] = checks[key](value, f"{where}, key '{key}'")
        except SaltInvocationError as exc:
            errors.append(str(exc))
            out[key] = default
    out["has_preshared_key"] = bool(out.pop("preshared_key"))
    out["preshared_key_pillar"] = (
        f"wireguard:interfaces:{ifname}:peers:{pname}:preshared_key"
        if out["has_preshared_key"] else None
    )
    if not out["public_key"] and not out["minion"] and not out["absent"]:
        errors.append(f"{where}: key 'public_key' is missing (or name a 'minion')")
    return out


def _cidr_sort_key(cidr):
    net = ipaddress.ip_network(cidr)
    return (net.version, int(net.network_address), net.prefixlen)


def _normalise_interface(ifname, iface, errors):
    where = f"interface '{ifname}'"
    if not isinstance(iface, dict):
        errors.append(f"{where}: an interface is a mapping of keys, got {iface!r}")
        return None
    errors += _unknown_keys(iface, INTERFACE_KEYS, where)
    checks = {
        "enabled": _bool,
        "absent": _bool,
        "address": lambda v, w: _strings(v, w, _interface_address),
        "listen_port": lambda v, w: _port(v, w) if v is not None else None,
        "private_key": lambda v, w: (_decode_key(v, w), True)[1] if v else False,
        "dns": lambda v, w: _strings(v, w, _dns_entry),
        "mtu": lambda v, w: _int(v, w, 576, 65535, "mtu") if v is not None else None,
        "table": _table,
        "fwmark": _fwmark,
        "pre_up": _strings,
        "post_up": _strings,
        "pre_down": _strings,
        "post_down": _strings,
        "routes": lambda v, w: [_network(i, w) for i in _as_list(v)],
        "forwarding": _bool,
        "masquerade": lambda v, w: _strings(v, w, _iface_name_item),
        "purge_peers": _bool,
        "peers": lambda v, w: v if isinstance(v, dict) else _raise(
            f"{w}: peers is a mapping of peer name to peer"),
    }
    out = {"name": ifname}
    for key, default in INTERFACE_KEYS.items():
        value = iface.get(key, default)
        try:
            out[key] = checks[key](value, f"{where}, key '{key}'")
        except SaltInvocationError as exc:
            errors.append(str(exc))
            out[key] = default
    out["has_private_key"] = out.pop("private_key")
    out["ipv6"] = any(ipaddress.ip_interface(a).version == 6 for a in out["address"])
    if out["mtu"] is not None and out["ipv6"] and out["mtu"] < 1280:
        errors.append(f"{where}, key 'mtu': {out['mtu']} is too small for IPv6; "
                      "with an IPv6 address the mtu is 1280-65535")
    peers = {}
    for pname, peer in out["peers"].items():
        try:
            _text(pname, f"{where}, peer name")
        except SaltInvocationError as exc:
            errors.append(str(exc))
            continue
        normalised = _normalise_peer(ifname, str(pname), peer, errors)
        if normalised is not None:
            peers[str(pname)] = normalised
    out["peers"] = peers
    out["warnings"] = []
    return out


def _raise(message):
    raise SaltInvocationError(message)


def _check_peer_conflicts(iface, own_public_key, errors):
    """No AllowedIPs prefix in two peers; no peer with the interface's own key."""
    owner = {}
    for pname, peer in iface["peers"].items():
        if peer["absent"]:
            continue
        if own_public_key and peer["public_key"] == own_public_key:
            errors.append(
                f"interface '{iface['name']}', peer '{pname}', key 'public_key': this is "
                "the interface's own public key; a peer is the other end of the tunnel"
            )
        for cidr in peer["allowed_ips"]:
            if cidr in owner:
                errors.append(
                    f"interface '{iface['name']}', peer '{pname}', key 'allowed_ips': "
                    f"{cidr} is also in peer '{owner[cidr]}'; WireGuard routes a prefix "
                    "to one peer only"
                )
            else:
                owner[cidr] = pname
    keys = {}
    for pname, peer in iface["peers"].items():
        key = peer["public_key"]
        if key and not peer["absent"]:
            if key in keys:
                errors.append(
                    f"interface '{iface['name']}', peer '{pname}', key 'public_key': "
                    f"the same key as peer '{keys[key]}'"
                )
            keys[key] = pname


def _config_dir(config_dir=None):
    if config_dir:
        return config_dir
    return __salt__["pillar.get"]("wireguard:lookup:config_dir", DEFAULT_CONFIG_DIR,
                                  unmask=True)


def _key_path(ifname, config_dir=None):
    return os.path.join(_config_dir(config_dir), f"{ifname}.key")


def _read_key_file(path):
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return None


def _own_public_key(ifname, private_key, config_dir):
    """The interface's public key from pillar's private key or its key file."""
    key = private_key or _read_key_file(_key_path(ifname, config_dir))
    try:
        return pubkey(key) if key else None
    except SaltInvocationError:
        return None


def _pillar_wireguard(pillar):
    if pillar is None:
        # unmask: Salt 3008 masks pillar.get outside renders; keys are needed here
        pillar = __salt__["pillar.get"]("wireguard", {}, unmask=True)
    if not isinstance(pillar, dict):
        raise SaltInvocationError("pillar 'wireguard' must be a mapping")
    return pillar


def _mine_public_keys(minions):
    """``{minion: {interface: key}}`` from the mine, fetched once per run."""
    cache = __context__.setdefault("wireguard.mine", {})
    wanted = sorted(set(minions) - set(cache))
    if wanted:
        found = __salt__["mine.get"](",".join(wanted), MINE_FUNCTION, tgt_type="list") or {}
        for minion in wanted:
            cache[minion] = found.get(minion)
    return {minion: cache[minion] for minion in minions}


def _resolve_minion_peers(iface):
    """Fill in public keys of peers named by ``minion`` from the mine.

    Mine data is untrusted: a value that is not exactly a 32-byte base64 key is
    refused, naming the minion. A peer without a usable key is left out of this run
    with a warning; the rest of the interface converges, the next run completes it.
    """
    pending = {p: peer for p, peer in iface["peers"].items()
               if peer["minion"] and not peer["public_key"] and not peer["absent"]}
    if not pending:
        return
    published = _mine_public_keys([peer["minion"] for peer in pending.values()])
    for pname, peer in pending.items():
        keys = published.get(peer["minion"])
        wanted = peer["minion_interface"] or iface["name"]
        if isinstance(keys, dict) and wanted not in keys and len(keys) == 1:
            wanted = next(iter(keys))
        key = keys.get(wanted) if isinstance(keys, dict) else None
        where = f"interface '{iface['name']}', peer '{pname}'"
        if key is None:
            iface["warnings"].append(
                f"{where}: minion '{peer['minion']}' has not published the public key of "
                f"'{wanted}' in the mine yet; the peer is added by a later run")
        else:
            try:
                _decode_key(key, "it")
                peer["public_key"] = key
                continue
            except SaltInvocationError as exc:
                iface["warnings"].append(
                    f"{where}: refused the mine value minion '{peer['minion']}' published "
                    f"for '{wanted}' ({exc}); the peer is left out until it is a valid key")
        del iface["peers"][pname]


def _endpoint_with_port(endpoint, port):
    """A node's endpoint, with the network's port when it names none."""
    try:
        return f"[{ipaddress.IPv6Address(endpoint.strip('[]'))}]:{port}"
    except ValueError:
        pass
    if re.search(r":\d+$", endpoint):
        return endpoint
    return f"{endpoint}:{port}"


def _host_address(cidr):
    address = ipaddress.ip_interface(cidr)
    return str(ipaddress.ip_network(address.ip))


def _network_interfaces(networks, minion, errors):
    """The interfaces (as pillar would write them) that ``networks`` give ``minion``."""
    built = {}
    if not isinstance(networks, dict):
        errors.append("wireguard:networks must be a mapping of network name to network")
        return built
    for netname, net in networks.items():
        where = f"network '{netname}'"
        if not isinstance(net, dict):
            errors.append(f"{where}: a network is a mapping of keys")
            continue
        errors += _unknown_keys(net, NETWORK_KEYS, where)
        nodes = net.get("nodes") or {}
        if minion not in nodes:
            continue
        topology = net.get("topology", "mesh")
        hubs = _as_list(net.get("hubs"))
        ifname = net.get("interface")
        bad = [f"{where}, key 'topology': '{topology}' is not mesh or hub"
               for _ in [1] if topology not in ("mesh", "hub")]
        bad += [f"{where}, key 'hubs': '{h}' is not a node" for h in hubs if h not in nodes]
        bad += [f"{where}: topology hub needs at least one hub in 'hubs'"
                for _ in [1] if topology == "hub" and not hubs]
        bad += [f"{where}, key 'interface' is missing" for _ in [1] if not ifname]
        for node_id, node in nodes.items():
            if not isinstance(node, dict) or not node.get("address"):
                bad.append(f"{where}, node '{node_id}': key 'address' is missing")
            else:
                bad += _unknown_keys(node, NODE_KEYS, f"{where}, node '{node_id}'")
        if bad:
            errors += bad
            continue
        try:
            addresses = {n: _interface_address(node["address"], f"{where}, node '{n}', "
                                               "key 'address'") for n, node in nodes.items()}
            port = _port(net.get("listen_port", NETWORK_KEYS["listen_port"]),
                         f"{where}, key 'listen_port'")
        except SaltInvocationError as exc:
            errors.append(str(exc))
            continue
        me = nodes[minion]
        is_hub = topology == "hub" and minion in hubs
        if topology == "mesh" or is_hub:
            partners = [n for n in nodes if n != minion]
        else:
            partners = [h for h in hubs if h != minion]
        peers = {}
        for node_id in partners:
            node = nodes[node_id]
            allowed = [_host_address(addresses[node_id])]
            if topology == "mesh" or is_hub:
                allowed += _as_list(node.get("allowed_ips"))
            elif node_id == hubs[0]:
                # A spoke reaches the whole network, and every other node's networks,
                # through its first hub; other hubs only at their own address.
                allowed = [str(ipaddress.ip_interface(addresses[node_id]).network)]
                allowed += [c for n, other in nodes.items() if n != minion
                            for c in _as_list(other.get("allowed_ips"))]
            peer = {"minion": node_id, "minion_interface": ifname, "allowed_ips": allowed}
            if node.get("endpoint"):
                peer["endpoint"] = _endpoint_with_port(str(node["endpoint"]), port)
                keepalive = me.get("persistent_keepalive")
                if keepalive is None and not me.get("endpoint"):
                    keepalive = ROAMING_KEEPALIVE
                if keepalive is not None:
                    peer["persistent_keepalive"] = keepalive
            peers[node_id] = peer
        iface = {"address": me["address"], "listen_port": port, "peers": peers,
                 "forwarding": is_hub or bool(_as_list(me.get("allowed_ips"))),
                 "purge_peers": net.get("purge_peers", True)}
        if net.get("mtu") is not None:
            iface["mtu"] = net["mtu"]
        if ifname in built:
            errors.append(f"{where}: interface '{ifname}' is used by another network too")
        built[ifname] = iface
    return built


def _validated(pillar=None, config_dir=None):
    """Validate pillar ``wireguard``; return (interfaces, secrets) or raise every error."""
    pillar = _pillar_wireguard(pillar)
    errors = _unknown_keys(pillar, {"lookup": 1, "interfaces": 1, "networks": 1}, "wireguard")
    raw_interfaces = pillar.get("interfaces") or {}
    if not isinstance(raw_interfaces, dict):
        raise SaltInvocationError("wireguard:interfaces must be a mapping of name to interface")
    from_networks = _network_interfaces(pillar.get("networks") or {}, __opts__["id"], errors)
    for ifname in set(from_networks) & set(raw_interfaces):
        errors.append(f"interface '{ifname}': declared under both interfaces and networks")
    raw_interfaces = {**from_networks, **raw_interfaces}
    result, secrets = {}, {}
    for ifname, iface in raw_interfaces.items():
        try:
            _check_interface_name(ifname)
        except SaltInvocationError as exc:
            errors.append(str(exc))
            continue
        normalised = _normalise_interface(ifname, iface, errors)
        if normalised is None:
            continue
        private_key = iface.get("private_key") if normalised["has_private_key"] else None
        psks = {p: iface["peers"][p].get("preshared_key")
                for p, peer in normalised["peers"].items() if peer["has_preshared_key"]}
        if not errors:
            _resolve_minion_peers(normalised)
        _check_peer_conflicts(
            normalised, _own_public_key(ifname, private_key, config_dir), errors)
        result[ifname] = normalised
        secrets[ifname] = {"private_key": private_key, "preshared_keys": psks}
    if errors:
        raise SaltInvocationError(
            "Invalid wireguard pillar (nothing was changed):\n- " + "\n- ".join(errors))
    return result, secrets


def pillar_interfaces(pillar=None, config_dir=None):
    """
    Return the interfaces pillar ``wireguard`` declares, validated and normalised,
    with every default filled in and no secret: ``has_private_key`` and each peer's
    ``has_preshared_key`` say whether pillar holds one.

    Raises an error that lists every problem (naming interface, peer and key) when the
    pillar is bad; the formula calls this while rendering, so a bad pillar fails the
    run before anything changes.

    pillar
        The ``wireguard`` pillar to check instead of this minion's.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.pillar_interfaces
    """
    return _validated(pillar, config_dir)[0]


# ------------------------------------------------------------ rendering


def _masquerade_lines(iface):
    """PostUp/PostDown lines that forward and NAT traffic from the tunnel."""
    sources = [ipaddress.ip_interface(a).network for a in iface["address"]]
    sources += [ipaddress.ip_network(c) for p in iface["peers"].values()
                if not p["absent"] for c in p["allowed_ips"]]
    up, down = [], []
    for version, tool in ((4, "iptables"), (6, "ip6tables")):
        nets = list(ipaddress.collapse_addresses(n for n in sources if n.version == version))
        if not nets:
            continue
        rules = ["FORWARD -i %i -j ACCEPT",
                 "FORWARD -o %i -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
        rules += [f"-t nat POSTROUTING -s {net} -o {out} -j MASQUERADE"
                  for out in iface["masquerade"] for net in nets]
        for rule in rules:
            table, chain = (("-t nat ", rule[len("-t nat "):]) if rule.startswith("-t nat ")
                            else ("", rule))
            up.append(f"{tool} -w {table}-A {chain}")
            down.append(f"{tool} -w {table}-D {chain}")
    return up, down


def route_command(cidr):
    """
    The command that routes ``cidr`` into the interface (``%i``), as the formula
    writes it into PostUp and runs it live.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.route_command 172.16.1.0/24
    """
    return f"ip route replace {_network(cidr, 'route')} dev %i proto static"


def _render(iface, private_key, psks):
    """The wg-quick config text of one normalised interface."""
    lines = [
        "# Managed by Salt (wireguard formula): local changes are overwritten.",
        "[Interface]",
    ]
    if private_key:
        lines.append(f"PrivateKey = {private_key}")
    settings = [
        ("Address", ", ".join(iface["address"])),
        ("ListenPort", iface["listen_port"]),
        ("DNS", ", ".join(iface["dns"])),
        ("MTU", iface["mtu"]),
        ("Table", None if iface["table"] == "auto" else iface["table"]),
        ("FwMark", None if iface["fwmark"] is None else hex(iface["fwmark"])),
    ]
    lines += [f"{key} = {value}" for key, value in settings if value not in (None, "")]
    nat_up, nat_down = _masquerade_lines(iface) if iface["masquerade"] else ([], [])
    hooks = {
        "PreUp": iface["pre_up"],
        "PostUp": iface["post_up"] + nat_up,
        "PreDown": iface["pre_down"],
        "PostDown": iface["post_down"] + nat_down,
    }
    for key, commands in hooks.items():
        lines += [f"{key} = {command}" for command in commands]
    lines += [f"PostUp = {route_command(cidr)}" for cidr in iface["routes"]]
    for pname, peer in iface["peers"].items():
        if peer["absent"] or not peer["public_key"]:
            continue
        lines += ["", "[Peer]", f"# {pname}", f"PublicKey = {peer['public_key']}"]
        if peer["has_preshared_key"]:
            lines.append(f"PresharedKey = {psks.get(pname) or MASK}")
        if peer["allowed_ips"]:
            lines.append(f"AllowedIPs = {', '.join(peer['allowed_ips'])}")
        if peer["endpoint"]:
            lines.append(f"Endpoint = {peer['endpoint']}")
        if peer["persistent_keepalive"]:
            lines.append(f"PersistentKeepalive = {peer['persistent_keepalive']}")
    return "\n".join(lines) + "\n"


def render_config(interface, config_dir=None, mask=True, pillar=None):
    """
    Return the wg-quick config the formula writes for ``interface`` from pillar.
    Keys show as ``<hidden>`` unless ``mask=False`` (the formula's states use that;
    the private key then comes from pillar or ``<config_dir>/<interface>.key``).

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.render_config wg0
    """
    interfaces, secrets = _validated(pillar, config_dir)
    if interface not in interfaces:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    iface = interfaces[interface]
    if mask:
        return _render(iface, MASK, {})
    private_key = (secrets[interface]["private_key"]
                   or _read_key_file(_key_path(interface, config_dir)))
    return _render(iface, private_key, secrets[interface]["preshared_keys"])


def pillar_private_key(interface, pillar=None):
    """
    Return the private key pillar gives ``interface``, or None. For the formula's
    states only: it is a secret, keep it out of returns and logs.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.pillar_private_key wg0 --out=quiet
    """
    _check_interface_name(interface)
    iface = (_pillar_wireguard(pillar).get("interfaces") or {}).get(interface) or {}
    key = iface.get("private_key")
    if key:
        _decode_key(key, f"interface '{interface}', key 'private_key'")
    return key or None


def public_keys(config_dir=None):
    """
    Return ``{interface: public key}`` for this minion's WireGuard interfaces: those
    with a key file in the config directory, and any other live one. Meant for the
    mine; no private key leaves the minion.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.public_keys
    """
    directory = _config_dir(config_dir)
    keys = {}
    if os.path.isdir(directory):
        for entry in sorted(os.listdir(directory)):
            name, ext = os.path.splitext(entry)
            if ext != ".key" or not INTERFACE_NAME.match(name):
                continue
            try:
                keys[name] = pubkey(_read_key_file(os.path.join(directory, entry)) or "")
            except SaltInvocationError:
                log.warning("wireguard: %s holds no valid private key", entry)
    if salt.utils.path.which("wg"):
        for name, iface in show().items():
            if iface["public_key"]:
                keys.setdefault(name, iface["public_key"])
    return keys
