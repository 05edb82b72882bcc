"""
The ``wireguard`` execution module's metrics (issue 22): Prometheus text exposition of
the live peers by their pillar names, for node_exporter's textfile collector.

One of the files Salt loads as ``wireguard`` (see ``wireguard.py``). The series are
``_utils/wgf_metrics.py`` (built with ``prometheus_client``); the textfile is written
through the host adapter (``wgf_host.Host.write_textfile``).

:depends: prometheus_client (``pip install prometheus-client``; the pip extension
    brings it)
"""

import datetime
import importlib
import os
import time

from salt.exceptions import CommandExecutionError

import wgf_addr
import wgf_args
import wgf_files
import wgf_host
import wgf_keys
import wgf_layout
import wgf_metrics
import wgf_networks
import wgf_quota
import wgf_reload

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_keys.module_virtual(__virtualname__)


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _networks():
    """``{interface: network name}`` of the mine-driven networks this minion is a node
    of (unmasked: Salt 3008 masks pillar.get outside renders)."""
    networks = __salt__["pillar.get"]("wireguard:networks", {}, unmask=True)
    return {
        settings["interface"]: name
        for name, settings in wgf_networks.member_networks(networks, __opts__["id"])
    }


def _still_scheduled(textfile):
    """Whether the saved schedule still runs the metrics job for ``textfile``."""
    saved = __salt__["schedule.list"](show_all=True, return_yaml=False, offline=True)
    job = saved.get(wgf_metrics.JOB) if isinstance(saved, dict) else None
    return isinstance(job, dict) and (job.get("kwargs") or {}).get("textfile") == textfile


def metrics(interface=None, textfile=None, config_dir=None, scheduled=False):
    """
    Return the Prometheus text exposition (the format node_exporter's textfile
    collector reads) of this minion's WireGuard peers, or of ``interface``'s only.

    Each peer carries the labels ``interface``, ``peer`` (its pillar name: the peer's,
    the network node's or the client's; the public key's first 8 characters for a live
    peer pillar does not declare), ``network`` (the network's name, else empty) and
    ``kind`` (``peer``, ``client`` or ``node``). The series:
    ``wireguard_peer_up`` (the staleness rule of ``wireguard.check``),
    ``wireguard_peer_expected`` (1: pillar declares it, also when it is not live),
    ``wireguard_peer_latest_handshake_age_seconds``,
    ``wireguard_peer_receive_bytes_total``, ``wireguard_peer_transmit_bytes_total``,
    ``wireguard_interface_key_age_seconds`` (the private key file's age),
    ``wireguard_interface_max_key_age_seconds`` (pillar's ``max_key_age``), and
    ``wireguard_verify_failures`` where the reachability verify (issue 22, part 1)
    left a result on this minion; per client where pillar sets them
    ``wireguard_client_expiry_timestamp_seconds``, ``wireguard_client_quota_bytes`` and
    ``wireguard_client_quota_used_bytes`` (this period's use, both directions). No key
    material is in it.

    interface
        Only this interface.
    textfile
        Also write the exposition to this file, atomically and 0644 (the minion's
        scheduler does, every ``wireguard:lookup:metrics:interval`` seconds).
    scheduled
        Passed by the scheduler's job: the file is written only while the saved
        schedule still has that job for that file, so a run that outlived
        ``wireguard.clean`` (or a move of the textfile) does not write it back.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.metrics
        salt-call wireguard.metrics wg0 --out=json
        salt-call wireguard.metrics textfile=/var/lib/prometheus/node-exporter/wireguard.prom
    """
    if interface is not None:
        wgf_addr.check_interface_name(interface)
    if textfile is not None:
        textfile = wgf_metrics.check_textfile(textfile, "textfile")
    directory = __salt__["wireguard_layout.config_dir"](config_dir)
    declared = __salt__["wireguard.pillar_interfaces"](config_dir=directory)
    live = __salt__["wireguard.show"]()
    if interface is not None and interface not in live and interface not in declared:
        raise CommandExecutionError(f"interface '{interface}' is not in pillar and is not up")
    layout = wgf_layout.Layout(directory)
    names = set(live) | set(declared)
    records = wgf_metrics.series(
        live,
        declared,
        _networks(),
        {name: _mtime(layout.key(name)) for name in names},
        wgf_metrics.verify_result(wgf_files.read(wgf_layout.VERIFY_RESULT)),
        time.time(),
        interface,
        use=wgf_quota.use_of(
            wgf_host.Host(__salt__), declared, datetime.datetime.now(datetime.timezone.utc)
        ),
    )
    if textfile is not None and (not scheduled or _still_scheduled(textfile)):
        wgf_host.Host(__salt__).write_textfile(textfile, wgf_metrics.registry(records))
    return wgf_metrics.exposition(records)


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
