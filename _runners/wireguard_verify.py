"""
Reachability assertions of the fleet (issue 22, docs/verify.md): ``wireguard.verify``.

:depends: the formula's ``wireguard`` execution module on the minions, with
    ``wireguard.verify_facts`` and ``wireguard.verify_probe`` (``saltutil.sync_all``)

Salt loads this file with ``_runners/wireguard.py`` as one runner, ``wireguard``. It asks
the targeted minions for their facts and their pillar ``wireguard:expect`` in one job,
decides every assertion statically (``_utils/wgf_verify.py``: the packet followed hop
by hop and back), then, with ``live``, asks the minions that send to probe, all in one
job (``_utils/wgf_verify_report.py`` plans and reads it).
"""

import importlib
import logging

import salt.output
from salt.exceptions import SaltInvocationError

import wgf_jobs
import wgf_reload
import wgf_rotate
import wgf_verify_report

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"

#: Seconds to wait for the minions' facts and for their probes (each probe waits 2 s;
#: a minion runs its probes at once).
FACTS_TIMEOUT = 15
PROBE_TIMEOUT = 20


def __virtual__():
    return __virtualname__


def _static_verdicts(tgt="*", tgt_type="glob", timeout=None):
    """``(assertions, decisions, facts)`` of the targeted minions: the static part."""
    tgt, tgt_type = wgf_rotate.checked_target(tgt, tgt_type)
    timeout = wgf_rotate.checked_timeout(timeout) or FACTS_TIMEOUT
    facts = wgf_verify_report.facts_from(
        wgf_jobs.ask(__opts__, tgt, "wireguard.verify_facts", tgt_type=tgt_type, timeout=timeout)
    )
    assertions, decisions = wgf_verify_report.static(facts)
    return assertions, decisions, facts


def verify(tgt="*", tgt_type="glob", live=True, timeout=None, report="auto"):
    """
    Check the reachability assertions of pillar ``wireguard:expect`` (each targeted
    minion's, gathered): each ``from`` -> ``to`` (``proto`` icmp, tcp or udp with
    ``port``) must be reachable (``allow: true``) or blocked (``allow: false``).

    The static verdict follows the packet through what the minions report (their
    interfaces, peers and AllowedIPs of pillar and of the live ``wg`` state, routes,
    forwarding, the formula's masquerade and ``access`` rules) and back: ``allow``, or
    ``block`` with the first hop that drops it and why. With ``live`` (default), each
    assertion whose ``from`` is a minion is also probed from that minion's tunnel
    address (all minions in one job, 2 s per probe): an assertion passes when static
    and live agree with ``allow``; static and live disagreeing is a finding of its own
    (something outside the formula's model). A ``from`` that is no minion gets the
    static check only. Names no minion knows are refused before anything is probed.

    tgt, tgt_type
        The minions whose pillar and facts count (default: all).
    live
        Probe too (default true).
    timeout
        Seconds to wait for the minions' facts (default 15), and for their probes
        when longer than the default 20.
    report
        ``auto`` (default): the table, or the structure when ``--out`` is given;
        ``text``; ``data``.

    Returns ``{"assertions": [{"from", "to", "proto", "port", "allow", "static",
    "live", "pass", "path", "reason"}], "passed", "failed", "retcode"}`` (retcode 1 when
    any assertion failed: salt-run exits with it, orchestrate's ``salt.runner`` fails).

    CLI Example:

    .. code-block:: bash

        salt-run wireguard.verify
        salt-run wireguard.verify tgt='G@role:vpn' tgt_type=compound live=false
        salt-run wireguard.verify --out=json
    """
    if not isinstance(live, bool):
        raise SaltInvocationError("live is true or false")
    if report not in ("auto", "text", "data"):
        raise SaltInvocationError("report is auto, text or data")
    assertions, decisions, _ = _static_verdicts(tgt, tgt_type, timeout)
    # a large fleet on busy minions may need longer than PROBE_TIMEOUT for the probe job
    probe_timeout = max(PROBE_TIMEOUT, wgf_rotate.checked_timeout(timeout) or 0)
    found, notes = {}, {}
    if live:
        planned = wgf_verify_report.probes(assertions, decisions)
        if planned:
            answers = wgf_jobs.ask(
                __opts__,
                sorted(planned),
                "wireguard.verify_probe",
                timeout=probe_timeout,
                kwarg={"probes": planned},
            )
            found, notes = wgf_verify_report.live_of(answers, planned)
    result = wgf_verify_report.result(assertions, decisions, found, notes)
    retcode = 1 if result["failed"] else 0
    if retcode:
        __context__["retcode"] = retcode
    result["retcode"] = retcode
    text = wgf_verify_report.text_table(result)
    log.info("wireguard.verify:\n%s", text)
    if report == "data" or (report == "auto" and __opts__.get("output")):
        return result
    # the table, then only the counts and the retcode salt-run exits with (a return
    # of just "outputter" and "data" would lose it)
    salt.output.display_output(text, "txt", __opts__)
    return {"passed": result["passed"], "failed": result["failed"], "retcode": retcode}
