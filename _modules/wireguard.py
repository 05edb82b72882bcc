"""
Manage WireGuard: keys, live interfaces and peers.

:depends: PyNaCl (keys), ``wg`` from wireguard-tools (live interfaces), the formula's
    ``_utils/wgf_*.py`` (``saltutil.sync_all`` ships them with this module)

The ``wireguard`` execution module is four files, one concern each, that Salt loads
under the one name ``wireguard``: this one (keys, ``wg show``, live peers), and
``wireguard_config.py`` (the formula's pillar, map data and config files),
``wireguard_clients.py`` (clients) and ``wireguard_check.py`` (diagnostics). A file
calls another's functions through ``__salt__["wireguard.<function>"]``.

This module runs commands and reads pillar, the mine and files; what it decides is
in the utils: ``wgf_keys`` (keys), ``wgf_addr`` (names, endpoints, CIDRs),
``wgf_schema`` and ``wgf_networks`` (the pillar), ``wgf_conf`` (config files),
``wgf_dump`` (``wg show dump``) and ``wgf_health`` (``check``).

No function returns a private or preshared key, and none reaches a command line or
a log line: ``wg`` reads preshared keys from 0600 files in a private directory.
"""

import importlib
import socket

from salt.exceptions import CommandExecutionError

import wgf_addr
import wgf_args
import wgf_dump
import wgf_files
import wgf_findings
import wgf_host
import wgf_keys
import wgf_reload
import wgf_schema

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"

#: Peers per ``wg set`` call, so the argv stays far below ARG_MAX.
PEERS_PER_CALL = 500


def __virtual__():
    return wgf_keys.module_virtual(__virtualname__)


# --------------------------------------------------------------------------- keys


def genkey():
    """
    Generate a private key, as ``wg genkey`` does: 32 random bytes, clamped, base64.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.genkey
    """
    return wgf_keys.genkey()


def pubkey(private_key=None, **kwargs):
    """
    Return the public key of a private key, as ``wg pubkey`` does.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.pubkey "$(cat /etc/wireguard/wg0.key)"
    """
    return wgf_keys.pubkey(
        wgf_keys.arguments(
            "pubkey", {"private_key": private_key}, kwargs, ["private_key"], ["private_key"]
        )["private_key"]
    )


def genpsk():
    """
    Generate a preshared key, as ``wg genpsk`` does: 32 random bytes, base64.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.genpsk
    """
    return wgf_keys.genpsk()


def key_digest(key=None, **kwargs):
    """
    Return the SHA-256 (hex) of a key, to compare keys without showing them.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.key_digest "$(wg genpsk)"
    """
    return wgf_keys.digest(
        wgf_keys.arguments("key_digest", {"key": key}, kwargs, ["key"], ["key"])["key"]
    )


# ---------------------------------------------------------------- running ``wg``


#: ``wg`` runs through the one place that hides keys and masks its errors.
_wg = wgf_host.wg


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
        shown = wgf_dump.parse(_wg(["show", "all", "dump"]), psk_digests=psk_digests)
        return {name: shown[name] for name in wgf_host.in_this_namespace(shown)}
    wgf_addr.check_interface_name(interface)
    try:
        text = _wg(["show", interface, "dump"])
    except CommandExecutionError:
        _require_interface(interface)
        raise
    return wgf_dump.parse(text, interface, psk_digests)


def interfaces():
    """
    Return the names of the live WireGuard interfaces.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.interfaces
    """
    return wgf_host.in_this_namespace(_wg(["show", "interfaces"]).split())


def _require_interface(interface):
    if interface not in interfaces():
        start = wgf_findings.service_command("start", __salt__["wireguard.service_name"](interface))
        raise CommandExecutionError(
            f"WireGuard interface '{interface}' does not exist on this minion; bring it "
            f"up first ({start})"
        )


# ------------------------------------------------------------------ live peers


def _peer_args(peer, put_key):
    """``wg set`` arguments for one peer change; a preshared key goes into a file."""
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
        # wg: an all-zero key from /dev/null removes it
        args += [
            "preshared-key",
            put_key(peer["preshared_key"]) if peer["preshared_key"] else "/dev/null",
        ]
    return args


def apply_peers(interface, peers=None, remove=None, **kwargs):
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
    wgf_keys.arguments(
        "apply_peers", {"interface": interface, "peers": peers, "remove": remove}, kwargs, []
    )
    wgf_addr.check_interface_name(interface)
    changes = [wgf_schema.normalise_peer_change(interface, peer) for peer in peers or []]
    changes += [
        wgf_schema.normalise_peer_change(interface, {"public_key": key, "remove": True})
        for key in remove or []
    ]
    if not changes:
        return True
    with wgf_files.key_files() as put_key:
        for start in range(0, len(changes), PEERS_PER_CALL):
            args = ["set", interface]
            for change in changes[start : start + PEERS_PER_CALL]:
                args += _peer_args(change, put_key)
            _wg(args)
    return True


def set_peer(
    interface,
    public_key=None,
    allowed_ips=None,
    endpoint=None,
    persistent_keepalive=None,
    preshared_key=None,
    **kwargs,
):
    """
    Add a peer to a live interface, or change it. Arguments left at None keep the
    peer's current value. The preshared key never appears on a command line.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.set_peer wg0 "3cp0...=" allowed_ips='[10.0.0.2/32]' \\
            endpoint=vpn.example.com:51820 persistent_keepalive=25
    """
    peer = wgf_keys.arguments(
        "set_peer",
        {
            "interface": interface,
            "public_key": public_key,
            "allowed_ips": allowed_ips,
            "endpoint": endpoint,
            "persistent_keepalive": persistent_keepalive,
            "preshared_key": preshared_key,
        },
        kwargs,
        ["public_key", "preshared_key"],
        ["public_key"],
    )
    return apply_peers(peer.pop("interface"), peers=[peer])


def remove_peer(interface, public_key=None, **kwargs):
    """
    Remove a peer from a live interface.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.remove_peer wg0 "3cp0...="
    """
    return apply_peers(
        interface,
        remove=[
            wgf_keys.arguments(
                "remove_peer",
                {"interface": interface, "public_key": public_key},
                kwargs,
                ["public_key"],
                ["public_key"],
            )["public_key"]
        ],
    )


def resolve_endpoint(endpoint):
    """
    Return the ``ip:port`` strings (IPv6 as ``[addr]:port``) an endpoint resolves to,
    the way ``wg`` prints a live endpoint.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.resolve_endpoint vpn.example.com:51820
    """
    host, port = wgf_addr.split_endpoint(wgf_addr.endpoint(endpoint, "endpoint"))
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


def is_interface_name(name):
    """
    Whether ``name`` is a valid interface name (wg-quick's rule, 1-15 of a-zA-Z0-9_=+.-,
    without ``+``: iptables reads it as a wildcard).

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.is_interface_name wg0
    """
    return wgf_addr.is_interface_name(name)


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
