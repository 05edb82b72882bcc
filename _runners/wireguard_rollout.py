"""
Roll the formula out to a fleet in waves, each confirmed or undone (issue 21).

:depends: the formula's ``wireguard`` execution module on the minions, with
    ``wireguard.confirm_accept`` and ``wireguard.confirm_undo`` (``saltutil.sync_all``)

Salt loads this file with ``_runners/wireguard.py`` as one runner, ``wireguard``: here
lives ``wireguard.rollout``. Each wave runs ``state.apply wireguard`` with the pillar
override ``wireguard_rollout: {hold: S}``: the minions' confirm keeps the change armed
after its probes pass, for S seconds, until this runner accepts or undoes it. The waves,
what the state returns say and the health verdicts are the plain functions of
``_utils/wgf_rollout.py``.
"""

import importlib
import logging

import wgf_jobs
import wgf_reload
import wgf_rollout
import wgf_rotate

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"

#: Seconds to wait for a wave's state runs when no timeout is given.
APPLY_TIMEOUT = 300
#: Seconds to wait for ``wireguard.check`` (a minion that does not answer is unhealthy),
#: and then for a silent minion to say it still runs it (Salt's ``gather_job_timeout``).
CHECK_TIMEOUT = 15
GATHER_TIMEOUT = 5


def __virtual__():
    return __virtualname__


def _job(tgt, fun, arg=(), tgt_type="list", timeout=None, kwarg=None, **more):
    """``{minion: return}`` of one job (``wgf_jobs.ask``)."""
    return wgf_jobs.ask(__opts__, tgt, fun, arg, tgt_type, timeout, kwarg, **more)


def _checks(minions, timeout):
    if not minions:
        return {}
    return _job(
        sorted(minions),
        "wireguard.check",
        kwarg={"sample": 0},
        timeout=timeout,
        gather_job_timeout=GATHER_TIMEOUT,
    )


def rollout(tgt, tgt_type="glob", batch=1, canary=None, hold=None, timeout=None):
    """
    Apply ``state.apply wireguard`` to the targeted minions in waves: the canary first
    (when given), then batches. After each wave it checks the health of the wave and of
    its partners (``wireguard.check`` on each minion that peers with a changed one, so
    a hub still hears its spokes): an error that was not there before the wave, a
    failed state or a minion that does not answer is unhealthy. A healthy wave is
    confirmed (``wireguard.confirm_accept``); the first unhealthy one is undone
    (``wireguard.confirm_undo``: the minions' own confirm does it) and the rollout
    stops there, exiting non-zero. No later wave is touched.

    tgt, tgt_type
        The minions to roll out to (those answering ``test.ping``).
    batch
        Minions per wave after the canary: a number (default 1) or a share such as
        ``25%`` (of all targeted minions, rounded up).
    canary
        A targeted minion that goes first, alone.
    hold
        Seconds a wave's change stays armed after its probes pass, while the runner
        judges it (default 300, from 5 to 3600); if the runner dies, the minions undo
        it then.
    timeout
        Seconds to wait for each wave's state runs (default 300).

    Returns ``{"ok", "waves": [{"minions", "changed", "health": {minion: {"ok",
    "problems"}}, "undone"}], "stopped" (the index of the wave it stopped at, or
    None), "untouched" (minions of the waves not run), "retcode" (1 when it stopped:
    salt-run exits with it)}``.

    CLI Example:

    .. code-block:: bash

        salt-run wireguard.rollout tgt='vpn*'
        salt-run wireguard.rollout tgt='G@role:vpn' tgt_type=compound batch=25% canary=hub1
    """
    tgt, tgt_type = wgf_rotate.checked_target(tgt, tgt_type)
    wgf_rollout.checked_batch(batch)
    canary = wgf_rollout.checked_canary(canary)
    hold = wgf_rollout.checked_hold(wgf_rollout.HOLD_DEFAULT if hold is None else hold)
    timeout = wgf_rotate.checked_timeout(timeout) or APPLY_TIMEOUT
    answered = _job(tgt, "test.ping", tgt_type=tgt_type)
    waves = wgf_rollout.plan([m for m, r in answered.items() if r is True], batch, canary)
    # before anything changes: every minion's check, to find partners and old errors
    before = _job(
        "*", "wireguard.check", tgt_type="glob", kwarg={"sample": 0}, timeout=CHECK_TIMEOUT
    )
    fleet = wgf_rollout.peering(before)
    done, stopped = [], None
    for index, wave in enumerate(waves):
        applied = _job(
            wave,
            "state.apply",
            ["wireguard"],
            kwarg={"pillar": {wgf_rollout.PILLAR_KEY: {"hold": hold}}},
            timeout=timeout,
        )
        changed = [m for m in wave if wgf_rollout.changed(applied.get(m))]
        partners = [m for m in wgf_rollout.partners(changed, fleet) if m not in wave]
        after = _checks(wave + partners, timeout=CHECK_TIMEOUT)
        health = {
            m: wgf_rollout.judge(after.get(m), before.get(m), applied.get(m), in_wave=m in wave)
            for m in wave + partners
        }
        ok = wgf_rollout.healthy(health)
        if ok:
            _job(wave, "wireguard.confirm_accept")
        else:
            undone = _job(wave, "wireguard.confirm_undo")
            log.info("wireguard.rollout: wave %s unhealthy, undone: %s", index + 1, undone)
        done.append(wgf_rollout.wave_report(wave, changed, health, undone=not ok))
        if not ok:
            stopped = index
            break
    untouched = sorted(m for wave in waves[len(done) :] for m in wave)
    # salt-run exits with the return's "retcode"; orchestrate reads __context__'s
    retcode = 0 if stopped is None else 1
    if retcode:
        __context__["retcode"] = retcode
    log.info("wireguard.rollout:\n%s", wgf_rollout.text_report(done, stopped, untouched))
    return {
        "ok": stopped is None,
        "waves": done,
        "stopped": stopped,
        "untouched": untouched,
        "retcode": retcode,
    }
