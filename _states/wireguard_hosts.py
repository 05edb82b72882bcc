"""
Peers by name (issue 22): the block of ``/etc/hosts`` the ``hosts`` option of an
interface (or a network) asks for, ``<address> <name>.<domain>`` for the minion, its
peers, nodes and clients.

A file of the ``wireguard`` state module, by concern: Salt loads the states of every
file under the one name (``wireguard.hosts``, ``wireguard.hosts_absent``). What the
block holds and how it is spliced into the file is ``_utils/wgf_hosts.py``; the file is
read and written through the host adapter (``wgf_host.Host``), which keeps every other
line, the file's mode and its owner.
"""

import importlib

import wgf_args
import wgf_host
import wgf_hosts
import wgf_layout
import wgf_reload
import wgf_state

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    if "wireguard.pillar_interfaces" not in __salt__:
        return (False, "The wireguard execution module did not load")
    return __virtualname__


def _host():
    """The host adapter: made here and nowhere else in this file (the unit tests hand in
    a fake one)."""
    return wgf_host.Host(__salt__)


def hosts(name, config_dir=None, path=None):
    """
    The interface's block of the hosts file is what its ``hosts`` option asks for:
    between ``# BEGIN wireguard-formula <if>`` and ``# END wireguard-formula <if>``,
    ``<address> <name>.<domain>`` for the minion (its first address), each peer (its
    first /32 or /128 in AllowedIPs), each node of its network and each client (its
    first address). A renamed peer is renamed, a removed one's line goes; without the
    option, or with the interface ``absent`` or not in pillar, the block goes. Every
    other line of the file stays byte for byte; the file is replaced atomically,
    keeping its mode and owner.

    name
        The interface name.
    path
        The hosts file; left out: ``/etc/hosts``.

    CLI Example:

    .. code-block:: bash

        salt '*' state.single wireguard.hosts wg0
    """
    return wgf_state.guarded(wgf_state.ret(name), _hosts, config_dir, path)


def _hosts(ret, config_dir, path):
    interfaces = __salt__["wireguard.pillar_interfaces"](config_dir=config_dir)
    option = (interfaces.get(ret["name"]) or {}).get("hosts")
    wanted = wgf_hosts.block(option["domain"], option["names"]) if option else None
    return _converge(ret, path, wanted)


def hosts_absent(name, path=None):
    """
    The hosts file has no block of the interface ``name`` (``wireguard.clean``); every
    other line stays.

    name
        The interface name.
    path
        The hosts file; left out: ``/etc/hosts``.

    CLI Example:

    .. code-block:: bash

        salt '*' state.single wireguard.hosts_absent wg0
    """
    return wgf_state.guarded(wgf_state.ret(name), _converge, path, None)


def _converge(ret, path, wanted):
    interface = ret["name"]
    path = path or wgf_layout.Layout().hosts
    host = _host()
    text = host.read_text(path)
    old = wgf_hosts.current(text, interface, path) if text is not None else None
    new_text = wgf_hosts.splice(text, interface, wanted, path)
    if old == wanted and (text or "") == new_text:
        ret["comment"] = f"The hosts block of {interface} in {path} is as wanted"
        return ret
    ret["changes"] = {"old": old, "new": wanted}
    verb = "would be" if __opts__["test"] else "was"
    what = "removed" if wanted is None else "written"
    if not __opts__["test"]:
        host.write_text(path, new_text)
    return wgf_state.pending(
        ret, f"The hosts block of {interface} in {path} {verb} {what}", __opts__["test"]
    )


# Last: every state above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals(), wgf_args.state_refused)
