"""One job from a runner to its minions (the rollout's waves and checks, verify's facts
and probes): Salt's ``LocalClient`` asked once with ``full_return``, destroyed after,
each minion's return taken out of Salt's envelope. Minions that did not answer are
missing from the answer; what they returned is untrusted data for the caller to read."""

import salt.client

#: ``saltutil.refresh_pillar``'s arguments that end its job only once the minion has
#: loaded the new pillar and its modules again (within the timeout, in seconds). A
#: minion with ``multiprocessing: False`` runs jobs as threads of the process that
#: reloads: a state run started meanwhile may find no ``wireguard`` module.
REFRESH_WAITS = {"wait": True, "timeout": 120}


def ask(opts, tgt, fun, arg=(), tgt_type="list", timeout=None, kwarg=None, succeeded=False, **more):
    """``{minion: return}`` of one job of ``fun`` on ``tgt`` (a list of minion ids by
    default); ``timeout`` defaults to the master's ``timeout`` (10 s). ``succeeded``:
    only the minions whose job ended with retcode 0. ``more`` goes to
    ``LocalClient.cmd`` (``gather_job_timeout``)."""
    client = salt.client.get_local_client(mopts=opts)
    try:
        returned = (
            client.cmd(
                tgt,
                fun,
                list(arg),
                tgt_type=tgt_type,
                timeout=timeout or opts.get("timeout", 10),
                kwarg=kwarg,
                full_return=True,
                **more,
            )
            or {}
        )
    finally:
        client.destroy()
    if succeeded:
        returned = {
            m: r for m, r in returned.items() if isinstance(r, dict) and r.get("retcode", 0) == 0
        }
    return {m: r.get("ret") if isinstance(r, dict) else None for m, r in returned.items()}
