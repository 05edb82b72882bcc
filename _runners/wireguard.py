"""
Audit the WireGuard network of the whole fleet, and draw it.

:depends: the formula's ``wireguard`` execution module on the minions (``saltutil.sync_all``);
    Graphviz ``dot`` on the master for SVG pictures (optional)

``salt-run wireguard.audit`` asks every targeted minion, in one job, for its live
interfaces (``wireguard.show``), its public keys (``wireguard.public_keys``), its own
diagnosis with the peers of its config files (``wireguard.check``) and its addresses
(``network.interfaces``). It then cross-checks every pair of minions whose interfaces
are peers:

- key pairing both ways: the key A holds for B is B's real public key;
- B's tunnel address is inside the AllowedIPs A holds for B;
- A's endpoint for B is where B listens (one of B's addresses, B's listen port);
- the handshake as both ends see it;
- asymmetric pairs: A holds B, but B does not hold A;
- forwarding: B sends A traffic for networks beyond A (AllowedIPs wider than A's
  address), so A must forward;
- peers that belong to no minion are listed (that is fine: phones, laptops...).

Each problem names both minions and both interfaces and says the fix in one sentence.
The readable report is the default; ``--out=json`` (or ``yaml``, ``nested``, or
``report=data``) gives the structure.

The cross-checks are plain functions of plain data in ``_utils/wgf_audit.py``
(``salt-run saltutil.sync_all`` ships it to the master), unit-tested without a
master. Each end's handshake is judged by ``wireguard.check`` with the one rule
(``wgf_staleness.link_state``) the beacon uses too.
"""

import importlib
import logging
import os

import salt.client
import salt.utils.minions
from salt.exceptions import SaltInvocationError

import wgf_audit
import wgf_audit_report
import wgf_fleet
import wgf_host
import wgf_psk
import wgf_reload
import wgf_rotate
import wgf_staleness
import wgf_verify_report

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"

STALE_AFTER = wgf_staleness.STALE_AFTER


def __virtual__():
    return __virtualname__


def _ask_minions(tgt, tgt_type, timeout, stale_after):
    """``{minion: {function: return}}`` from one compound job; and who did not answer."""
    client = salt.client.get_local_client(mopts=__opts__)
    args = [[], [], [{"stale_after": stale_after, "__kwarg__": True}], [], []]
    try:
        returned = (
            client.cmd(
                tgt,
                [*wgf_fleet.FUNCTIONS, VERIFY_FACTS],
                args,
                tgt_type=tgt_type,
                timeout=timeout or __opts__.get("timeout", 10),
            )
            or {}
        )
    finally:
        client.destroy()
    try:
        targeted = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)["minions"]
    except Exception:  # only used to name minions that did not answer
        log.debug("wireguard.audit: could not list the targeted minions", exc_info=True)
        targeted = []
    return returned, sorted(set(targeted) - set(returned))


#: Asked in the audit's job too: the reachability assertions' facts (issue 22).
VERIFY_FACTS = "wireguard.verify_facts"


def _static_verdicts(returned):
    """The static verdicts of the reachability assertions (``salt-run wireguard.verify
    live=false``) from the audit job's answers, ``{"error"}`` when they cannot be
    decided, or None when no minion has any. A minion without the function (not synced
    yet) takes no part."""
    answers = {m: (funs or {}).get(VERIFY_FACTS) for m, funs in returned.items()}
    try:
        facts = wgf_verify_report.facts_from(
            {
                m: a
                for m, a in answers.items()
                if isinstance(a, dict) or (isinstance(a, str) and "wireguard:expect" in a)
            }
        )
        assertions, decisions = wgf_verify_report.static(facts)
    except SaltInvocationError as exc:
        return {"error": str(exc)}
    if not assertions:
        return None
    return wgf_verify_report.result(assertions, decisions)


def _build(tgt, tgt_type, timeout, stale_after):
    tgt, tgt_type = wgf_rotate.checked_target(tgt, tgt_type)
    timeout = wgf_rotate.checked_timeout(timeout)
    stale_after = wgf_rotate.checked_stale_after(stale_after)
    returned, unreachable = _ask_minions(tgt, tgt_type, timeout, stale_after)
    fleet = wgf_fleet.fleet_from(
        {
            m: {f: a for f, a in funs.items() if f != VERIFY_FACTS}
            if isinstance(funs, dict)
            else funs
            for m, funs in returned.items()
        }
    )
    # minions without any WireGuard interface take no part
    fleet_wg = {m: e for m, e in fleet.items() if e["interfaces"] or e["error"]}
    crossed = wgf_audit.cross_check(fleet_wg, stale_after)
    local = {m: e["local"] for m, e in fleet_wg.items() if e["local"]}
    ok = (
        not any(p["severity"] in ("error", "warning") for p in crossed["problems"])
        and not any(
            p["severity"] in ("error", "warning") for items in local.values() for p in items
        )
        and not unreachable
        and not any(e["error"] for e in fleet_wg.values())
    )
    verified = _static_verdicts({m: f for m, f in returned.items() if isinstance(f, dict)})
    ok = ok and not (verified and (verified.get("error") or verified["failed"]))
    result = {
        "ok": ok,
        "problems": crossed["problems"],
        "local": local,
        "links": crossed["links"],
        "unknown_peers": crossed["unknown_peers"],
        "unreachable": unreachable,
        "minions": {
            m: {
                "error": e["error"],
                "interfaces": sorted(e["interfaces"]),
                "key_age_days": {i: f["key_age_days"] for i, f in sorted(e["interfaces"].items())},
            }
            for m, e in fleet_wg.items()
        },
    }
    if verified is not None:
        result["verify"] = verified
    return fleet_wg, result


def _graph_into(result, fleet, graph, svg):
    if graph not in (None, "dot", "mermaid"):
        raise SaltInvocationError("graph is dot or mermaid")
    dot_text = wgf_audit_report.dot(fleet, result["links"], result["unknown_peers"])
    if graph:
        result["graph"] = (
            dot_text
            if graph == "dot"
            else wgf_audit_report.mermaid(fleet, result["links"], result["unknown_peers"])
        )
    if svg:
        wgf_psk.refuse_in_store(os.path.expanduser(str(svg)), __opts__["cachedir"], "svg")
        result["svg"], result["graph_error"] = wgf_host.render_svg(dot_text, svg)


def _present(result, text, report):
    if report not in ("auto", "text", "data"):
        raise SaltInvocationError("report is auto, text or data")
    if report == "data" or (report == "auto" and __opts__.get("output")):
        return result
    return {"outputter": "txt", "data": text}


def audit(
    tgt="*",
    tgt_type="glob",
    timeout=None,
    stale_after=STALE_AFTER,
    graph=None,
    svg=None,
    report="auto",
):
    """
    Cross-check the WireGuard peers of every targeted minion, pair by pair.

    tgt, tgt_type
        Which minions to ask (default: all).
    timeout
        Seconds to wait for the minions.
    stale_after
        Seconds without a handshake after which a link with a keepalive is stale.
    graph
        ``dot`` or ``mermaid``: add the network's picture as text (key ``graph``).
    svg
        Write the picture as SVG to this path on the master (needs Graphviz).
    report
        ``auto`` (default): a readable report, or the structure when ``--out`` is
        given; ``text``; ``data``: the structure ``{"ok", "problems", "local",
        "links", "unknown_peers", "unreachable", "minions"}``, and ``verify`` where
        the minions' pillar holds reachability assertions (``wireguard:expect``): their
        static verdicts, as ``salt-run wireguard.verify live=false`` returns them (or
        ``{"error"}``); a failed one makes the audit not ok. Each problem has
        ``severity``, ``check``, ``minion``, ``interface``, ``peer_minion``,
        ``peer_interface``, ``peer`` (public key), ``message`` and ``fix``.

    CLI Example:

    .. code-block:: bash

        salt-run wireguard.audit
        salt-run wireguard.audit --out=json
        salt-run wireguard.audit tgt='G@roles:vpn' tgt_type=compound svg=/tmp/wg.svg
    """
    fleet, result = _build(tgt, tgt_type, timeout, stale_after)
    if graph or svg:
        _graph_into(result, fleet, graph, svg)
    text = wgf_audit_report.text_report(result)
    if result.get("graph"):
        text += "\n\n" + result["graph"]
    return _present(result, text, report)


def graph(tgt="*", tgt_type="glob", format="dot", svg=None, timeout=None, stale_after=STALE_AFTER):
    """
    Draw who peers with whom, each link labelled with its handshake state (up, idle,
    never, one-sided, stale, broken, one-way, down), as Graphviz DOT or Mermaid text.
    With ``svg`` and Graphviz on the master, also write the picture there.

    CLI Example:

    .. code-block:: bash

        salt-run wireguard.graph > wireguard.dot
        salt-run wireguard.graph format=mermaid
        salt-run wireguard.graph svg=/srv/www/wireguard.svg
    """
    if format not in ("dot", "mermaid"):
        raise SaltInvocationError("format is dot or mermaid")
    fleet, result = _build(tgt, tgt_type, timeout, stale_after)
    _graph_into(result, fleet, format, svg)
    text = result["graph"]
    if svg:
        text += (
            f"// {result['graph_error'] or 'SVG written to ' + result['svg']}\n"
            if format == "dot"
            else f"%% {result['graph_error'] or 'SVG written to ' + result['svg']}\n"
        )
    if __opts__.get("output"):
        return {k: result[k] for k in ("graph", "svg", "graph_error") if k in result}
    return {"outputter": "txt", "data": text}
