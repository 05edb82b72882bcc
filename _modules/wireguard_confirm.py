"""
The confirm of issue 21 on the minion (docs/confirm.md): what is armed or was undone,
and what the rollout runner and a reactor ask of it. A file of the ``wireguard``
execution module, by concern; the work is ``_utils/wgf_confirm_run.py`` through the host
adapter (``wgf_host.Host``).

:depends: systemd (the undo's transient timer)

Nothing here returns or sends a key: the recorded state stays in the root-only state
directory (``/var/lib/wireguard-formula/confirm/<interface>/``).
"""

import importlib

import wgf_addr
import wgf_args
import wgf_confirm_run
import wgf_host
import wgf_keys
import wgf_reload

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_keys.module_virtual(__virtualname__)


def _interfaces(interface):
    if interface is None:
        return wgf_confirm_run.interfaces()
    return [wgf_addr.check_interface_name(interface)]


def confirm_status(interface=None):
    """
    Return, per interface with a confirm state directory or boot-time unit (or only
    ``interface``), whether an undo is armed, its deadline (Unix time, None when not
    armed), its probes, and the last undo: None, or its ``mode`` (``timer``, ``boot``,
    ``now``), ``time`` and the ``failed`` probes' labels.

    interface
        Only this interface.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.confirm_status
        salt '*' wireguard.confirm_status wg0
    """
    return {name: wgf_confirm_run.status(name) for name in _interfaces(interface)}


def confirm_accept(interface=None):
    """
    Accept the change armed on each interface (or only ``interface``): the undo is
    disarmed and the recorded state deleted. What the rollout runner calls on a
    healthy wave. Returns ``{interface: "confirmed"}``, or ``"not armed"`` where nothing
    was armed.

    interface
        Only this interface.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.confirm_accept
        salt '*' wireguard.confirm_accept wg0
    """
    host = wgf_host.Host(__salt__)
    return {
        name: "confirmed" if wgf_confirm_run.accept(host, name) else "not armed"
        for name in _interfaces(interface)
    }


def confirm_undo(interface=None):
    """
    Undo now the change armed on each interface (or only ``interface``): the same
    script the timer runs puts the recorded state back. What the rollout runner calls
    on an unhealthy wave. Returns ``{interface: "undone"}``, ``"not armed"`` where nothing
    was armed, or ``"undone, a step failed"``.

    interface
        Only this interface.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.confirm_undo
        salt '*' wireguard.confirm_undo wg0
    """
    host = wgf_host.Host(__salt__)
    done = {}
    for name in _interfaces(interface):
        if not wgf_confirm_run.is_armed(name):
            done[name] = "not armed"
        elif wgf_confirm_run.undo(host, name):
            done[name] = "undone"
        else:
            done[name] = "undone, a step failed"
    return done


def confirm_report():
    """
    Send the event ``wireguard/confirm/undone`` for each undo not reported yet (the
    timer's or the boot unit's, while salt-minion was down), mark it reported, and
    return the list of the events' data (``interface``, ``mode``, ``time``, ``failed``).
    The formula's reactor (``reactor/wireguard-confirm.sls``) calls it at each minion
    start; ``wireguard.confirm_armed`` at each run.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.confirm_report
    """
    return wgf_confirm_run.report(wgf_host.Host(__salt__))


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
