"""What the formula's state modules share: the shape of a state's return and running
a command that must succeed. Plain Python: the states hand in ``__opts__["test"]`` and
``__salt__["cmd.run_all"]``."""

from salt.exceptions import CommandExecutionError

import wgf_conf


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


def command(run_all, argv, stdin=None):
    """Run ``argv`` (no shell, output never logged); its stdout, or raise naming it
    (``wg`` quotes a key it cannot read: the message is masked)."""
    out = run_all(argv, python_shell=False, ignore_retcode=True, stdin=stdin,
                  output_loglevel="quiet")
    if out["retcode"] != 0:
        error = wgf_conf.mask(out.get("stderr") or out.get("stdout")).strip()
        raise CommandExecutionError(f"{' '.join(argv)}: {error}")
    return out["stdout"]
