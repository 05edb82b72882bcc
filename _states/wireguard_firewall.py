"""
The formula's firewall: ``table inet wireguard`` (nftables) or the ``WIREGUARD-*``
chains (iptables) for NAT, forwarding, the listen port and per-peer access.

A second file of the ``wireguard`` state module, by concern: Salt loads the states of
both files under the one name (``wireguard.firewall``, ``wireguard.firewall_absent``).
What the rules are is ``_utils/wgf_firewall.py``; this runs ``nft`` and
``ip(6)tables-save``/``-restore``, compares with the live rule set and applies.
"""

import importlib
import tempfile

from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_args
import wgf_firewall
import wgf_host
import wgf_reload
import wgf_state

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    if "wireguard.pillar_interfaces" not in __salt__:
        return (False, "The wireguard execution module did not load")
    return __virtualname__


def _guarded(ret, func, *args):
    try:
        return func(ret, *args)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return wgf_state.failed(ret, exc)


def _pending(ret, comment):
    return wgf_state.pending(ret, comment, __opts__["test"])


def _run(argv, stdin=None):
    return wgf_host.Host(__salt__).run(argv, stdin)


def _nft_live():
    """``nft list table inet wireguard``, or None when there is no such table."""
    out = __salt__["cmd.run_all"](
        ["nft", "list", "table", "inet", wgf_firewall.TABLE],
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="quiet",
    )
    if out["retcode"] != 0:
        if "No such file or directory" in out["stderr"]:
            return None
        raise CommandExecutionError(f"nft list table: {out['stderr'].strip()}")
    return out["stdout"].strip() + "\n"


def _in_scratch_namespace(argv):
    """Run ``argv`` in a new, empty network namespace that ends with it: what the
    kernel makes of a rule set, without touching the minion's firewall."""
    return _run(["unshare", "--net", "--", *argv])


def _nft_canonical(table_text):
    """``table_text`` as ``nft list table`` prints it back."""
    if table_text is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as script:
        script.write(table_text)
        script.flush()
        # a `list` in the same nft -f batch would show the table before its rules
        return (
            _in_scratch_namespace(
                [
                    "sh",
                    "-c",
                    'nft -f "$1" && nft list table inet "$2"',
                    "sh",
                    script.name,
                    wgf_firewall.TABLE,
                ]
            ).strip()
            + "\n"
        )


def _ipt_tools(version):
    prefix = "iptables" if version == 4 else "ip6tables"
    return f"{prefix}-save", f"{prefix}-restore"


def _ipt_restore(version, text, scratch=False):
    """Feed ``text`` to ``ip(6)tables-restore --noflush``; in a scratch namespace, return
    what ``ip(6)tables-save`` then shows of the formula's chains."""
    save, restore = _ipt_tools(version)
    with tempfile.NamedTemporaryFile("w", suffix=".rules") as rules:
        rules.write(text)
        rules.flush()
        if not scratch:
            _run([restore, "--noflush", rules.name])
            return None
        shown = _in_scratch_namespace(
            ["sh", "-c", '"$1" --noflush "$3" && "$2"', "sh", restore, save, rules.name]
        )
    return wgf_firewall.iptables_ours(shown)


def _ipt_live(version):
    save, _ = _ipt_tools(version)
    if not __salt__["cmd.has_exec"](save):
        return []
    return wgf_firewall.iptables_ours(_run([save]))


def _firewall_plan(interfaces, backend):
    """``{part: (live, wanted, apply)}`` for each part (nftables, iptables, ip6tables)
    whose live state differs from what ``backend`` wants; ``apply()`` makes it so."""
    plan = {}
    if __salt__["cmd.has_exec"]("nft"):
        table = wgf_firewall.nft_table(interfaces) if backend == "nftables" else None
        live, wanted = _nft_live(), _nft_canonical(table)
        if live != wanted:
            script = wgf_firewall.nft_replace(table)
            plan["nftables"] = (live, wanted, lambda s=script: _run(["nft", "-f", "-"], stdin=s))
    for version, part in ((4, "iptables"), (6, "ip6tables")):
        live = _ipt_live(version)
        if not live and backend != "iptables":
            continue
        rules = wgf_firewall.iptables_rules(interfaces, version) if backend == "iptables" else None
        wanted = (
            _ipt_restore(version, wgf_firewall.iptables_restore(rules, set()), True)
            if rules
            else []
        )
        if live == wanted:
            continue
        jumps = wgf_firewall.iptables_jumps(live)
        if rules:
            text = wgf_firewall.iptables_restore(rules, jumps)
        else:
            chains = {line.split()[1][1:] for line in live if line.split()[1].startswith(":")}
            text = wgf_firewall.iptables_removal(chains, jumps)
        plan[part] = (live, wanted, lambda v=version, t=text: _ipt_restore(v, t))
    return plan


def firewall(name, config_dir=None):
    """
    The formula's firewall is exactly what pillar asks for: ``table inet wireguard``
    under ``wireguard:lookup:firewall: nftables``, the ``WIREGUARD-*`` chains under
    ``iptables``, and nothing of the formula's in the other (or in either with
    ``none``). Each is replaced in one transaction; no other table or chain is touched,
    and no interface is restarted.

    name
        Only a state ID (the rule set covers every interface of pillar).
    """
    return _guarded(wgf_state.ret(name), _firewall, config_dir)


def _firewall(ret, config_dir):
    interfaces = list(__salt__["wireguard.pillar_interfaces"](config_dir=config_dir).values())
    backend = __salt__["wireguard.pillar_settings"]()["firewall"] if interfaces else "none"
    return _firewall_converge(ret, _firewall_plan(interfaces, backend))


def firewall_absent(name):
    """
    Nothing of the formula's firewall is left: no ``table inet wireguard``, no
    ``WIREGUARD-*`` chain and no jump to one.

    name
        Only a state ID.
    """
    return _guarded(
        wgf_state.ret(name), lambda ret: _firewall_converge(ret, _firewall_plan([], "none"))
    )


def _firewall_converge(ret, plan):
    if not plan:
        ret["comment"] = "The formula's firewall is as wanted"
        return ret
    ret["changes"] = {
        part: {"old": live or None, "new": wanted or None}
        for part, (live, wanted, _) in plan.items()
    }
    if __opts__["test"]:
        return _pending(ret, f"The formula's firewall would change ({', '.join(plan)})")
    for _, _, apply in plan.values():
        apply()
    return _pending(ret, f"The formula's firewall changed ({', '.join(plan)})")


# Last: every state above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals(), wgf_args.state_refused)
