"""
The Prometheus alert rules of the fleet's WireGuard metrics (issue 22, docs/metrics.md).

:depends: the formula's utils on the master (``salt-run saltutil.sync_all``)

Salt loads this file with ``_runners/wireguard.py`` as one runner, ``wireguard``: here
lives ``wireguard.alert_rules``. What each minion's rules need comes from the pillar
the master compiles itself for it (``salt-run pillar.show_pillar``): its interfaces'
``max_key_age`` and its ``wireguard:lookup:metrics``; the rules file itself is
``wgf_metrics.alert_rules``.
"""

import importlib
import logging

import salt.utils.minions
from salt.exceptions import SaltInvocationError

import wgf_args
import wgf_metrics
import wgf_pipeline
import wgf_reload
import wgf_rotate

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"


def __virtual__():
    return __virtualname__


def _minion_data(minion):
    """``{"max_key_age": {interface: days}, "metrics": settings or None}`` of
    ``minion``'s pillar as the master compiles it; None without a ``wireguard`` pillar.
    Raises SaltInvocationError when that pillar cannot be read."""
    pillar = __salt__["pillar.show_pillar"](minion)
    if not isinstance(pillar, dict) or pillar.get("_errors"):
        raise SaltInvocationError(f"the master cannot compile the pillar of {minion}")
    wireguard = pillar.get("wireguard")
    if wireguard is None:
        return None
    compiled = wgf_pipeline.compile_pillar(wireguard, minion)
    lookup = wireguard.get("lookup") if isinstance(wireguard.get("lookup"), dict) else {}
    # the textfile is the minion's path: whether it is a directory there is its own check
    metrics = wgf_metrics.check(lookup.get("metrics"), isdir=lambda path: False)
    return {
        "max_key_age": {
            name: iface["max_key_age"]
            for name, iface in compiled["interfaces"].items()
            if not iface["absent"] and iface.get("max_key_age")
        },
        "metrics": metrics,
    }


def alert_rules(tgt="*", tgt_type="glob"):
    """
    Print a Prometheus rules file (YAML, one group ``wireguard``) made from the
    targeted minions' pillar, for the series of ``wireguard.metrics``:

    - ``WireGuardPeerDown``: a peer pillar declares (``wireguard_peer_expected == 1``)
      that is not up (``wireguard_peer_up == 0``) for 5 minutes;
    - ``WireGuardKeyTooOld``: an interface's private key older than its
      ``max_key_age`` (the comment lists where pillar sets it);
    - ``WireGuardClientExpiresSoon``: a client whose ``expires`` comes within 7 days;
    - ``WireGuardMetricsStale``: a textfile (``lookup:metrics:textfile``) that
      node_exporter's ``node_textfile_mtime_seconds`` shows older than 3 intervals for
      5 minutes: salt-minion, which writes it, is down.

    A minion whose pillar the master cannot compile or check is named in the file's
    header and left out.

    tgt, tgt_type
        Whose pillar to read (default: all minions).

    CLI Example:

    .. code-block:: bash

        salt-run wireguard.alert_rules > /etc/prometheus/rules/wireguard.yml
        salt-run wireguard.alert_rules tgt='G@role:vpn' tgt_type=compound
    """
    tgt, tgt_type = wgf_rotate.checked_target(tgt, tgt_type)
    minions = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)["minions"]
    found, skipped = {}, []
    for minion in sorted(minions):
        try:
            data = _minion_data(minion)
        except SaltInvocationError as exc:
            log.warning("wireguard.alert_rules: %s left out: %s", minion, exc)
            skipped.append(minion)
            continue
        if data is not None:
            found[minion] = data
    text = wgf_metrics.alert_rules(found, skipped)
    if __opts__.get("output"):
        return text
    return {"outputter": "txt", "data": text}


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
