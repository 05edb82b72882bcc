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


def _network(value, where):
    """A normalised CIDR (host bits cleared); a bare address becomes /32 or /128."""
    text = _text(value, where)
    try:
        net = ipaddress.ip_network(text, strict=False)
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
        "public_key": lambda v, w: v if _is_key(v, w) else None,
        "minion": lambda v, w: _text(v, w) if v is not None else None,
        "minion_interface": lambda v, w: _iface_name_item(_text(v, w), w) if v else None,
        "allowed_ips": lambda v, w: sorted(
            dict.fromkeys(_network(i, w) for i in _as_list(v)), key=_cidr_sort_key),
        "endpoint": lambda v, w: _endpoint(v, w) if v else None,
        "persistent_keepalive": _keepalive,
        "preshared_key": _is_key,
        "absent": _bool,
    }
    out.update(_checked(peer, PEER_KEYS, checks, where, errors))
    out["has_preshared_key"] = bool(out.pop("preshared_key"))
    out["preshared_key_pillar"] = (
        f"wireguard:interfaces:{ifname}:peers:{pname}:preshared_key"
        if out["has_preshared_key"] else None
    )
    if not out["public_key"] and not out["minion"] and not out["absent"]:
        errors.append(f"{where}: key 'public_key' is missing (or name a 'minion')")
    return out


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


def _is_key(value, where):
    """True when a (valid) key is given, False when none is."""
    if not value:
        return False
    _decode_key(value, where)
    return True


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
        "private_key": _is_key,
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
    out = {"name": ifname, **_checked(iface, INTERFACE_KEYS, checks, where, errors)}
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


# ---- diagnostics
#
# ``check`` looks at this minion's interfaces and says what is wrong and how to fix it;
# ``reresolve`` sets host-name endpoints again (for a peer behind dynamic DNS);
# ``config_peers`` says what a config file holds. Gathering (commands, files) is kept
# apart from judging: each ``_check_*`` function takes plain data (see
# ``_check_interface``) and returns problems, so every check is unit-tested without a
# live interface. No private or preshared key ever reaches a result.

#: Seconds without a handshake, while traffic is sent, after which a peer is stale.
#: WireGuard renews a session every 120 s while it carries traffic and drops its keys
#: after 180 s, so a working link never goes past this.
STALE_AFTER = 180
#: Bytes WireGuard adds to each packet, by the IP version of the underlay: the outer
#: IP header (20 or 40), UDP (8) and WireGuard's own header and tag (32).
WG_OVERHEAD = {4: 60, 6: 80}
#: At most this many distinct endpoint addresses get an ``ip route get`` for the MTU
#: check, so a hub with thousands of peers is checked in bounded time.
MTU_PROBES = 64
#: Per interface, at most this many info lines go into the readable summary.
SUMMARY_INFOS = 10
SEVERITIES = ("error", "warning", "info")
#: Size of a WireGuard keepalive as the transfer counters count it (header and tag).
KEEPALIVE_BYTES = 32
_CONF_SECRET = re.compile(r"^(\s*(?:PrivateKey|PresharedKey)\s*=\s*).*$",
                          re.MULTILINE | re.IGNORECASE)
_CONF_ROUTE = re.compile(r"^ip route replace (\S+) dev %i proto static$")


def _problem(severity, check, message, fix, peer=None):
    """One finding: ``peer`` is the peer's public key, or None for the interface."""
    return {"severity": severity, "check": check, "peer": peer, "message": message,
            "fix": fix}


def _short(key):
    return f"{key[:8]}..." if key else "(none)"


def _peer_label(key, names):
    name = (names or {}).get(key)
    return f"peer '{name}' ({_short(key)})" if name else f"peer {_short(key)}"


def _is_address(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _endpoint_ip(endpoint):
    """The address of a live endpoint (``1.2.3.4:5`` or ``[v6]:5``), or None."""
    if not endpoint:
        return None
    host = endpoint.rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


# ------------------------------------------------------------------ config files


def _parse_conf(text):
    """Parse a wg-quick config into plain data without any secret.

    The private key is replaced by its public key (``public_key``), a preshared key by
    ``has_preshared_key``. A peer's name is the first comment after its ``[Peer]`` line
    (the formula writes ``# <name>`` there). The formula's route lines
    (``PostUp = ip route replace <cidr> dev %i proto static``) become ``routes``.
    Values that cannot be read are described in ``errors`` (never quoting a key).
    """
    conf = {"address": [], "listen_port": None, "mtu": None, "table": None,
            "fwmark": None, "public_key": None, "has_private_key": False, "routes": [],
            "peers": [], "errors": []}
    section, peer = None, None

    def bad(number, what):
        conf["errors"].append(f"line {number}: {what}")

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            if section == "peer" and peer["name"] is None and not peer["_seen_key"]:
                peer["name"] = line.lstrip("#").strip() or None
            continue
        line = line.split("#", 1)[0].strip()  # wg-quick drops everything after '#'
        if not line:
            continue
        if line.startswith("["):
            header = line.strip("[]").strip().lower()
            section = header if header in ("interface", "peer") else None
            if section is None:
                bad(number, f"unknown section {line}")
            if section == "peer":
                peer = {"name": None, "public_key": None, "allowed_ips": [],
                        "endpoint": None, "persistent_keepalive": None,
                        "has_preshared_key": False, "_seen_key": False}
                conf["peers"].append(peer)
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or section is None:
            bad(number, "not a 'Key = value' line of a section")
            continue
        try:
            if section == "interface":
                _conf_interface_value(conf, key, value)
            else:
                peer["_seen_key"] = True
                _conf_peer_value(peer, key, value)
        except (ValueError, SaltInvocationError) as exc:
            bad(number, str(exc))
    for item in conf["peers"]:
        del item["_seen_key"]
    return conf


def _conf_int(value, what):
    if value.lower() == "off":
        return None
    try:
        return int(value, 0)
    except ValueError:
        raise ValueError(f"{what} '{value}' is not a number") from None


def _conf_interface_value(conf, key, value):
    if key == "address":
        for item in _as_list(value):
            try:
                conf["address"].append(str(ipaddress.ip_interface(item)))
            except ValueError:
                raise ValueError(f"Address '{item}' is not an address/prefix") from None
    elif key == "listenport":
        conf["listen_port"] = _conf_int(value, "ListenPort")
    elif key == "mtu":
        conf["mtu"] = _conf_int(value, "MTU")
    elif key == "table":
        conf["table"] = value
    elif key == "fwmark":
        conf["fwmark"] = _conf_int(value, "FwMark") or None
    elif key == "privatekey":
        conf["has_private_key"] = True
        try:
            conf["public_key"] = pubkey(value)
        except SaltInvocationError:
            raise ValueError("PrivateKey is not a valid key") from None
    elif key == "postup":
        match = _CONF_ROUTE.match(value)
        if match:
            conf["routes"].append(str(ipaddress.ip_network(match.group(1), strict=False)))


def _conf_peer_value(peer, key, value):
    if key == "publickey":
        _decode_key(value, "PublicKey")
        peer["public_key"] = value
    elif key == "presharedkey":
        peer["has_preshared_key"] = bool(value)
    elif key == "allowedips":
        for item in _as_list(value):
            try:
                peer["allowed_ips"].append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"AllowedIPs '{item}' is not a CIDR") from None
    elif key == "endpoint":
        peer["endpoint"] = value
    elif key == "persistentkeepalive":
        peer["persistent_keepalive"] = _conf_int(value, "PersistentKeepalive") or None


def _conf_path(interface, config_dir=None):
    return os.path.join(_config_dir(config_dir), f"{interface}.conf")


def _read_conf(interface, config_dir=None):
    """(path, parsed conf or None, raw text or None, error or None)."""
    path = _conf_path(interface, config_dir)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return path, None, None, None
    except OSError as exc:
        return path, None, None, f"{path} cannot be read: {exc.strerror}"
    return path, _parse_conf(text), text, None


def config_peers(interface, config_dir=None):
    """
    Return the peers ``<config_dir>/<interface>.conf`` holds, keyed by public key:
    ``name`` (the comment the formula writes above each peer), ``endpoint`` as
    written, ``allowed_ips``, ``persistent_keepalive`` and ``has_preshared_key``.
    No key but the public ones is returned.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.config_peers wg0
    """
    _check_interface_name(interface)
    path, conf, _, error = _read_conf(interface, config_dir)
    if error:
        raise CommandExecutionError(error)
    if conf is None:
        raise CommandExecutionError(f"{path} does not exist")
    return {peer["public_key"]: {k: v for k, v in peer.items() if k != "public_key"}
            for peer in conf["peers"] if peer["public_key"]}


# --------------------------------------------------------------- gathering


def _ip_json(args):
    """``ip -j ARGS``, parsed; CommandExecutionError when ip fails."""
    import json  # here, not at the top: the diagnostics section keeps to itself

    result = __salt__["cmd.run_all"](["ip", "-j", *args], python_shell=False,
                                     ignore_retcode=True, output_loglevel="quiet")
    if result["retcode"] != 0:
        raise CommandExecutionError(
            f"ip {' '.join(args)}: {(result.get('stderr') or '').strip()}")
    try:
        return json.loads(result["stdout"] or "[]")
    except ValueError:
        raise CommandExecutionError(f"ip -j {' '.join(args)} printed no JSON") from None


def _live_link(interface):
    """``{"mtu": int, "addresses": [cidr]}`` of a live interface (no link-local)."""
    links = _ip_json(["addr", "show", "dev", interface])
    if not links:
        return None
    addresses = [str(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"))
                 for a in links[0].get("addr_info", [])
                 if a.get("local") and a.get("scope") != "link"]
    return {"mtu": links[0].get("mtu"), "addresses": addresses}


def _live_interface_routes(interface):
    """The destinations of every unicast route through ``interface``, in any table."""
    found = set()
    for family, default in (("-4", "0.0.0.0/0"), ("-6", "::/0")):
        for route in _ip_json([family, "route", "show", "table", "all", "dev", interface]):
            if route.get("type", "unicast") != "unicast":
                continue
            dst = route.get("dst", "")
            dst = default if dst == "default" else dst
            try:
                found.add(str(ipaddress.ip_network(dst, strict=False)))
            except ValueError:
                continue
    return sorted(found, key=_cidr_sort_key)


def _route_mtu(route):
    for metric in route.get("metrics") or []:
        if isinstance(metric, dict) and "mtu" in metric:
            value = metric["mtu"]
            if isinstance(value, list):  # "mtu lock 1400"
                value = next((v for v in value if isinstance(v, int)), None)
            return value if isinstance(value, int) else None
    return None


def _underlay(address, fwmark=None):
    """Where packets to a peer's endpoint go: ``{"dev", "mtu", "dev_mtu", "error"}``.

    With a fwmark the lookup carries it, as WireGuard's own packets do: a full tunnel
    (wg-quick's fwmark rule) would otherwise send the lookup into the tunnel itself.
    """
    args = ["route", "get", str(address)]
    if fwmark:
        args += ["mark", str(fwmark)]
    try:
        route = (_ip_json(args) or [{}])[0]
        dev = route.get("dev")
        link = _ip_json(["link", "show", "dev", dev]) if dev else []
    except CommandExecutionError as exc:
        return {"dev": None, "mtu": None, "dev_mtu": None, "error": str(exc)}
    return {"dev": dev, "mtu": _route_mtu(route),
            "dev_mtu": link[0].get("mtu") if link else None, "error": None}


def _forwarding():
    """``{"ipv4": bool, "ipv6": bool}`` from /proc/sys (None where unreadable)."""
    values = {}
    for family, path in (("ipv4", "/proc/sys/net/ipv4/ip_forward"),
                         ("ipv6", "/proc/sys/net/ipv6/conf/all/forwarding")):
        try:
            with open(path, encoding="ascii") as handle:
                values[family] = handle.read().strip() == "1"
        except OSError:
            values[family] = None
    return values


def _file_mode(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return {"path": path, "mode": stat.st_mode & 0o7777, "uid": stat.st_uid}


def _resolve_all(endpoints):
    """``{endpoint: {"addresses": [ip:port], "error": None or text}}``."""
    resolved = {}
    for endpoint in endpoints:
        if endpoint in resolved:
            continue
        try:
            resolved[endpoint] = {"addresses": resolve_endpoint(endpoint), "error": None}
        except (CommandExecutionError, SaltInvocationError) as exc:
            resolved[endpoint] = {"addresses": [], "error": str(exc)}
    return resolved


def _gather(name, directory, pillar_iface, live, forwarding):
    """Everything the checks look at for one interface, as plain data."""
    path, conf, text, conf_error = _read_conf(name, directory)
    key_path = _key_path(name, directory)
    key = _read_key_file(key_path)
    try:
        key_public = pubkey(key) if key else None
    except SaltInvocationError:
        key_public = "invalid"
    data = {
        "name": name, "config_path": path, "conf": conf, "conf_error": conf_error,
        "modes": {"conf": _file_mode(path), "key": _file_mode(key_path),
                  "dir": _file_mode(directory)},
        "key_file_public": key_public, "pillar": pillar_iface, "rendered": None,
        "conf_masked": _CONF_SECRET.sub(r"\1" + MASK, text) if text is not None else None,
        "live": live, "tx_later": None, "rx_later": None, "link": None, "routes": None,
        "underlay": {}, "resolved": {}, "forwarding": forwarding,
    }
    if pillar_iface and not pillar_iface["absent"]:
        data["rendered"] = _render(pillar_iface, MASK, {})
    endpoints = [p["endpoint"] for p in (conf or {}).get("peers", []) if p["endpoint"]]
    if conf is None and pillar_iface:
        endpoints = [p["endpoint"] for p in pillar_iface["peers"].values()
                     if p["endpoint"] and not p["absent"]]
    data["resolved"] = _resolve_all(endpoints)
    if live is not None:
        data["link"] = _live_link(name)
        data["routes"] = _live_interface_routes(name)
        addresses = []
        for peer in live["peers"].values():
            address = _endpoint_ip(peer["endpoint"])
            if address is not None and address not in addresses:
                addresses.append(address)
        for address in addresses[:MTU_PROBES]:
            data["underlay"][str(address)] = _underlay(address, live["fwmark"])
    return data


# ------------------------------------------------------------------ the checks


def _check_interface(data, stale_after=STALE_AFTER):
    """Every problem of one interface, from plain data.

    ``data`` holds: ``name``; ``config_path``; ``conf`` (``_parse_conf`` output or
    None) and ``conf_error``; ``modes`` (``conf``/``key``/``dir`` -> ``{"path",
    "mode", "uid"}`` or None); ``key_file_public``; ``pillar`` (one interface of
    ``pillar_interfaces`` or None); ``rendered`` and ``conf_masked`` (config texts
    with keys masked); ``live`` (one interface of ``show``, or None when it is down);
    ``tx_later``/``rx_later`` (``{public key: bytes}`` from a later sample, or None);
    ``link``
    (``{"mtu", "addresses"}``); ``routes`` (CIDRs routed through it); ``underlay``
    (endpoint address -> ``_underlay``); ``resolved`` (endpoint ->
    ``{"addresses", "error"}``); ``forwarding`` (``{"ipv4", "ipv6"}``).
    """
    problems = _check_presence(data)
    for check in (_check_permissions, _check_pillar_drift, _check_drift,
                  _check_allowed_ips, _check_endpoints, _check_mtu, _check_routes,
                  _check_forwarding):
        problems += check(data)
    problems += _check_handshakes(data, stale_after)
    return problems


def _peer_names(data):
    names = {}
    if data.get("pillar"):
        names.update({p["public_key"]: n for n, p in data["pillar"]["peers"].items()
                      if p["public_key"]})
    for peer in (data.get("conf") or {}).get("peers", []):
        if peer["public_key"] and peer["name"]:
            names[peer["public_key"]] = peer["name"]
    return names


def _apply_fix():
    return "Run salt-call state.apply wireguard on this minion"


def _check_presence(data):
    name, path = data["name"], data["config_path"]
    pillar, conf, live = data["pillar"], data["conf"], data["live"]
    problems = []
    if data["conf_error"]:
        problems.append(_problem("error", "config", data["conf_error"],
                                 f"Make {path} a readable file (mode 0600, owner root)."))
    for error in (conf or {}).get("errors", []):
        problems.append(_problem("error", "config", f"{path}, {error}",
                                 f"{_apply_fix()}, or correct the line by hand."))
    if pillar and pillar["absent"]:
        if live is not None or conf is not None:
            problems.append(_problem(
                "warning", "presence",
                f"Pillar says {name} is absent, but it is still "
                + ("up" if live is not None else f"configured in {path}"),
                f"{_apply_fix()} to remove it."))
        return problems
    if pillar and not pillar["enabled"] and live is not None:
        problems.append(_problem(
            "warning", "presence", f"Pillar says {name} is disabled, but it is up",
            f"{_apply_fix()}, or systemctl stop wg-quick@{name}."))
    if conf is None and not data["conf_error"]:
        if live is not None:
            problems.append(_problem(
                "warning", "presence",
                f"{name} is up but {path} does not exist, so it does not come back after "
                "a restart or reboot",
                f"Declare {name} in pillar and {_apply_fix().lower()}, or remove it "
                f"with ip link del {name}."))
        elif pillar:
            problems.append(_problem(
                "error", "presence",
                f"Pillar declares {name}, but it has no {path} and is not up",
                f"{_apply_fix()}."))
    elif conf is not None and live is None and (pillar is None or pillar["enabled"]):
        problems.append(_problem(
            "error", "presence", f"{name} is down although {path} exists",
            f"Start it: systemctl start wg-quick@{name} (its journal says why it "
            "stopped)."))
    return problems


def _check_permissions(data):
    problems = []
    for what in ("conf", "key"):
        info = data["modes"].get(what)
        if not info:
            continue
        path, mode = info["path"], info["mode"]
        holds = "the interface's private key"
        if mode & 0o044:
            who = "everyone" if mode & 0o004 else "its group"
            problems.append(_problem(
                "error", "permissions",
                f"{path} (mode {mode:04o}) is readable by {who}, and it holds {holds}",
                f"chmod 600 {path}, then replace the key if others may have read it."))
        elif mode & 0o022:
            problems.append(_problem(
                "error", "permissions",
                f"{path} (mode {mode:04o}) is writable by others: they could change "
                + ("the commands wg-quick runs as root" if what == "conf" else holds),
                f"chmod 600 {path}."))
        elif mode & 0o077:
            problems.append(_problem(
                "warning", "permissions", f"{path} has mode {mode:04o}, not 0600",
                f"chmod 600 {path}."))
        if info["uid"] != 0:
            problems.append(_problem(
                "warning", "permissions", f"{path} is owned by uid {info['uid']}, not root",
                f"chown root:root {path}."))
    info = data["modes"].get("dir")
    if info and info["mode"] & 0o002:
        problems.append(_problem(
            "error", "permissions",
            f"{info['path']} (mode {info['mode']:04o}) is writable by everyone",
            f"chmod 700 {info['path']}."))
    elif info and info["mode"] & 0o077:
        problems.append(_problem(
            "warning", "permissions",
            f"{info['path']} has mode {info['mode']:04o}: others can look into it",
            f"chmod 700 {info['path']}."))
    return problems


def _check_pillar_drift(data):
    if data["rendered"] is None or data["conf_masked"] is None:
        return []
    if data["rendered"] == data["conf_masked"]:
        return []
    diff = [line for line in difflib.unified_diff(
        data["conf_masked"].splitlines(), data["rendered"].splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return [_problem(
        "warning", "pillar",
        f"{data['config_path']} differs from what pillar renders "
        f"({len(diff)} line(s): {'; '.join(diff[:4])}{'; ...' if len(diff) > 4 else ''})",
        f"{_apply_fix()}.")]


def _check_drift(data):
    conf, live, link, name = data["conf"], data["live"], data["link"], data["name"]
    if conf is None or live is None:
        return []
    path, names = data["config_path"], _peer_names(data)
    restart = f"Restart the interface: systemctl restart wg-quick@{name}."
    sync = (f"{_apply_fix()} (or wg syncconf {name} <(wg-quick strip {name})): "
            "peers change live, without a restart.")
    problems = []
    if conf["public_key"] and live["public_key"] and conf["public_key"] != live["public_key"]:
        problems.append(_problem(
            "error", "drift",
            f"{name} runs the key of public key {_short(live['public_key'])}, but "
            f"{path} holds the key of {_short(conf['public_key'])}", restart))
    key_public = data.get("key_file_public")
    if key_public and conf["public_key"] and key_public != conf["public_key"]:
        problems.append(_problem(
            "warning", "drift",
            f"The key file of {name} and {path} hold different private keys",
            f"{_apply_fix()}: it writes the conf from the key file (or pillar's key)."))
    if conf["listen_port"] and conf["listen_port"] != live["listen_port"]:
        problems.append(_problem(
            "error", "drift",
            f"{name} listens on port {live['listen_port']}, {path} says "
            f"{conf['listen_port']}", restart))
    if conf["fwmark"] and conf["fwmark"] != live["fwmark"]:
        problems.append(_problem(
            "warning", "drift",
            f"{name} has fwmark {live['fwmark']}, {path} says {conf['fwmark']}", restart))
    if link is not None:
        if conf["mtu"] and conf["mtu"] != link["mtu"]:
            problems.append(_problem(
                "warning", "drift", f"{name} has MTU {link['mtu']}, {path} says {conf['mtu']}",
                restart))
        for address in conf["address"]:
            if address not in link["addresses"]:
                problems.append(_problem(
                    "error", "drift", f"Address {address} of {path} is not on {name}",
                    restart))
        for address in link["addresses"]:
            if conf["address"] and address not in conf["address"]:
                problems.append(_problem(
                    "warning", "drift",
                    f"{name} has address {address}, which {path} does not list", restart))
    wanted = {p["public_key"]: p for p in conf["peers"] if p["public_key"]}
    for key in wanted.keys() - live["peers"].keys():
        problems.append(_problem(
            "error", "drift",
            f"{_peer_label(key, names)} is in {path} but not on the live {name}", sync,
            peer=key))
    for key in live["peers"].keys() - wanted.keys():
        problems.append(_problem(
            "warning", "drift",
            f"{_peer_label(key, names)} is on the live {name} but not in {path}: it is "
            "gone after the next restart",
            f"Declare it in pillar and {_apply_fix().lower()}, or remove it with "
            f"wg set {name} peer {key} remove.", peer=key))
    for key in sorted(wanted.keys() & live["peers"].keys()):
        problems += _peer_drift(data, key, wanted[key], live["peers"][key], names, sync)
    return problems


def _peer_drift(data, key, want, have, names, sync):
    label, path = _peer_label(key, names), data["config_path"]
    problems = []
    if sorted(want["allowed_ips"], key=_cidr_sort_key) != sorted(
            (str(ipaddress.ip_network(c, strict=False)) for c in have["allowed_ips"]),
            key=_cidr_sort_key):
        problems.append(_problem(
            "error", "drift",
            f"{label} has AllowedIPs {', '.join(have['allowed_ips']) or '(none)'} live, "
            f"{path} says {', '.join(want['allowed_ips']) or '(none)'}", sync, peer=key))
    if (want["persistent_keepalive"] or None) != have["persistent_keepalive"]:
        problems.append(_problem(
            "warning", "drift",
            f"{label} has PersistentKeepalive {have['persistent_keepalive'] or 'off'} live, "
            f"{path} says {want['persistent_keepalive'] or 'off'}", sync, peer=key))
    if want["has_preshared_key"] != have["preshared_key"]:
        problems.append(_problem(
            "error", "drift",
            f"{label} has {'a' if have['preshared_key'] else 'no'} preshared key live, "
            f"{path} has {'one' if want['has_preshared_key'] else 'none'}", sync, peer=key))
    if want["endpoint"]:
        resolved = data["resolved"].get(want["endpoint"]) or {}
        if have["endpoint"] is None:
            problems.append(_problem(
                "warning", "drift",
                f"{label} has no live endpoint, {path} says {want['endpoint']}", sync,
                peer=key))
        elif resolved.get("addresses") and have["endpoint"] not in resolved["addresses"]:
            problems.append(_problem(
                "info", "drift",
                f"{label} is reached at {have['endpoint']}, not at {want['endpoint']} "
                f"({', '.join(resolved['addresses'])}): it roamed, or its name now "
                "resolves elsewhere",
                f"If the peer moved, salt-call wireguard.reresolve {data['name']} sets the "
                "endpoint from its name again.", peer=key))
    return problems


def _check_allowed_ips(data):
    names, problems = _peer_names(data), []
    owner = {}
    for peer in (data["conf"] or {}).get("peers", []):
        for cidr in peer["allowed_ips"]:
            if cidr in owner and owner[cidr] != peer["public_key"]:
                problems.append(_problem(
                    "error", "allowed_ips",
                    f"{cidr} is in the AllowedIPs of {_peer_label(owner[cidr], names)} and "
                    f"of {_peer_label(peer['public_key'], names)} in {data['config_path']}: "
                    "WireGuard routes a prefix to one peer only, the last one",
                    "Keep the prefix in one peer's allowed_ips only.",
                    peer=peer["public_key"]))
            owner.setdefault(cidr, peer["public_key"])
    if data["live"] is not None:
        prefixes = [(ipaddress.ip_network(c, strict=False), k)
                    for k, p in data["live"]["peers"].items() for c in p["allowed_ips"]]
    else:
        prefixes = [(ipaddress.ip_network(cidr), key) for cidr, key in owner.items()]
    for outer, outer_key, inner, inner_key in _nested_prefixes(prefixes):
        problems.append(_problem(
            "info", "allowed_ips",
            f"{inner} of {_peer_label(inner_key, names)} lies inside {outer} of "
            f"{_peer_label(outer_key, names)}: traffic to {inner} goes to the first, the "
            "rest of the range to the second",
            "Nothing to do if this is meant; otherwise remove the narrower prefix.",
            peer=inner_key))
    return problems


def _nested_prefixes(prefixes):
    """(outer, owner, inner, owner) for each prefix inside another owner's prefix.

    A sweep over the sorted prefixes with a stack of the enclosing ones: n log n, so a
    hub with thousands of peers is checked quickly.
    """
    found = []
    for version in (4, 6):
        items = sorted(((n, k) for n, k in prefixes if n.version == version),
                       key=lambda item: (int(item[0].network_address), item[0].prefixlen))
        stack = []
        for net, key in items:
            while stack and not net.subnet_of(stack[-1][0]):
                stack.pop()
            outer = next(((o, k) for o, k in reversed(stack) if k != key), None)
            if outer is not None and outer[0] != net:
                found.append((outer[0], outer[1], net, key))
            stack.append((net, key))
    return found


def _check_endpoints(data):
    names, problems = _peer_names(data), []
    peers = [(p["public_key"], p["endpoint"]) for p in (data["conf"] or {}).get("peers", [])]
    if data["conf"] is None and data["pillar"]:
        peers = [(p["public_key"], p["endpoint"]) for p in data["pillar"]["peers"].values()]
    for key, endpoint in peers:
        result = data["resolved"].get(endpoint) if endpoint else None
        if result and result["error"]:
            problems.append(_problem(
                "error", "endpoint",
                f"The endpoint {endpoint} of {_peer_label(key, names)} does not resolve",
                "Fix the DNS record (or the /etc/hosts entry) of the name, or give the "
                "endpoint as an address.", peer=key))
    return problems


def _check_mtu(data):
    live, link, name = data["live"], data["link"], data["name"]
    if live is None or link is None or not link.get("mtu"):
        return []
    names, problems, worst = _peer_names(data), [], None
    for key, peer in live["peers"].items():
        address = _endpoint_ip(peer["endpoint"])
        route = data["underlay"].get(str(address)) if address else None
        if not route or route["error"]:
            continue
        if route["dev"] == name:
            problems.append(_problem(
                "error", "mtu",
                f"The endpoint {peer['endpoint']} of {_peer_label(key, names)} is routed into "
                f"{name} itself, so its packets loop",
                "Route the endpoint outside the tunnel (a more specific route via the "
                "underlay, or wg-quick's table auto with a fwmark).", peer=key))
            continue
        path_mtu = min(m for m in (route["mtu"], route["dev_mtu"], 65535) if m)
        limit = path_mtu - WG_OVERHEAD[address.version]
        if link["mtu"] > limit and (worst is None or limit < worst[0]):
            worst = (limit, path_mtu, key, peer["endpoint"], route["dev"], address.version)
    if worst:
        limit, path_mtu, key, endpoint, dev, version = worst
        problems.append(_problem(
            "warning", "mtu",
            f"{name} has MTU {link['mtu']}, but the path to {_peer_label(key, names)} at "
            f"{endpoint} (via {dev}) carries {path_mtu} bytes, and WireGuard over IPv{version} "
            f"adds {WG_OVERHEAD[version]}: tunnel packets above {limit} bytes are fragmented "
            "or dropped",
            f"Set mtu: {limit} for {name} in pillar and {_apply_fix().lower()}.", peer=key))
    return problems


def _check_routes(data):
    live, routes, name = data["live"], data["routes"], data["name"]
    if live is None or routes is None:
        return []
    pillar, conf = data["pillar"], data["conf"]
    wanted = pillar["routes"] if pillar else (conf or {}).get("routes", [])
    problems = []
    for cidr in wanted:
        if str(ipaddress.ip_network(cidr, strict=False)) not in routes:
            problems.append(_problem(
                "error", "routes", f"The route {cidr} through {name} is missing",
                f"{_apply_fix()} (it adds routes live), or: ip route replace {cidr} dev "
                f"{name} proto static."))
    covered = {ipaddress.ip_network(r) for r in routes}
    covered |= {ipaddress.ip_interface(a).network
                for a in (data["link"] or {}).get("addresses", [])}
    names = _peer_names(data)
    for key, peer in live["peers"].items():
        for cidr in peer["allowed_ips"]:
            net = ipaddress.ip_network(cidr, strict=False)
            if not any(net.supernet(new_prefix=length) in covered
                       for length in range(net.prefixlen, -1, -1)):
                problems.append(_problem(
                    "warning", "routes",
                    f"Nothing routes {cidr} ({_peer_label(key, names)}'s AllowedIPs) into "
                    f"{name}, so this host never sends traffic for it into the tunnel",
                    f"Add {cidr} to the routes of {name} (needed with table: off), or "
                    "drop it from AllowedIPs.", peer=key))
    return problems


def _check_forwarding(data):
    pillar, fwd = data["pillar"], data["forwarding"] or {}
    if not pillar or pillar["absent"] or not (pillar["forwarding"] or pillar["masquerade"]):
        return []
    why = "forwarding: true" if pillar["forwarding"] else "masquerade"
    problems = []
    families = [("ipv4", "net.ipv4.ip_forward")]
    if pillar["ipv6"]:
        families.append(("ipv6", "net.ipv6.conf.all.forwarding"))
    for family, sysctl in families:
        if fwd.get(family) is False:
            problems.append(_problem(
                "error", "forwarding",
                f"Pillar wants {data['name']} to forward ({why}), but {sysctl} is 0",
                f"{_apply_fix()} (it sets and persists it), or: sysctl -w {sysctl}=1."))
    return problems


def _check_handshakes(data, stale_after=STALE_AFTER):
    live = data["live"]
    if live is None:
        return []
    names, later, problems = _peer_names(data), data.get("tx_later") or {}, []
    answers = data.get("rx_later") or {}
    hostnames = any(p["endpoint"] and not _is_address(_split_endpoint(p["endpoint"])[0])
                    for p in (data["conf"] or {}).get("peers", []))
    fix = ("Check that the peer is up, that each side holds the other's public key, and "
           "that the endpoint and its port are right (salt-run wireguard.audit compares "
           "both sides)" + (f"; salt-call wireguard.reresolve {data['name']} re-resolves "
                            "host-name endpoints." if hostnames else "."))
    for key, peer in live["peers"].items():
        label, age, tx = _peer_label(key, names), peer["latest_handshake_age"], peer["tx_bytes"]
        grew = key in later and later[key] - tx > KEEPALIVE_BYTES  # one keepalive is not traffic
        # it answers between the two samples: an old handshake is then not a dead link
        answered = key in answers and answers[key] > peer["rx_bytes"]
        sending = (bool(peer["persistent_keepalive"]) or grew) and not answered
        if age is None:
            if tx or grew:
                problems.append(_problem(
                    "error", "handshake",
                    f"{label} never completed a handshake, although {max(tx, later.get(key, 0))}"
                    " bytes were sent to it", fix, peer=key))
            elif peer["endpoint"]:
                problems.append(_problem(
                    "info", "handshake",
                    f"{label} has no handshake yet: nothing was sent to it so far",
                    "Nothing to do; ping its tunnel address to test the link.", peer=key))
            else:
                problems.append(_problem(
                    "info", "handshake",
                    f"{label} has not connected yet; with no endpoint here, it must dial in",
                    "Nothing to do unless the peer should be connected by now.", peer=key))
        elif age > stale_after:
            if sending:
                problems.append(_problem(
                    "error", "handshake",
                    f"{label} is stale: its last handshake was {age} s ago, although traffic"
                    " is being sent to it" + (" (persistent keepalive)"
                                              if not grew else ""), fix, peer=key))
            else:
                problems.append(_problem(
                    "info", "handshake",
                    f"{label} is idle: last handshake {age} s ago, no traffic since",
                    "Nothing to do; traffic starts a new handshake.", peer=key))
    return problems


# ------------------------------------------------------------------ check


def _summary(result):
    counts = {s: 0 for s in SEVERITIES}
    lines = []
    for problem in result["problems"]:
        counts[problem["severity"]] += 1
        lines.append(f"  [{problem['severity']}] {problem['message']}. Fix: {problem['fix']}")
    for name, iface in result["interfaces"].items():
        mine = {s: [p for p in iface["problems"] if p["severity"] == s] for s in SEVERITIES}
        for severity in SEVERITIES:
            counts[severity] += len(mine[severity])
        state = "up" if iface["facts"]["live"] else "down"
        if not mine["error"] and not mine["warning"]:
            lines.append(f"{name} ({state}): ok"
                         + (f", {len(mine['info'])} note(s)" if mine["info"] else ""))
        else:
            lines.append(f"{name} ({state}): {len(mine['error'])} error(s), "
                         f"{len(mine['warning'])} warning(s)")
        shown = mine["error"] + mine["warning"] + mine["info"][:SUMMARY_INFOS]
        for problem in shown:
            lines.append(f"  [{problem['severity']}] {problem['check']}: "
                         f"{problem['message']}. Fix: {problem['fix']}")
        if len(mine["info"]) > SUMMARY_INFOS:
            lines.append(f"  ... and {len(mine['info']) - SUMMARY_INFOS} more note(s)")
    head = ("wireguard check: " + ("OK" if result["ok"] else "PROBLEMS") + f" ({counts['error']}"
            f" error(s), {counts['warning']} warning(s), {counts['info']} note(s) on "
            f"{len(result['interfaces'])} interface(s))")
    return "\n".join([head, *lines])


def _facts(data):
    """What ``check`` tells about an interface besides its problems (for the audit)."""
    conf, live, link = data["conf"] or {}, data["live"], data["link"] or {}
    peers = {}
    for peer in conf.get("peers", []):
        if not peer["public_key"]:
            continue
        resolved = data["resolved"].get(peer["endpoint"]) if peer["endpoint"] else None
        peers[peer["public_key"]] = {
            "name": peer["name"], "endpoint": peer["endpoint"],
            "endpoint_resolved": resolved["addresses"] if resolved else None,
            "allowed_ips": peer["allowed_ips"],
            "persistent_keepalive": peer["persistent_keepalive"],
        }
    public = (live or {}).get("public_key") or conf.get("public_key")
    if not public and data["key_file_public"] != "invalid":
        public = data["key_file_public"]
    return {
        "live": live is not None,
        "config_file": data["config_path"] if data["conf"] is not None else None,
        "public_key": public,
        "listen_port": live["listen_port"] if live else conf.get("listen_port"),
        "addresses": link.get("addresses") if live else conf.get("address", []),
        "mtu": link.get("mtu") if live else conf.get("mtu"),
        "forwarding": data["forwarding"],
        "peers": peers,
    }


def _config_files(directory):
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    return [entry[:-5] for entry in entries
            if entry.endswith(".conf") and INTERFACE_NAME.match(entry[:-5])]


def check(interface=None, config_dir=None, stale_after=STALE_AFTER, sample=2):
    """
    Diagnose this minion's WireGuard interfaces (all of them, or one) and say how to
    fix each problem found. It checks:

    - drift between ``<config_dir>/<if>.conf`` and the live interface (key, port,
      fwmark, MTU, addresses from ``ip -j addr``, peers and their attributes), and
      between the file and what pillar renders;
    - modes of the config and key files (readable by group or others is an error);
    - peers that never completed a handshake although traffic was sent, and stale
      ones: no handshake for over ``stale_after`` seconds while traffic is sent (and,
      when sampled, nothing comes back);
    - AllowedIPs given to two peers, or nested inside another peer's;
    - an MTU above what the path to a peer's endpoint carries minus WireGuard's
      overhead (60 bytes over IPv4, 80 over IPv6);
    - routes of pillar (or of the file) missing live, AllowedIPs that nothing routes
      into the interface, forwarding wanted but off;
    - endpoints that do not resolve.

    Returns ``{"interfaces": {if: {"problems": [...], "ok": bool, "facts": {...}}},
    "problems": [...], "ok": bool, "summary": text}``. Each problem is ``{"severity":
    error|warning|info, "check", "peer" (public key or None), "message", "fix"}``;
    ``ok`` is false when there is an error or a warning. ``facts`` hold what the
    audit runner compares between minions: public key, listen port, addresses,
    forwarding, and the peers of the config file. No private or preshared key is
    returned.

    interface
        Check only this interface.
    stale_after
        Seconds without a handshake after which a peer that is sent traffic is stale
        (default 180).
    sample
        Seconds to watch the transfer counters of peers without a recent handshake,
        to tell a stale peer (traffic sent) from an idle one; 0 skips it (peers with
        a persistent keepalive are always sent traffic).

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.check
        salt 'gw*' wireguard.check wg0 --out=json
        salt-call wireguard.check sample=0 --out=txt
    """
    if interface is not None:
        _check_interface_name(interface)
    stale_after = _int(stale_after, "stale_after", 1, 2**31, "stale_after")
    directory = _config_dir(config_dir)
    result = {"interfaces": {}, "problems": [], "ok": True, "summary": ""}
    try:
        declared = _validated(None, directory)[0]
    except SaltInvocationError as exc:
        declared = {}
        result["problems"].append(_problem(
            "error", "pillar", str(exc).replace("\n", " "),
            "Correct pillar wireguard as the message says."))
    try:
        live = show()
    except CommandExecutionError as exc:
        live = {}
        result["problems"].append(_problem(
            "error", "live", f"The live interfaces cannot be read: {exc}",
            "Install wireguard-tools (wg) and run this as root."))
    if interface is not None:
        names = [interface]
    else:
        names = sorted(set(live) | set(_config_files(directory))
                       | {n for n, i in declared.items() if not i["absent"]})
    forwarding = _forwarding()
    gathered = {}
    for name in names:
        data = _gather(name, directory, declared.get(name), live.get(name), forwarding)
        if interface is not None and data["conf"] is None and data["live"] is None \
                and data["pillar"] is None and not data["conf_error"]:
            raise CommandExecutionError(
                f"interface '{name}' has no {data['config_path']}, is not in pillar and "
                "is not up")
        gathered[name] = data
    _sample_transfer(gathered, stale_after, sample)
    for name, data in gathered.items():
        problems = _check_interface(data, stale_after)
        result["interfaces"][name] = {
            "problems": problems,
            "ok": not any(p["severity"] in ("error", "warning") for p in problems),
            "facts": _facts(data),
        }
    result["ok"] = all(i["ok"] for i in result["interfaces"].values()) and not any(
        p["severity"] in ("error", "warning") for p in result["problems"])
    result["summary"] = _summary(result)
    return result


def _sample_transfer(gathered, stale_after, sample):
    """Read the transfer counters again after ``sample`` seconds, for the peers whose
    handshake is missing or old and which have no persistent keepalive."""
    if not sample:
        return
    wanted = [name for name, data in gathered.items() if data["live"] is not None and any(
        (p["latest_handshake_age"] is None or p["latest_handshake_age"] > stale_after)
        and not p["persistent_keepalive"] for p in data["live"]["peers"].values())]
    if not wanted:
        return
    time.sleep(float(sample))
    try:
        later = show()
    except CommandExecutionError:
        return
    for name in wanted:
        peers = (later.get(name) or {}).get("peers", {})
        gathered[name]["tx_later"] = {k: p["tx_bytes"] for k, p in peers.items()}
        gathered[name]["rx_later"] = {k: p["rx_bytes"] for k, p in peers.items()}


# ------------------------------------------------------------------ reresolve


def reresolve(interface=None, peer=None, config_dir=None, test=False):
    """
    Set the endpoint of live peers again from the host name their config file gives
    (``Endpoint = host:port`` in ``<config_dir>/<if>.conf``): the name is resolved now
    and, when the live endpoint is not among its addresses, set with
    ``wg set <if> peer <key> endpoint <address>:<port>``. WireGuard resolves a name only
    when the endpoint is set, so a peer behind dynamic DNS that moved is found again
    this way. Peers whose endpoint is an address are left alone.

    Returns ``{interface: {peer name or key: {"public_key", "endpoint", "old", "new",
    "result": changed|unchanged|would change|failed|skipped, "comment"}}}``; a peer
    asked for by ``peer`` whose endpoint is an address (or that is not live) is
    ``skipped``, with the reason.

    interface
        Only this interface (default: every live interface with a config file).
    peer
        Only this peer: its name (the comment above it in the file) or public key.
    test
        Report what would change, change nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.reresolve
        salt 'site-a' wireguard.reresolve wg0 peer=hub
    """
    if interface is not None:
        _check_interface_name(interface)
    live = show()
    names = [interface] if interface else sorted(live)
    result = {}
    for name in names:
        if name not in live:
            raise CommandExecutionError(f"WireGuard interface '{name}' is not up")
        path, conf, _, error = _read_conf(name, config_dir)
        if error or conf is None:
            if interface is not None:
                raise CommandExecutionError(error or f"{path} does not exist")
            continue
        result[name] = _reresolve_interface(name, conf, live[name], peer, test)
    if peer is not None and not any(result.values()):
        raise CommandExecutionError(
            f"no peer '{peer}' in the config of {interface or 'any live interface'}")
    return result


def _reresolve_interface(name, conf, live, wanted_peer, test):
    done = {}
    for item in conf["peers"]:
        key, endpoint = item["public_key"], item["endpoint"]
        if not key or (wanted_peer is not None and wanted_peer not in (key, item["name"])):
            continue
        skip = None
        if key not in live["peers"]:
            skip = f"it is not on the live {name}"
        elif not endpoint:
            skip = "it has no endpoint in the config file"
        else:
            try:
                host, _ = _split_endpoint(_endpoint(endpoint, "endpoint"))
            except SaltInvocationError as exc:
                host, skip = None, str(exc)
            if host and _is_address(host):
                skip = f"its endpoint {endpoint} is an address, not a name"
        if skip:
            if wanted_peer is not None:  # asked for by name: say why nothing was done
                done[item["name"] or key] = {
                    "public_key": key, "endpoint": endpoint, "old": None, "new": None,
                    "result": "skipped", "comment": f"Nothing to re-resolve: {skip}"}
            continue
        old = live["peers"][key]["endpoint"]
        entry = {"public_key": key, "endpoint": endpoint, "old": old, "new": old}
        done[item["name"] or key] = entry
        try:
            addresses = resolve_endpoint(endpoint)
        except CommandExecutionError as exc:
            entry.update(result="failed", comment=str(exc))
            continue
        if old in addresses:
            entry.update(result="unchanged", comment=f"{endpoint} still resolves to {old}")
            continue
        if test:
            entry.update(result="would change", new=addresses[0],
                         comment=f"{endpoint} now resolves to {', '.join(addresses)}")
            continue
        try:
            # the address just resolved: what was compared is what is set (wg itself
            # would resolve the name with the same resolver and take the first answer)
            _wg(["set", name, "peer", key, "endpoint", addresses[0]])
            now = _parse_dump(_wg(["show", name, "dump"], quiet=True), name)
            entry["new"] = now[name]["peers"].get(key, {}).get("endpoint")
            entry.update(result="changed", comment=f"{endpoint} resolved to {entry['new']}")
        except CommandExecutionError as exc:
            entry.update(result="failed", comment=str(exc))
    return done
