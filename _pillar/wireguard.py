"""
The preshared keys of mine-driven networks, each minion only its own pairs'.

:depends: the formula's ``_utils/wgf_*.py`` on the master (``salt-run saltutil.sync_all``)

Enable it in the master config, and nothing else is needed:

.. code-block:: yaml

    ext_pillar:
      - wireguard: {}

For each minion, the answer holds the key of every pair of a network with
``preshared_keys: true`` the minion is one end of:
``{"wireguard": {"network_psks": {network: {partner minion id: key}}}}``.

It only reads ``<cachedir>/wireguard/psks.json`` (0600), which the runner writes from
the pillar the master compiles itself (``salt-run wireguard.ensure_psks``, run by the
orchestration, makes missing keys; ``salt-run wireguard.rotate_psks`` replaces them).
It never makes a key and never reads the pillar it is handed: Salt merges a minion's
``pillar_override`` into that pillar before ext_pillars run, so a minion could put any
network there. An answer costs the minion's own pairs (the store is parsed again only
when it changed).
"""

import importlib
import logging

import wgf_psk
import wgf_reload

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"


def __virtual__():
    return __virtualname__


def ext_pillar(minion_id, pillar, *args, **kwargs):  # pylint: disable=unused-argument
    """``{"wireguard": {"network_psks": {network: {partner: key}}}}`` for ``minion_id``,
    or nothing when no stored pair has it as an end. ``pillar`` is not read: the
    minion can shape it (``pillar_override``)."""
    keys = wgf_psk.keys_of(__opts__["cachedir"], str(minion_id))
    if not keys:
        return {}
    log.debug(
        "wireguard ext_pillar: preshared keys of %d pair(s) for %s",
        sum(len(k) for k in keys.values()),
        minion_id,
    )
    return {"wireguard": {"network_psks": keys}}
