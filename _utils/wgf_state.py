"""What the formula's state modules share: the shape of a state's return, and a restart
that copes with systemd's start limit and puts the old config back. Plain Python: the
states hand in ``__opts__["test"]`` and the service's restart as callables."""

from salt.exceptions import CommandExecutionError


def ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def pending(result, comment, test):
    """``result`` for test mode when there are changes (None), or after applying them."""
    result["comment"] = comment
    if test:
        result["result"] = None
    return result


def failed(result, exc):
    result.update(result=False, changes={}, comment=str(exc))
    return result


# ------------------------------------------------------------------ restarts

#: systemd refuses to start a unit that was started more than ``StartLimitBurst`` times
#: within ``StartLimitIntervalSec`` (5 in 10 s by default), until the interval has
#: passed or ``systemctl reset-failed`` flushes its counter. The unit's ``Result`` is
#: then this, and systemctl says the start "was attempted too often".
START_LIMIT_HIT = "start-limit-hit"
START_LIMIT_SAID = "attempted too often"


def start_limit_hit(result, said=""):
    """Whether systemd refused a start for the unit's start limit: ``result`` is the
    unit's ``Result`` property (None without systemd), ``said`` what the start said."""
    return result == START_LIMIT_HIT or START_LIMIT_SAID in (said or "")


def config_comment(path, service, restart, result, test=False):
    """The comment of a config state with changes: the file, the restart and why, and
    whether systemd's start limit of ``service`` was (in test mode: would be) reset."""
    changes = result["changes"]
    if set(changes) == {"start_limit_reset"}:
        comment = f"{path} is as pillar says"
    elif test:
        comment = f"{path} would be updated" + (f" and {service} restarted" if restart else "")
    else:
        comment = f"{path} updated" + (
            f"; {service} restarted because {restart}" if restart else ""
        )
    if "start_limit_reset" in changes or changes.get("restarted", {}).get("start_limit_reset"):
        comment += (
            f"; systemd's start limit of {service} {'would be' if test else 'was'} "
            "reset (it had refused to start it again so soon)"
        )
    return comment


def _attempt(restart):
    """``restart()``: Salt's service modules return False or raise when it fails."""
    try:
        return None if restart() else "the service did not start"
    except CommandExecutionError as exc:
        return str(exc) or "the service did not start"


def restarted(restart, result=None, reset_failed=None):
    """Restart a service; returns ``(None, limited)`` when it runs again, else ``(what
    it said, limited)``. ``limited``: systemd had refused the start for the unit's
    start limit, so its failed state and start counter were reset (``reset_failed()``)
    and it was restarted once more. A start that fails on its own is not retried.

    ``result()`` and ``reset_failed()`` are systemd's (``systemctl show -p Result``,
    ``systemctl reset-failed``); without systemd (OpenRC) they are None and a failed
    restart is what it is. Why not a drop-in raising the unit's limit instead: the
    limit is the admin's (it guards every unit against restart loops, and a drop-in
    would change it for starts the formula does not make); the formula restarts once
    per changed config, so it clears only the refusal of its own restart."""
    error = _attempt(restart)
    if error is None or result is None or reset_failed is None:
        return error, False
    try:
        limited = start_limit_hit(result(), error)
    except CommandExecutionError:
        limited = start_limit_hit(None, error)
    if not limited:
        return error, False
    try:
        reset_failed()
    except CommandExecutionError as exc:  # the caller still puts the old file back
        return f"{error} ({exc})", False
    return _attempt(restart), True


def restart_with_fallback(service, path, restart, put_back, said, result=None, reset_failed=None):
    """Restart ``service`` after its config ``path`` changed; returns whether systemd's
    start limit had to be reset (see ``restarted``). When the restart fails,
    ``put_back()`` restores the previous file (None: there was none) and the service
    is restarted with it the same way, so an interface that was up before stays up;
    then raises CommandExecutionError with what ``said()`` (the service's log) says.
    """
    error, limited = restarted(restart, result, reset_failed)
    if error is None:
        return limited
    log = said()
    if put_back is None:
        raise CommandExecutionError(f"{service} failed to restart: {log}")
    put_back()
    again, _ = restarted(restart, result, reset_failed)
    raise CommandExecutionError(
        f"{service} failed with the new {path}, so the previous file was put back"
        f"{' and is running again' if again is None else ' (which failed too)'}. "
        f"The service said: {log}"
    )
