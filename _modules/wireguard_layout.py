"""
The formula's layout on a minion: its map checked, and the systemd drop-in that points
``wg-quick@<if>`` at a config directory that is not ``/etc/wireguard``.

Its own name (``wireguard_layout``), as ``wireguard_rotate``: the SLS and the states
call it; what is checked and written is ``_utils/wgf_layout.py``.
"""

import copy
import importlib

import salt.utils.data

import wgf_addr
import wgf_args
import wgf_layout
import wgf_reload

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard_layout"

#: A state run's ``__context__`` holds the run's file client (``salt.state.State``):
#: ``run_map`` keeps the map data there, for that run and no longer.
RUN_MARK = "fileclient"
MAP_MEMO = "wireguard_layout.run_map"


def __virtual__():
    return __virtualname__


def check_map(values):
    """
    Return the formula's map data (``parameters/`` merged with pillar
    ``wireguard:lookup``) when every value is of its type and every path is one the
    formula may own; else raise an error naming each bad ``wireguard:lookup:<key>``.
    ``map.jinja`` checks through ``run_map``, so a bad lookup fails every SLS before
    anything changes.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard_layout.check_map '{"config_dir": "/etc/wireguard", ...}'
    """
    return wgf_layout.check_map(values)


def run_map(name, values=None, remember=False):
    """
    Return the map data this state run already checked for the formula directory
    ``name`` (with this minion's OS grains and pillar ``wireguard:lookup``), or None;
    with ``remember=True``, check ``values`` as ``check_map`` does, keep them for the
    rest of the run and return them. Every SLS file asks here first and imports
    ``map.jinja`` only on None: so ``map.jinja`` and its ``parameters/`` layers are
    fetched and rendered once a run, not once per file (issue 24). Outside a state run
    nothing is kept.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard_layout.run_map wireguard
    """
    kept = __context__.setdefault(MAP_MEMO, {}) if RUN_MARK in __context__ else {}
    lookup = salt.utils.data.traverse_dict_and_list(__pillar__, "wireguard:lookup", {})
    key = wgf_addr.checked_repr(
        [name, __grains__.get("os_family"), __grains__.get("os"), lookup], "wireguard:lookup"
    )
    if remember:
        kept[key] = check_map(values)
    found = kept.get(key)
    return None if found is None else copy.deepcopy(found)


def service_dropin(interface, config_dir, service=wgf_layout.DEFAULT_SERVICE):
    """
    On systemd, return ``{"path": ..., "text": ...}`` of the drop-in that makes the
    stock ``wg-quick@<interface>`` unit run ``<config_dir>/<interface>.conf`` (its
    ExecStart, ExecStop and ExecReload name the file); ``text`` is None where there
    must be no drop-in: the default config dir, or a unit of your own
    (``wireguard:lookup:service:name``). None on other init systems.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard_layout.service_dropin wg0 /etc/wireguard-rot
    """
    return wgf_layout.dropin(interface, config_dir, service, __grains__.get("init"))


def service_link(interface, config_dir, link_target=None):
    """
    On OpenRC with Alpine's init script (``/etc/init.d/wg-quick``, which runs
    ``wg-quick up <interface>`` and so reads ``/etc/wireguard/<interface>.conf``, and
    which no ``/etc/conf.d`` file can point elsewhere), return ``{"path":
    "/etc/wireguard/<interface>.conf", "target": "<config_dir>/<interface>.conf"}``:
    the link that makes it run the formula's file; ``target`` is None where there must
    be no link (the default config dir). None for any other init script.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard_layout.service_link wg0 /etc/wireguard-rot /etc/init.d/wg-quick
    """
    return wgf_layout.openrc_link(interface, config_dir, link_target)


def config_dir(config_dir=None):  # pylint: disable=redefined-outer-name
    """
    Return the config directory the formula uses on this minion: ``config_dir`` when
    given, else pillar ``wireguard:lookup:config_dir`` (read unmasked), else
    ``/etc/wireguard``; checked either way (an absolute, normalised path that is not a
    system directory), or an error naming ``wireguard:lookup:config_dir``.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard_layout.config_dir
    """
    return wgf_layout.config_dir(
        wgf_layout.read_lookup(__salt__["pillar.get"]), config_dir if config_dir != "" else None
    )


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
