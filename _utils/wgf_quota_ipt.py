"""Client quotas under ``lookup:firewall: iptables`` (issue 23): the rules that count a
client's traffic and stop it once its quota is used up, in the kernel, as the nftables
table's quota objects do (``wgf_quota``).

iptables has no named quota that several rules share, so each counted client gets a
chain of its own per IP version, ``WIREGUARD-Q-<digest of its object name>``, that every
packet of the client passes through, in both directions:

- the jumps, first in ``WIREGUARD-INPUT``/``-FORWARD`` (what the client sends) and
  ``-FORWARD``/``-OUTPUT`` (what it is sent), comment ``<if> client <c> quota``;
- in the client's chain: the ``quota`` match with what is left of the quota, whose rule
  (comment ``<if> client <c> quota <object>``) returns; then a DROP (comment ``... quota
  <object> of <quota>``: a new quota is a change of the rules). Once the match has let
  the quota through, the packet falls to the DROP. The two rules' bytes are the
  client's count (as an nftables quota object's, what was dropped counts too).
- used up over both IP versions together (each quota match only sees its own): the
  saver (every 30 s) puts a DROP first in both chains, comment ``<object>-over``; a
  rebuild starts both matches at 0 left instead.

The count is summed over both IP versions; the IPv4 counting rule carries it across a
rebuild (``iptables-restore --counters``; ip6tables-nft 1.8
sets no counters), with the quota match started at what is left. A client without an
IPv4 address keeps its count on an IPv4 rule that matches nothing (source 0.0.0.0).
"""

import hashlib
import ipaddress
import re

import wgf_quota

CHAIN_PREFIX = "WIREGUARD-Q-"
_CHAIN = re.compile(re.escape(CHAIN_PREFIX) + "[0-9a-f]{12}")
_LEFT = re.compile(r"-m quota --quota \d+ ")
_OVER = re.compile(r" --comment quota_\S+-over -j DROP$")
_COUNTING = re.compile(r' quota (quota_[^" ]+)"')


def chain(obj):
    """The client's chain of object ``obj`` (24 characters: iptables allows 28)."""
    return CHAIN_PREFIX + hashlib.sha256(obj.encode()).hexdigest()[:12]


def is_quota_chain(name):
    """Whether ``name`` is a client's chain (as :func:`chain` names it, and no other)."""
    return bool(_CHAIN.fullmatch(name))


def rules(interfaces, version, carry=None):
    """``{chain: [rule arguments]}`` of IP ``version``: the jumps into the counted
    clients' chains (``WIREGUARD-INPUT``/``-FORWARD``/``-OUTPUT``, to go first) and
    those chains. ``carry``: ``{object: bytes}`` used in this period
    (``wgf_quota.carried``; None: 0): each quota match starts at what is left (0 for a
    used-up quota: the client is stopped in both IP versions)."""
    carry = carry or {}
    chains = {"WIREGUARD-INPUT": [], "WIREGUARD-FORWARD": [], "WIREGUARD-OUTPUT": []}
    for iface in sorted(interfaces, key=lambda i: i["name"]):
        ifname = iface["name"]
        for name, quota, _, addresses in wgf_quota.quota_clients(iface):
            obj = wgf_quota.object_name(ifname, name)
            ips = [ip for ip in map(ipaddress.ip_address, addresses) if ip.version == version]
            counting = f'-m comment --comment "{wgf_quota.ipt_comment(ifname, name)}"'
            if not ips:
                if version == 4:  # the rule that carries the count: source 0.0.0.0 only
                    chains["WIREGUARD-INPUT"].append(f"-s 0.0.0.0/32 -i {ifname} {counting}")
                continue
            own = chain(obj)
            for ip in ips:
                host = f"{ip}/{ip.max_prefixlen}"
                matches = {"in": f"-s {host} -i {ifname}", "out": f"-d {host} -o {ifname}"}
                for direction in wgf_quota.DIRECTIONS:
                    for builtin in wgf_quota.IPT_CHAINS[direction]:
                        chains[builtin].append(
                            f'{matches[direction]} -m comment --comment "{ifname} client '
                            f'{name} quota" -j {own}'
                        )
            left = max(quota - int(carry.get(obj, 0)), 0)
            dropped = f'-m comment --comment "{wgf_quota.ipt_comment(ifname, name, quota)}"'
            chains[own] = [f"-m quota --quota {left} {counting} -j RETURN", f"{dropped} -j DROP"]
    return {name: lines for name, lines in chains.items() if lines}


def without_counting(lines):
    """``lines`` of the formula's rules (``wgf_iptables.iptables_ours``) without what
    the counting changes: what each quota match has left, and the saver's DROPs. Neither
    is a change of the rules."""
    return [_LEFT.sub("-m quota ", line) for line in lines if not _OVER.search(line)]


def with_counts(restore_text, carry):
    """``restore_text`` (``iptables-restore`` input) with each object's carried count
    (``{object: bytes}``) on its counting rule, for ``iptables-restore --counters``
    (IPv4: ip6tables-nft 1.8 ignores counters)."""
    lines, done = [], set()
    for line in restore_text.splitlines():
        match = _COUNTING.search(line) if line.startswith("-A ") else None
        if match and match[1] not in done and carry.get(match[1]):
            done.add(match[1])
            line = f"[0:{int(carry[match[1]])}] {line}"
        lines.append(line)
    return "\n".join(lines) + "\n"
