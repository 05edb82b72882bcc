"""Client ``limits`` (issue 23) in the formula's firewall: what is left there of them.

Rates (``limits.rate``) are no longer firewall rules: tc shapes them on the WireGuard
interface, the same for every firewall backend (``wgf_tc``, state
``wireguard.client_rates``). The firewall keeps the place for per-client rules that
must see every path a client's traffic takes: the output chain (``IPT_OUTPUT``,
nftables' ``chain output``) is there only while such a rule needs it.

Quotas (``limits.quota``/``period``) are not enforced here yet: until then each client
with a quota gets a warning (``quota_warnings``).
"""

#: The iptables chain for what the minion itself sends, there only while a rule needs it.
IPT_OUTPUT = ("WIREGUARD-OUTPUT", "OUTPUT")


def quota_warnings(iface):
    """A warning per present client whose ``limits`` set a ``quota``: quotas are parsed
    and shown, not enforced yet."""
    return [
        f"interface {iface['name']!r}, client {name!r}: limits:quota is not enforced yet "
        "(only rate is): its traffic is not stopped when the quota is used up"
        for name, client in sorted(iface.get("clients", {}).items())
        if not client.get("absent") and (client.get("limits") or {}).get("quota")
    ]
