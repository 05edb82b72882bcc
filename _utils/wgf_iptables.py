"""The formula's iptables chains (``lookup:firewall: iptables``): the rules of each IP
version, rendered from the same validated pillar as the nftables table (``wgf_firewall``),
the ``iptables-restore`` input that replaces or removes them, and what of a saved rule set
is the formula's (for the plan's comparison and confirm's records)."""

import wgf_firewall
import wgf_quota_ipt
import wgf_shaping

#: The formula's iptables chains, per table, and the built-in chain that jumps to each.
IPTABLES_CHAINS = {
    "filter": (("WIREGUARD-INPUT", "INPUT"), ("WIREGUARD-FORWARD", "FORWARD")),
    "nat": (("WIREGUARD-POSTROUTING", "POSTROUTING"),),
}


def _ipt_ports(ports):
    return ",".join(p.replace("-", ":") for p in ports)


def _ipt_access(iface, version):
    name, rules = iface["name"], []
    head = f"-i {name}"
    rules.append(f"{head} -m conntrack --ctdir REPLY -j ACCEPT")
    rules.append(f"{head} -m conntrack --ctstate RELATED -j ACCEPT")
    for number, rule in enumerate(iface["access"]["rules"], 1):
        if version not in wgf_firewall.rule_families(rule):
            continue
        sources, targets = wgf_firewall.rule_families(rule)[version]
        if rule["proto"] == "icmp":
            match = f"-p {wgf_firewall.ICMP[version]}"
        elif rule["ports"]:
            match = f"-p {rule['proto']} -m multiport --dports {_ipt_ports(rule['ports'])}"
        elif rule["proto"] != "any":
            match = f"-p {rule['proto']}"
        else:
            match = ""
        comment = f'-m comment --comment "{name} rule {number}"'
        for source in sources:
            for target in targets or [None]:
                parts = [
                    f"-s {source}",
                    f"-d {target}" if target else "",
                    head,
                    match,
                    comment,
                    "-j ACCEPT",
                ]
                rules.append(" ".join(p for p in parts if p))
    default = iface["access"]["default"].upper()
    rules.append(f'{head} -m comment --comment "{name} default" -j {default}')
    return rules


def _ipt_open_port(iface, version):
    port, allowed, name = iface["listen_port"], iface["open_port"], iface["name"]
    match = f'-p udp -m udp --dport {port} -m comment --comment "{name} open_port"'
    if allowed is True:
        return [f"{match} -j ACCEPT"]
    sources = wgf_firewall.by_version(allowed)[version]
    return [f"-s {cidr} {match} -j ACCEPT" for cidr in sources] + [f"{match} -j DROP"]


def iptables_rules(interfaces, version, carry=None):
    """``{table: {chain: [rule arguments]}}`` of the formula's chains for IP ``version``
    (4: iptables, 6: ip6tables), or None when no interface needs them. The jumps into
    the clients' quota chains come first, and those chains are in ``filter``
    (``wgf_quota_ipt.rules``; ``carry``: the counts of this period)."""
    output = wgf_shaping.IPT_OUTPUT[0]
    rules = {
        "WIREGUARD-INPUT": [],
        "WIREGUARD-FORWARD": [],
        output: [],
        "WIREGUARD-POSTROUTING": [],
    }
    needed = False
    for iface in sorted(interfaces, key=lambda i: i["name"]):
        if not wgf_firewall.needs_table(iface):
            continue
        needed, name = True, iface["name"]
        if iface["open_port"]:
            rules["WIREGUARD-INPUT"] += _ipt_open_port(iface, version)
        if iface["access"]:
            rules["WIREGUARD-INPUT"] += _ipt_access(iface, version)
            rules["WIREGUARD-FORWARD"] += _ipt_access(iface, version)
        if iface["masquerade"]:
            comment = f'-m comment --comment "{name} masquerade"'
            if not iface["access"]:
                rules["WIREGUARD-FORWARD"].append(f"-i {name} {comment} -j ACCEPT")
            rules["WIREGUARD-FORWARD"].append(
                f"-o {name} -m conntrack --ctstate RELATED,ESTABLISHED {comment} -j ACCEPT"
            )
            rules["WIREGUARD-POSTROUTING"] += [
                f"-s {net} -o {out} {comment} -j MASQUERADE"
                for out in iface["masquerade"]
                for net in wgf_firewall.tunnel_networks(iface)[version]
            ]
    if not needed:
        return None
    quota = wgf_quota_ipt.rules(interfaces, version, carry)
    for chain in rules:
        rules[chain][:0] = quota.pop(chain, [])
    wanted = {
        table: {chain: rules[chain] for chain, _ in chains}
        for table, chains in IPTABLES_CHAINS.items()
    }
    if rules[output]:  # the output chain is there only while a client's limits need it
        wanted["filter"][output] = rules[output]
    wanted["filter"].update(quota)
    return wanted


def _quota_chains(names):
    return sorted(name for name in names if wgf_quota_ipt.is_quota_chain(name))


def iptables_chains(table, rules=None):
    """``IPTABLES_CHAINS[table]``, and the optional output chain where ``rules`` (None:
    any) hold it: ``((chain, builtin), ...)``."""
    extra = [wgf_shaping.IPT_OUTPUT] if table == "filter" else []
    if rules is not None:
        extra = [item for item in extra if item[0] in rules.get(table, {})]
    return (*IPTABLES_CHAINS[table], *extra)


def iptables_restore(rules, jumps_present, chains_present=()):
    """``iptables-restore --noflush`` input that replaces the formula's chains (declaring
    a chain flushes it), adds the jumps to them that ``jumps_present`` lacks, and removes
    the clients' quota chains of ``chains_present`` that ``rules`` no longer hold."""
    lines = []
    for table in IPTABLES_CHAINS:
        chains = iptables_chains(table, rules)
        quota = _quota_chains(rules[table]) if table == "filter" else []
        lines.append(f"*{table}")
        lines += [f":{chain} - [0:0]" for chain in [c for c, _ in chains] + quota]
        for chain in [c for c, _ in chains] + quota:
            lines += [f"-A {chain} {rule}" for rule in rules[table][chain]]
        lines += [
            f"-I {builtin} 1 -j {chain}"
            for chain, builtin in chains
            if (builtin, chain) not in jumps_present
        ]
        # the optional output chain no longer needed: its jump and itself go
        for chain, builtin in iptables_chains(table):
            if (chain, builtin) not in chains and (builtin, chain) in jumps_present:
                lines += [f"-D {builtin} -j {chain}", f"-F {chain}", f"-X {chain}"]
        if table == "filter":  # nothing jumps to them any more
            gone = [c for c in _quota_chains(chains_present) if c not in rules[table]]
            lines += [f"-F {chain}" for chain in gone] + [f"-X {chain}" for chain in gone]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def iptables_removal(chains_present, jumps_present):
    """``iptables-restore --noflush`` input that removes the formula's jumps and chains."""
    lines = []
    for table in IPTABLES_CHAINS:
        ours = [
            (chain, builtin) for chain, builtin in iptables_chains(table) if chain in chains_present
        ]
        quota = _quota_chains(chains_present) if table == "filter" else []
        if not ours and not quota:
            continue
        lines.append(f"*{table}")
        lines += [
            f"-D {builtin} -j {chain}"
            for chain, builtin in ours
            if (builtin, chain) in jumps_present
        ]
        lines += [f"-F {chain}" for chain in [c for c, _ in ours] + quota]
        lines += [f"-X {chain}" for chain in [c for c, _ in ours] + quota]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n" if lines else ""


def iptables_ours(save_text):
    """The lines of ``iptables-save`` output that are the formula's: its chains'
    declarations and rules, and the jumps to them (counters dropped)."""
    ours, table = [], None
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:]
            continue
        if line.startswith(":WIREGUARD-"):
            ours.append(f"{table} {line.split()[0]}")
        elif line.startswith("-A ") and "WIREGUARD-" in line:
            ours.append(f"{table} {line}")
    return ours


def iptables_jumps(ours):
    """``{(builtin chain, formula chain)}`` jumps found in ``iptables_ours`` lines."""
    found = set()
    for line in ours:
        parts = line.split()
        if len(parts) == 5 and parts[1] == "-A" and parts[3] == "-j":
            found.add((parts[2], parts[4]))
    return found


def iptables_recorded(ours):
    """``(chains, jumps)`` of the formula's that ``iptables_ours`` lines hold, by the
    names of ``iptables_chains`` and the clients' quota chains only: ``{(table, chain)}``
    that exist and ``{(table, builtin, chain)}`` plain jumps (``-A <builtin> -j
    <chain>``, as the formula inserts them)."""
    chains, jumps = set(), set()
    lines = {tuple(line.split()) for line in ours}
    chains.update(
        ("filter", line[1][1:])
        for line in lines
        if line[0] == "filter" and wgf_quota_ipt.is_quota_chain(line[1][1:])
    )
    for table in IPTABLES_CHAINS:
        for chain, builtin in iptables_chains(table):
            if (table, f":{chain}") in lines:
                chains.add((table, chain))
            if (table, "-A", builtin, "-j", chain) in lines:
                jumps.add((table, builtin, chain))
    return chains, jumps


def iptables_put_back(ours):
    """``iptables-restore --noflush`` input that puts the formula's chains back as
    ``iptables_ours`` lines recorded them, whatever happened since: it declares every
    chain of ``iptables_chains`` and every recorded quota chain (which creates it, or
    flushes it) and fills the ones recorded with their recorded rules. The jumps to the
    chains, and the removal of chains not recorded, are left to the undo script
    (``wgf_confirm_undo``): a ``-D`` of a missing jump would fail the whole table."""
    chains, _ = iptables_recorded(ours)
    lines = []
    for table in IPTABLES_CHAINS:
        known = [chain for chain, _ in iptables_chains(table)]
        known += _quota_chains(c for t, c in chains if t == table)
        lines.append(f"*{table}")
        lines += [f":{chain} - [0:0]" for chain in known]
        for chain in known:
            if (table, chain) not in chains:
                continue
            head = f"{table} -A {chain} "
            lines += [line[len(table) + 1 :] for line in ours if line.startswith(head)]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
