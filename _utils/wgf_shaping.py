"""Client ``limits`` (issue 23) in the formula's firewall: what is left there of them.

Rates (``limits.rate``) are no longer firewall rules: tc shapes them on the WireGuard
interface, the same for every firewall backend (``wgf_tc``, state
``wireguard.client_rates``). Quotas (``limits.quota``/``period``) are counted in the
firewall (``wgf_quota``). The firewall keeps the place for per-client rules that
must see every path a client's traffic takes: the output chain (``IPT_OUTPUT``,
nftables' ``chain output``) is there only while such a rule needs it.
"""

#: The iptables chain for what the minion itself sends, there only while a rule needs it.
IPT_OUTPUT = ("WIREGUARD-OUTPUT", "OUTPUT")
