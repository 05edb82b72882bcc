"""
The minion's steps of ``salt-run wireguard.rotate_keys`` (see ``_utils/wgf_rotate.py``).

:depends: wireguard-tools (``wg``)

Each function takes the orders of every minion of the job and carries out its own;
no private or preshared key leaves the minion or appears in an argument: ``wg`` reads
them from files.
"""

import importlib
import logging
import os
import socket

import salt.utils.path
from salt.exceptions import CommandExecutionError

import wgf_args
import wgf_files
import wgf_host
import wgf_keys
import wgf_layout
import wgf_reload
import wgf_rotate

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard_rotate"
DEFAULT_CONFIG_DIR = "/etc/wireguard"
#: The discard port: what a partner does with the wake-up packet does not matter.
WAKE_PORT = 9


def __virtual__():
    if not salt.utils.path.which("wg"):
        return False, "wireguard_rotate: the 'wg' command (wireguard-tools) is missing"
    return __virtualname__


def _layout():
    # unmasked, as the wireguard module reads it: Salt 3008 masks pillar.get's values
    return wgf_layout.Layout(wgf_layout.config_dir(wgf_layout.read_lookup(__salt__["pillar.get"])))


#: ``wg`` runs through the one place that hides keys and masks its errors.
_wg = wgf_host.wg


def _host():
    return wgf_host.Host(__salt__)


def _next_path(interface):
    return _layout().key_next(interface)


def stage(orders):
    """Make ``<if>.key.next`` (0600) for each interface ``orders[<this minion>]`` names,
    unless it is there; return ``{interface: {"old": live public key, "next": public
    key of the next private key}}``."""
    staged = {}
    for interface in wgf_rotate.stage_order(orders, __opts__["id"]):
        path = _next_path(interface)
        try:
            if not os.path.exists(path):
                _host().write_secret(path, wgf_keys.genkey() + "\n")
            following = wgf_keys.pubkey(wgf_files.read_key(path) or "", path)
        except (OSError, ValueError) as exc:
            raise CommandExecutionError(
                f"{interface}: the next key {path} cannot be made or read: {type(exc).__name__}"
            ) from None
        staged[interface] = {
            "old": _wg(["show", interface, "public-key"]).strip(),
            "next": following,
        }
    return staged


def _psks(interface):
    """``{peer public key: preshared key or None}`` of the live interface."""
    found = {}
    for line in _wg(["show", interface, "preshared-keys"]).splitlines():
        peer, psk = line.split()
        found[peer] = None if psk == "(none)" else psk
    return found


def announce(orders):
    """Add each next key ``orders[<this minion>]`` lists as a peer without AllowedIPs,
    with the endpoint given and the preshared key of the peer it will replace."""
    mine = wgf_rotate.announce_order(orders, __opts__["id"])
    with wgf_files.key_files() as put_key:
        for order in mine:
            interface = order["interface"]
            args = ["set", interface, "peer", order["public_key"]]
            if order["endpoint"]:
                args += ["endpoint", order["endpoint"]]
            if order["persistent_keepalive"]:
                args += ["persistent-keepalive", str(order["persistent_keepalive"])]
            psk = _psks(interface).get(order["replaces"])
            if psk:
                args += ["preshared-key", put_key(psk)]
            _wg(args)
    return len(mine)


def _wake(address):
    """One UDP datagram to a partner's tunnel address: WireGuard handshakes for it."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"wireguard key rotation", (address, WAKE_PORT))
        except OSError as exc:
            log.debug("wireguard_rotate: no packet to %s: %s", address, exc)


def switch(orders):
    """This minion's part of the switch: move AllowedIPs from each old key to its new
    one (one ``wg set`` per interface), then set each staged private key and keep it
    as ``<if>.key``. Returns ``{"moved": count, "switched": [interfaces]}``."""
    mine = wgf_rotate.switch_order(orders, __opts__["id"])
    unstaged = [i for i in mine["private_key"] if not os.path.isfile(_next_path(i))]
    if unstaged:
        raise CommandExecutionError(
            f"no staged next key for {', '.join(unstaged)} "
            "(wireguard_rotate.stage first); nothing changed"
        )
    by_interface = {}
    for move in mine["peers"]:
        by_interface.setdefault(move["interface"], []).append(move)
    for interface, moves in by_interface.items():
        args = ["set", interface]
        for move in moves:
            args += [
                "peer",
                move["new"],
                "allowed-ips",
                ",".join(move["allowed_ips"]),
                "peer",
                move["old"],
                "remove",
            ]
        _wg(args)
    for interface in mine["private_key"]:
        path = _next_path(interface)
        _wg(["set", interface, "private-key", path])
        _host().replace(path, _layout().key(interface))
    for address in mine["wake"]:
        _wake(address)
    log.info(
        "wireguard_rotate: switched %s, moved %d peer(s)", mine["private_key"], len(mine["peers"])
    )
    return {"moved": len(mine["peers"]), "switched": list(mine["private_key"])}


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
