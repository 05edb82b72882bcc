"""
The preshared keys of mine-driven networks, each minion only its own pairs'.

:depends: the formula's ``_utils/wgf_*.py`` on the master (``salt-run saltutil.sync_all``)

Enable it in the master config, and nothing else is needed:

.. code-block:: yaml

    ext_pillar:
      - wireguard: {}

For each network of ``wireguard:networks`` that sets ``preshared_keys: true`` and has
the minion as a node, the answer holds one key per partner the minion peers with:
``{"wireguard": {"network_psks": {network: {partner minion id: key}}}}``. The master
makes each key the first time either end of the pair asks, from fresh randomness, and
keeps it in ``<cachedir>/wireguard/psks.json`` (0600); ``salt-run
wireguard.rotate_psks`` replaces them. The networks are read from the pillar the
master compiled for this minion before the ext_pillar ran.
"""

import importlib
import logging

import wgf_addr
import wgf_keys
import wgf_networks
import wgf_psk
import wgf_schema

# Read the utils again when Salt loads this module again (after saltutil.sync_all).
for _util in (wgf_addr, wgf_keys, wgf_networks, wgf_schema, wgf_psk):
    importlib.reload(_util)

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"


def __virtual__():
    return __virtualname__


def ext_pillar(minion_id, pillar, *args, **kwargs):  # pylint: disable=unused-argument
    """``{"wireguard": {"network_psks": {network: {partner: key}}}}`` for ``minion_id``,
    or nothing when it is in no network with preshared keys."""
    wireguard = pillar.get("wireguard") if isinstance(pillar, dict) else None
    networks = wireguard.get("networks") if isinstance(wireguard, dict) else None
    keys = wgf_psk.keys_for(__opts__["cachedir"], networks, str(minion_id))
    if not keys:
        return {}
    log.debug("wireguard ext_pillar: preshared keys of %d pair(s) for %s",
              sum(len(k) for k in keys.values()), minion_id)
    return {"wireguard": {"network_psks": keys}}
