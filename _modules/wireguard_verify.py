"""
The ``wireguard`` execution module's reachability assertions (issue 22, docs/verify.md):
what the minion tells ``salt-run wireguard.verify`` (``verify_facts``) and the live
probes it runs from its tunnel addresses (``verify_probe``).

One of the files Salt loads as ``wireguard`` (see ``wireguard.py``). The commands and the
probes run through the host adapter (``wgf_host.Host``); the facts are composed and the
probes checked by ``_utils/wgf_verify_report.py``. No private or preshared key is read
or returned here.
"""

import importlib
import json

from salt.exceptions import SaltInvocationError

import wgf_args
import wgf_host
import wgf_keys
import wgf_layout
import wgf_reload
import wgf_verify
import wgf_verify_report

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_keys.module_virtual(__virtualname__)


def _facts():
    host = wgf_host.Host(__salt__)
    pillar = __salt__["pillar.get"]("wireguard", {}, unmask=True)
    raw = pillar.get("expect") if isinstance(pillar, dict) else None
    wgf_verify.expect(raw)  # refused here too, naming the assertion and the key
    declared = __salt__["wireguard.pillar_interfaces"]()
    has_wg = host.has_exec("wg")
    live = __salt__["wireguard.show"]() if has_wg else {}
    own = __salt__["wireguard.public_keys"]() if has_wg else {}
    routes = []
    for family in ("-4", "-6"):
        routes += host.ip_json([family, "route", "show", "table", "all"])
    links = host.ip_json(["address", "show"])
    return wgf_verify_report.facts(declared, live, own, routes, links, host.forwarding(), raw or [])


def verify_facts():
    """
    Return what ``salt-run wireguard.verify`` decides this minion's part of the
    reachability assertions from (no private or preshared key): per WireGuard
    interface (pillar's and live ones) its ``address``, ``listen_port``,
    ``public_key``, ``up``, ``masquerade``, ``access`` rules, ``firewall`` backend and
    ``peers`` by name (``allowed_ips``: live while the interface runs, else pillar's;
    ``pillar_allowed_ips``); the minion's unicast ``routes`` of every table, its
    ``addresses``, ``forwarding`` (``ipv4``, ``ipv6``) and pillar ``wireguard:expect``
    (checked: a bad assertion is refused, naming it and the key).

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.verify_facts
        salt 'hub*' wireguard.verify_facts --out=json
    """
    return _facts()


def verify_probe(probes=None):
    """
    Probe reachability live from this minion's tunnel addresses, all probes at once
    (each waits 2 s at most): ICMP (``ping -I <source>``), a TCP connect bound to the
    source, or a UDP datagram a listener answers. ``salt-run wireguard.verify`` sends
    every minion's probes in one job. Writes ``{"time", "passed", "failed"}`` of the
    probed assertions to ``/var/lib/wireguard-formula/verify/last.json``.

    probes
        A list of probes, or a mapping of minion id to its list (this minion takes its
        own). A probe: ``{"id", "to" (address), "proto" (icmp, tcp, udp), "port",
        "source" (one of this minion's tunnel addresses), "allow", "static"}``.

    Returns ``{"results": [{"id", "live": "allow"|"block"}], "last": {"time",
    "passed", "failed"} or None}``.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.verify_probe '[{to: 10.0.0.1, proto: icmp, source: 10.0.0.2}]'
    """
    if isinstance(probes, dict):
        probes = probes.get(__opts__["id"], [])
    if probes is None:
        raise SaltInvocationError("probes: give the probes to run (a list)")
    host = wgf_host.Host(__salt__)
    own = []
    if isinstance(probes, list) and probes:
        own = wgf_verify_report.tunnel_addresses(_facts())
    checked = wgf_verify_report.checked_probes(probes, own)
    if not checked:
        return {"results": [], "last": None}
    answers = host.probe_many(
        [(p["proto"], p["source"], p["to"], p["port"]) for p in checked],
        timeout=wgf_verify_report.PROBE_TIMEOUT,
    )
    answer = wgf_verify_report.probe_results(checked, answers)
    host.write_result(wgf_layout.VERIFY_RESULT, json.dumps(answer["last"]) + "\n")
    return answer


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
