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
import wgf_host
import wgf_plan
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


def firewall(name, config_dir=None):
    """
    The formula's firewall is exactly what pillar asks for: ``table inet wireguard``
    under ``wireguard:lookup:firewall: nftables``, the ``WIREGUARD-*`` chains under
    ``iptables``, and nothing of the formula's in the other (or in either with
    ``none``). Each is replaced in one transaction; no other table or chain is touched,
    and no interface is restarted. Clients' quota counts are carried into a new table
    (iptables: into the new IPv4 counting rules; from the live ones, else from the
    saver's file after a reboot), and the
    quota saver (``wireguard-quota.timer``; OpenRC: a loop, started again at boot by
    ``/etc/init.d/wireguard-quota``) is installed while a client
    has a quota and removed when none has; a changing count alone is no change.

    name
        Only a state ID (the rule set covers every interface of pillar).
    """
    return wgf_state.guarded(wgf_state.ret(name), _firewall, config_dir)


def _firewall(ret, config_dir):
    interfaces = list(__salt__["wireguard.pillar_interfaces"](config_dir=config_dir).values())
    backend = __salt__["wireguard.pillar_settings"]()["firewall"] if interfaces else "none"
    host = _host()
    plan = wgf_plan.firewall(host, interfaces, backend)
    return _firewall_converge(ret, {**plan, **wgf_plan.quota_saver(host, interfaces, backend)})


def firewall_absent(name):
    """
    Nothing of the formula's firewall is left: no ``table inet wireguard``, no
    ``WIREGUARD-*`` chain and no jump to one.

    name
        Only a state ID.
    """
    return wgf_state.guarded(
        wgf_state.ret(name),
        lambda ret: _firewall_absent(ret, _host()),
    )


def _firewall_absent(ret, host):
    plan = wgf_plan.firewall(host, [], "none")
    return _firewall_converge(ret, {**plan, **wgf_plan.quota_saver(host, [], "none")})


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
