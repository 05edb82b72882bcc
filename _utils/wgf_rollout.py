"""The fleet rollout (issue 21): ``salt-run wireguard.rollout`` applies the formula in
waves and judges each wave's health; here the pure parts, plain data in and out.

- ``plan``: the canary first (when given), then batches of the rest (a count, or a
  share of all targeted minions rounded up), sorted, so a run is repeatable;
- ``changed`` and ``failures``: what a minion's ``state.apply`` return says;
- ``peering`` and ``partners``: from the minions' ``wireguard.check`` facts, who holds a
  changed minion's public key as a peer, or whose key a changed minion holds (the hub
  of a spoke, the spokes of a hub);
- ``judge``: a minion of the wave or a partner is healthy when it answered, its state
  run (wave only) failed nothing, and its check has no error it did not have before
  the wave (a problem that was already there does not stop a rollout).

The minions' answers are untrusted data: a malformed answer is unhealthy, never an
exception; what a message quotes of an answer has anything shaped like a key hidden.
"""

import math

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_confirm

#: Seconds an armed undo stays armed after a wave's probes passed, while the runner
#: judges the wave's health (``wireguard_rollout: {hold: S}``); the minion's own timer
#: undoes the wave when the runner dies.
HOLD_DEFAULT = 300
HOLD_MIN = wgf_confirm.TIMEOUT_MIN
HOLD_MAX = wgf_confirm.TIMEOUT_MAX
#: The pillar override each wave's state run gets.
PILLAR_KEY = "wireguard_rollout"
#: The checks whose errors count (every check of ``wireguard.check``).
FATAL = "error"


def _shown(value, length=200):
    return wgf_addr.hide_keys(str(value))[:length]


def checked_batch(batch):
    """``batch`` as given on the command line: a count of minions (``1``, ``"3"``) or a
    share of the targeted minions (``"25%"``). Returns ``(count, None)`` or
    ``(None, percent)``."""
    if isinstance(batch, bool):
        batch = None
    text = str(batch).strip() if isinstance(batch, (int, str)) else ""
    percent = text.endswith("%")
    digits = text[:-1].strip() if percent else text
    if digits.isdigit() and len(digits) <= 4 and digits.isascii():
        number = int(digits)
        if percent and 1 <= number <= 100:
            return None, number
        if not percent and 1 <= number <= 9999:
            return number, None
    raise SaltInvocationError(
        "batch is a number of minions (1 or more) or a share of them from 1% to 100%, "
        f"not {wgf_addr.shown(batch)}"
    )


def checked_hold(hold):
    """Whole seconds from 5 to 3600 an armed undo waits for the runner's verdict."""
    if isinstance(hold, str) and hold.strip().isdigit() and len(hold.strip()) <= 5:
        hold = int(hold.strip())
    if isinstance(hold, bool) or not isinstance(hold, int) or not HOLD_MIN <= hold <= HOLD_MAX:
        raise SaltInvocationError(
            f"hold is a whole number of seconds from {HOLD_MIN} to {HOLD_MAX}, "
            f"not {wgf_addr.shown(hold)}"
        )
    return hold


def checked_canary(canary):
    """None, or a minion id: a non-empty string on one line."""
    if canary is None:
        return None
    if not isinstance(canary, str) or not canary or wgf_addr.LINE_BREAKING.search(canary):
        raise SaltInvocationError("canary is a minion id: a non-empty string on one line")
    return canary


def batch_size(total, batch):
    """How many minions a batch holds: ``checked_batch``'s answer applied to ``total``
    targeted minions (a share rounded up, at least one)."""
    count, percent = checked_batch(batch)
    if count is not None:
        return count
    return max(1, math.ceil(total * percent / 100))


def plan(minions, batch=1, canary=None):
    """The waves, a list of sorted lists of minion ids: ``[canary]`` first when given,
    then batches of the others. ``canary`` must be one of ``minions``."""
    minions = sorted(set(minions))
    canary = checked_canary(canary)
    size = batch_size(len(minions), batch)
    waves = []
    rest = minions
    if canary is not None:
        if canary not in minions:
            raise SaltInvocationError(
                f"canary {wgf_addr.shown(canary)} is not one of the targeted minions that answered"
            )
        waves.append([canary])
        rest = [m for m in minions if m != canary]
    waves += [rest[i : i + size] for i in range(0, len(rest), size)]
    return waves


def _states(ret):
    """The state results of a ``state.apply`` return, or None when it is not one."""
    if not isinstance(ret, dict) or not ret:
        return None
    if not all(isinstance(r, dict) for r in ret.values()):
        return None
    return ret


def changed(ret):
    """Whether a minion's ``state.apply`` return changed anything."""
    states = _states(ret)
    return bool(states) and any(r.get("changes") for r in states.values())


def failures(ret):
    """What a minion's ``state.apply`` return says went wrong: a list of texts (empty
    when every state succeeded), in the order the states ran."""
    if ret is None:
        return ["no answer"]
    states = _states(ret)
    if states is None:
        if isinstance(ret, list):  # Salt's render errors come as a list of texts
            return [_shown(r) for r in ret[:5]] or ["an empty answer"]
        return [f"not a state return: {_shown(ret)}"]

    def order(item):
        run = item[1].get("__run_num__", 0)
        return run if isinstance(run, int) else 0

    return [
        f"{_shown(r.get('__id__') or sid, 80)}: {_shown(r.get('comment'))}"
        for sid, r in sorted(states.items(), key=order)
        if r.get("result") is False
    ]


def _interfaces(check):
    interfaces = check.get("interfaces") if isinstance(check, dict) else None
    return interfaces if isinstance(interfaces, dict) else {}


def peering(checks):
    """``{minion: {"keys": {its public keys}, "peers": {its peers' public keys}}}`` from
    ``{minion: wireguard.check return}`` (facts of each interface; malformed parts are
    left out)."""
    out = {}
    for minion, check in checks.items():
        keys, peers = set(), set()
        for entry in _interfaces(check).values():
            facts = entry.get("facts") if isinstance(entry, dict) else None
            if not isinstance(facts, dict):
                continue
            if isinstance(facts.get("public_key"), str):
                keys.add(facts["public_key"])
            if isinstance(facts.get("peers"), dict):
                peers.update(k for k in facts["peers"] if isinstance(k, str))
        out[minion] = {"keys": keys, "peers": peers}
    return out


def partners(changed_minions, fleet):
    """The minions (sorted, not among ``changed_minions``) that peer with a changed one
    in ``fleet`` (``peering``'s answer): they hold its key, or it holds theirs."""
    changed_set = set(changed_minions)
    keys = set().union(*(fleet[m]["keys"] for m in changed_set if m in fleet))
    peers = set().union(*(fleet[m]["peers"] for m in changed_set if m in fleet))
    return sorted(
        m
        for m, entry in fleet.items()
        if m not in changed_set and (entry["peers"] & keys or entry["keys"] & peers)
    )


def _errors(check):
    """``{(interface, check, peer): message}`` of the errors a check return reports."""
    found = {}
    if not isinstance(check, dict):
        return found
    places = [(None, check.get("problems"))]
    places += [
        (name, entry.get("problems"))
        for name, entry in _interfaces(check).items()
        if isinstance(entry, dict)
    ]
    for interface, problems in places:
        for p in problems if isinstance(problems, list) else []:
            if isinstance(p, dict) and p.get("severity") == FATAL:
                key = (str(interface), str(p.get("check")), str(p.get("peer")))
                found[key] = _shown(p.get("message"))
    return found


def new_errors(before, after):
    """The error messages of ``after`` (a ``wireguard.check`` return) that ``before``
    did not have (the same check of the same interface and peer)."""
    old = _errors(before)
    return [message for key, message in sorted(_errors(after).items()) if key not in old]


def judge(check_after, check_before=None, state_ret=None, in_wave=True):
    """``{"ok": bool, "problems": [texts]}`` of one minion after a wave: the wave's
    minions by their state run and their check, a partner by its check alone."""
    problems = []
    if in_wave:
        problems += [f"state: {f}" for f in failures(state_ret)]
    if not isinstance(check_after, dict) or not isinstance(check_after.get("interfaces"), dict):
        problems.append(
            "wireguard.check: no answer"
            if check_after is None
            else f"wireguard.check: not a report: {_shown(check_after)}"
        )
    else:
        problems += [f"wireguard.check: {m}" for m in new_errors(check_before, check_after)]
    return {"ok": not problems, "problems": problems}


def healthy(health):
    """Whether every minion judged (``{minion: judge(...)}``) is healthy."""
    return all(h["ok"] for h in health.values())


def wave_report(minions, changed_minions, health, undone):
    """One wave as the runner returns it."""
    return {
        "minions": sorted(minions),
        "changed": sorted(changed_minions),
        "health": dict(sorted(health.items())),
        "undone": bool(undone),
    }


def text_report(waves, stopped, untouched):
    """Readable lines: one per wave, then why it stopped."""
    lines = []
    for i, wave in enumerate(waves, 1):
        sick = {m: h for m, h in wave["health"].items() if not h["ok"]}
        verdict = "undone" if wave["undone"] else ("healthy" if not sick else "unhealthy")
        lines.append(
            f"wave {i}: {', '.join(wave['minions'])}: {verdict}"
            f" (changed: {', '.join(wave['changed']) or 'none'})"
        )
        for minion, h in sorted(sick.items()):
            lines += [f"  {minion}: {p}" for p in h["problems"]]
    if stopped is not None:
        lines.append(
            f"stopped at wave {stopped + 1}; not applied: {', '.join(untouched) or 'none'}"
        )
    return "\n".join(lines)
