"""
The ``wireguard`` execution module's clients: the config a client device imports, and
the clients of each interface with their live state.

One of the files Salt loads as ``wireguard`` (see ``wireguard.py``).
"""

import importlib

import salt.utils.path
from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_args
import wgf_clients
import wgf_expiry
import wgf_files
import wgf_host
import wgf_keys
import wgf_layout
import wgf_quota
import wgf_reload

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_keys.module_virtual(__virtualname__)


def client_config(interface, client, qr=None, path=None, config_dir=None):
    """
    Return the wg-quick config of ``client`` of ``interface`` (pillar ``clients``) to
    import on the device: its address, DNS and private key (a placeholder for a BYO
    client), and this minion as its peer with ``endpoint``.

    **Without path the return holds the client's private key, and Salt's job cache
    keeps every return on the master.** Give ``path``, or run it with ``salt-call`` on
    the minion, to keep the key off the master.

    qr
        ``ansi`` or ``utf8``: return the config as a QR code for a terminal instead;
        ``png`` or ``svg``: an image, written with ``path``.
    path
        A directory on the minion (made 0700; refused when others may enter it):
        ``<client>.conf`` and the QR code are written there 0600, and only their paths
        are returned.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.client_config wg0 phone qr=utf8 --out=newline_values_only
        salt vpn wireguard.client_config wg0 phone qr=png path=/root/wg-clients
    """
    kind = wgf_clients.qr_kind(qr, path)
    directory = __salt__["wireguard_layout.config_dir"](config_dir)
    iface = __salt__["wireguard.pillar_interfaces"](config_dir=directory).get(interface)
    key_path = wgf_layout.Layout(directory).key(interface)
    server_key = wgf_keys.pubkey_or_none(wgf_files.read_key(key_path))
    text = wgf_clients.device_config(iface, interface, client, directory, server_key)
    if path:
        return wgf_clients.export(wgf_clients.export_dir(path, directory), client, text, kind)
    return wgf_clients.qr_code(text, kind) if kind else text


def clients(interface=None, config_dir=None):
    """
    List the clients of each interface (or of one), no secret: ``status`` (``active``,
    ``disabled``, ``expired``, ``over quota``: its quota is used up in this period),
    ``expires`` (UTC, or None), ``group``, ``limits`` (``rate`` in bit/s, its
    ``burst`` in bytes (what tc lets through at once), ``quota`` in bytes, ``period``; or
    None), ``use`` (a client with a quota: ``used`` and
    ``remaining`` bytes of this period, ``quota``, ``period``, ``period_end`` (UTC),
    ``over_quota``; else None), ``address``,
    ``public_key``, ``byo``, ``preshared_key`` (bool), ``allowed_ips``, and from the live
    peer ``live``, ``endpoint``, ``latest_handshake(_age)``, ``rx_bytes``, ``tx_bytes``.

    CLI Example:

    .. code-block:: bash

        salt vpn wireguard.clients wg0
    """
    declared = __salt__["wireguard.pillar_interfaces"](
        config_dir=__salt__["wireguard_layout.config_dir"](config_dir)
    )
    if interface is not None and interface not in declared:
        raise SaltInvocationError(f"interface {wgf_addr.shown(interface)} is not in pillar")
    live = __salt__["wireguard.show"]() if salt.utils.path.which("wg") else {}
    now = wgf_clients.utc_now()
    use = wgf_quota.use_of(wgf_host.Host(__salt__), declared, now)
    return {
        name: wgf_clients.listing(iface, live.get(name), now, use=use.get(name))
        for name, iface in declared.items()
        if iface["clients_managed"] and interface in (None, name)
    }


def client_expiry_report():
    """
    Send the event ``wireguard/client/expired`` (data: ``interface``, ``client``,
    ``expires``) for each client whose live peer the expiry timer removed while no
    master answered its ``salt-call``, log it as sent, and return the list of the
    events' data. The formula's reactor (``reactor/wireguard-confirm.sls``) calls it at
    each minion start; ``wireguard.client_expiry`` at each run.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.client_expiry_report
    """
    return wgf_expiry.report(wgf_host.Host(__salt__))


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
