"""
The formula's firewall: ``table inet wireguard`` (nftables) or the ``WIREGUARD-*``
chains (iptables) for NAT, forwarding, the listen port and per-peer access.

A second file of the ``wireguard`` state module, by concern: Salt loads the states of
both files under the one name (``wireguard.firewall``, ``wireguard.firewall_absent``).
What the rules are is ``_utils/wgf_firewall.py``; this compares them with the live rule
set and applies them, through the host adapter (``wgf_host.Host``: ``nft`` and
``ip(6)tables-save``/``-restore``).
"""

import importlib

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


def _pending(ret, comment):
    return wgf_state.pending(ret, comment, __opts__["test"])


def _host():
    """The host adapter: made here and nowhere else in this file (the unit tests hand in
    a fake one)."""
    return wgf_host.Host(__salt__)


def _nft_canonical(host, table_text):
    """``table_text`` as ``nft list table`` prints it back."""
    if table_text is None:
        return None
    return host.nft_canonical(wgf_firewall.TABLE, table_text)


def _ipt_live(host, version):
    return wgf_firewall.iptables_ours(host.iptables_save(version) or "")


def _firewall_plan(host, interfaces, backend):
    """``{part: (live, wanted, apply)}`` for each part (nftables, iptables, ip6tables)
    whose live state differs from what ``backend`` wants; ``apply()`` makes it so."""
    plan = {}
    if host.has_exec("nft"):
        table = wgf_firewall.nft_table(interfaces) if backend == "nftables" else None
        live, wanted = host.nft_table(wgf_firewall.TABLE), _nft_canonical(host, table)
        if live != wanted:
            script = wgf_firewall.nft_replace(table)
            plan["nftables"] = (live, wanted, lambda s=script: host.nft_apply(s))
    for version, part in ((4, "iptables"), (6, "ip6tables")):
        live = _ipt_live(host, version)
        if not live and backend != "iptables":
            continue
        rules = wgf_firewall.iptables_rules(interfaces, version) if backend == "iptables" else None
        wanted = (
            wgf_firewall.iptables_ours(
                host.iptables_canonical(version, wgf_firewall.iptables_restore(rules, set()))
            )
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
        plan[part] = (live, wanted, lambda v=version, t=text: host.iptables_restore(v, t))
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
    return wgf_state.guarded(wgf_state.ret(name), _firewall, config_dir)


def _firewall(ret, config_dir):
    interfaces = list(__salt__["wireguard.pillar_interfaces"](config_dir=config_dir).values())
    backend = __salt__["wireguard.pillar_settings"]()["firewall"] if interfaces else "none"
    return _firewall_converge(ret, _firewall_plan(_host(), interfaces, backend))


def firewall_absent(name):
    """
    Nothing of the formula's firewall is left: no ``table inet wireguard``, no
    ``WIREGUARD-*`` chain and no jump to one.

    name
        Only a state ID.
    """
    return wgf_state.guarded(
        wgf_state.ret(name),
        lambda ret: _firewall_converge(ret, _firewall_plan(_host(), [], "none")),
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
