"""What a run would change, planned without changing anything: the config file's render
against the disk, the live interface's steps (``wgf_live``), the live peers' diff and
the formula's firewall against the kernel's. The states plan with these and then act
(``wireguard.config``, ``wireguard.interface``, ``wireguard.firewall``); the confirm of
issue 21 (``wireguard.confirm_armed``) asks the same questions before the first of them
runs, so "what will change" has one answer. Plain Python over a ``wgf_state.Minion``
or a host adapter: nothing here writes or runs a change."""

import datetime
import os

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_conf
import wgf_confirm
import wgf_files
import wgf_firewall
import wgf_iproute
import wgf_iptables
import wgf_keys
import wgf_layout
import wgf_live
import wgf_networkd
import wgf_quota
import wgf_quota_ipt
import wgf_state

# --------------------------------------------------------------------- the file


def rendered(minion, interface, config_dir):
    """The conf text for ``interface`` with its real keys, and pillar's warnings."""
    iface = minion.declared(interface, config_dir)
    if iface is None:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    psks = {
        **minion.pillar_secrets(iface)["preshared_keys"],
        **wgf_state.client_psks(iface, config_dir),
    }
    private_key = minion.private_key_of(iface, config_dir)
    return (wgf_conf.render(iface, private_key, psks), iface["warnings"])


# -------------------------------------------------------------- the live interface


def _auto_mtu(host, iface, live, allowed):
    """The MTU wg-quick picks without ``MTU =``: from the routes to the endpoints, as
    they were before its default route existed (its packets carry the fwmark)."""
    with_endpoint = {p["public_key"] for p in iface["peers"].values() if p["endpoint"]}
    addresses = sorted(
        {
            str(ip)
            for key, peer in live["peers"].items()
            if key in with_endpoint
            for ip in [wgf_addr.endpoint_ip(peer["endpoint"])[0]]
            if ip
        }
    )
    fwmark = None
    if wgf_live.default_route_mode(iface["table"], allowed):
        fwmark = live["fwmark"]
    routes = list(host.endpoint_routes(addresses, fwmark).values())
    default = next(iter(host.ip_json(["route", "show", "default"])), None)
    return wgf_live.mtu_from_routes(routes, host.link_mtus(), default)


def _mtu_unset(host, iface, live, allowed):
    """The MTU a start builds without ``mtu``: wg-quick's from the endpoints' routes;
    networkd sets none, so the kernel's default for a WireGuard device."""
    if iface.get("backend") == wgf_networkd.NETWORKD:
        return wgf_live.DEFAULT_UNDERLAY_MTU - wgf_live.OVERHEAD
    return _auto_mtu(host, iface, live, allowed)


def allowed_ips(iface, live):
    """The AllowedIPs the interface holds once its peer states ran (in test mode they
    have not): pillar's peers, and live peers pillar does not name unless purged."""
    declared = {p["public_key"]: p for p in iface["peers"].values() if p["public_key"]}
    allowed = [c for p in declared.values() if not p["absent"] for c in p["allowed_ips"]]
    if not iface["purge_peers"]:
        allowed += [
            c
            for key, peer in live["peers"].items()
            if key not in declared
            for c in peer["allowed_ips"]
        ]
    return allowed


def live(minion, interface, config_dir):
    """``(steps, changes, private_key)`` that bring the running ``interface`` (it is up)
    to what a restart would build from its config (``wgf_live.plan``)."""
    host = minion.host
    iface = minion.declared(interface, config_dir)
    if iface is None:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    shown = minion.context.get(wgf_state.LIVE, {}).get(interface)
    if shown is None or shown.get(wgf_state.ENDPOINTS_FORGOTTEN):
        shown = minion.salt["wireguard.show"](interface)[interface]
    # else: read once this run by the peer states and kept up to date by them (a second
    # `wg show dump` of 10,000 peers is 0.2 s on wireguard-go; issue 24)
    private_key = minion.private_key_of(iface, config_dir)
    routes_v4 = host.ip_json(["-4", "route", "show", "table", "all", "dev", interface])
    routes_v6 = host.ip_json(["-6", "route", "show", "table", "all", "dev", interface])
    allowed = allowed_ips(iface, shown)
    networkd = iface.get("backend") == wgf_networkd.NETWORKD
    want = wgf_live.wanted(
        iface,
        wgf_keys.pubkey_or_none(private_key),
        allowed,
        wgf_live.has_link_local(routes_v6),
        None if iface["mtu"] else _mtu_unset(host, iface, shown, allowed),
        wgf_networkd.ROUTE_PROTOCOL if networkd else "boot",
    )
    records = None if networkd else host.resolvconf_records()
    record_path = os.path.join(records, host.resolvconf_name(interface)) if records else None
    have = wgf_live.running(
        shown,
        wgf_iproute.link(host.ip_json(["addr", "show", "dev", interface])),
        routes_v4,
        routes_v6,
        wgf_files.read(record_path) if record_path else None,
        want["default_route"],
    )
    if records is None or networkd:
        # nothing to read it from: wireguard.config restarts; networkd: its .network
        # holds DNS, which networkctl reload hands to systemd-resolved
        have["dns"] = want["dns"]
    steps, changes = wgf_live.plan(want, have, interface)
    return steps, changes, private_key


# ----------------------------------------------------------------------- peers


def peers(minion, iface):
    """The names of ``iface``'s peers whose live state the peer states would change
    (added, changed, removed, or purged as undeclared); the interface is up."""
    interface = iface["name"]
    shown = minion.live(interface)
    secrets = minion.pillar_secrets(iface)["preshared_keys"]
    changed, keep = [], set()
    for name, peer in sorted(iface["peers"].items()):
        key = peer["public_key"]
        if not key or peer["client"]:
            continue
        current = shown["peers"].get(key)
        if peer["absent"]:
            if current is not None:
                changed.append(name)
            continue
        keep.add(key)
        diff, _ = minion.peer_diff(
            interface,
            key,
            current,
            peer["allowed_ips"],
            peer["endpoint"],
            peer["persistent_keepalive"],
            secrets.get(name),
        )
        if diff:
            changed.append(name)
    if iface["purge_peers"]:
        keep |= {p["public_key"] for p in iface["peers"].values() if p["client"]}
        changed += sorted(set(shown["peers"]) - keep)
    return changed


# -------------------------------------------------------------------- firewall


def _nft_canonical(host, table_text):
    """``table_text`` as ``nft list table`` prints it back."""
    if table_text is None:
        return None
    return host.nft_canonical(wgf_firewall.TABLE, table_text)


def _nft_wanted(host, interfaces, backend, live_table):
    """The table ``backend`` wants, its clients' quotas carrying their counts: the live
    table's (read just now), else the saver's counters file (the table is gone)."""
    if backend != "nftables":
        return None
    if not any(wgf_quota.needs_table(i) for i in interfaces):
        return wgf_firewall.nft_table(interfaces)
    live = wgf_quota.parse_live(host.nft_quotas(wgf_firewall.TABLE)) if live_table else {}
    saved = wgf_quota.parse_counters(
        host.read_text(os.path.join(wgf_quota.STATE_DIR, wgf_quota.COUNTERS))
    )
    now = datetime.datetime.fromtimestamp(host.now(), datetime.timezone.utc)
    return wgf_firewall.nft_table(interfaces, wgf_quota.carried(interfaces, live, saved, now))


def quota_saver(host, interfaces, backend):
    """``{"quota saver": (live, wanted, apply)}`` when what keeps the clients' quota
    counts (``wgf_quota``: the clients file, the saver script, its timer or OpenRC
    loop) is not as ``backend`` wants; ``{}`` when it is. No counted client: the saver
    is stopped and its clients file and script removed (the counters file stays)."""
    counted = [i for i in interfaces if wgf_firewall.needs_table(i)]
    wanted = wgf_quota.clients_text(counted) if backend in ("nftables", "iptables") else ""
    path = os.path.join(wgf_quota.STATE_DIR, wgf_quota.CLIENTS)
    script_path = os.path.join(wgf_quota.STATE_DIR, wgf_quota.SCRIPT)
    live, script = host.read_text(path) or "", host.read_text(script_path)
    if not wanted and not live and script is None:
        return {}  # never armed, or taken away: not even systemd is asked
    armed = host.quota_saver_armed()
    files = {wgf_quota.CLIENTS: wanted, wgf_quota.SCRIPT: wgf_quota.script_text(host.salt_call())}
    if wanted and (live, script, armed) == (wanted, files[wgf_quota.SCRIPT], True):
        return {}
    if not wanted and not live and not armed:
        return {}

    def apply():
        if wanted:
            host.write_records(wgf_quota.STATE_DIR, files)
            host.arm_quota_saver()
        else:
            host.disarm_quota_saver()
            host.remove(path)
            host.remove(script_path)

    return {"quota saver": (live or None, wanted or None, apply)}


def _ipt_live(host, version):
    return wgf_iptables.iptables_ours(host.iptables_save(version) or "")


def firewall(host, interfaces, backend):
    """``{part: (live, wanted, apply)}`` for each part (nftables, iptables, ip6tables)
    whose live state differs from what ``backend`` wants; ``apply()`` makes it so."""
    plan = {}
    if host.has_exec("nft"):
        live_table = host.nft_table(wgf_firewall.TABLE)
        table = _nft_wanted(host, interfaces, backend, live_table)
        wanted = _nft_canonical(host, table)
        # the clients' quota counts change all the time: not a change of the table
        if wgf_quota.strip_used(live_table) != wgf_quota.strip_used(wanted):
            plan["nftables"] = (
                live_table,
                wanted,
                lambda: host.nft_apply(
                    wgf_firewall.nft_replace(
                        _nft_wanted(host, interfaces, backend, host.nft_table(wgf_firewall.TABLE))
                    )
                ),
            )
    carry = _ipt_quota(host, interfaces, backend)
    parts = {}
    for version, part in ((4, "iptables"), (6, "ip6tables")):
        live_rules = _ipt_live(host, version)
        if not live_rules and backend != "iptables":
            continue
        rules = (
            wgf_iptables.iptables_rules(interfaces, version, carry)
            if backend == "iptables"
            else None
        )
        wanted = (
            wgf_iptables.iptables_ours(
                host.iptables_canonical(version, wgf_iptables.iptables_restore(rules, set()))
            )
            if rules
            else []
        )
        parts[version] = (part, live_rules, wanted, rules)
    # what the counting changes (a quota match's left, the saver's DROP): no change
    same = {
        v: wgf_quota_ipt.without_counting(p[1]) == wgf_quota_ipt.without_counting(p[2])
        for v, p in parts.items()
    }
    # counted clients: both versions are replaced together (the count goes to IPv4's)
    together = carry is not None and not all(same.values())
    state = {}  # the counts read by the first replacement, for both
    for version, (part, live_rules, wanted, rules) in parts.items():
        if same[version] and not (together and rules):
            continue
        jumps = wgf_iptables.iptables_jumps(live_rules)
        chains = {line.split()[1][1:] for line in live_rules if line.split()[1].startswith(":")}
        if rules:
            apply = _ipt_replace(host, interfaces, backend, version, (jumps, chains), state)
        else:
            text = wgf_iptables.iptables_removal(chains, jumps)
            apply = lambda v=version, t=text: host.iptables_restore(v, t)  # noqa: E731
        plan[part] = (live_rules, wanted, apply)
    return plan


def _ipt_quota(host, interfaces, backend):
    """``wgf_quota.carried`` (``{object: bytes}``) from the live counting rules of both
    IP versions and the saver's counters file, read now; None where nothing is counted
    (nothing is read)."""
    if backend != "iptables" or not any(wgf_quota.needs_table(i) for i in interfaces):
        return None
    saved = wgf_quota.parse_counters(
        host.read_text(os.path.join(wgf_quota.STATE_DIR, wgf_quota.COUNTERS))
    )
    now = datetime.datetime.fromtimestamp(host.now(), datetime.timezone.utc)
    live = wgf_quota.parse_ipt_live(host.iptables_counts(4), host.iptables_counts(6))
    return wgf_quota.carried(interfaces, live, saved, now)


def _ipt_replace(host, interfaces, backend, version, present, state):
    """The apply of one IP version's chains (``present``: the jumps and chains there
    now): the counts are read again just before the first version's replacement (kept
    in ``state`` for the other: the IPv4 rules hold them once replaced), and the IPv4
    counting rules start from them (``iptables-restore --counters``), each quota match
    from what is left."""

    def apply():
        if "read" not in state:
            state["read"] = _ipt_quota(host, interfaces, backend)
        carry = state["read"] or {}
        rules = wgf_iptables.iptables_rules(interfaces, version, carry)
        text = wgf_iptables.iptables_restore(rules, *present)
        if version == 4 and any(carry.values()):
            host.iptables_restore(4, wgf_quota_ipt.with_counts(text, carry), True)
        else:
            host.iptables_restore(version, text)

    return apply


# ------------------------------------------------------ one interface, for confirm


def _file_changes(minion, iface, config_dir):
    """Whether the run rewrites the interface's files: the conf (wg-quick), or the
    ``.netdev``/``.network`` and their key copies (networkd)."""
    layout = wgf_layout.Layout(config_dir)
    if iface.get("backend") != wgf_networkd.NETWORKD:
        wanted = rendered(minion, iface["name"], config_dir)[0]
        return wgf_files.read(layout.conf(iface["name"])) != wanted
    psks = {
        **minion.pillar_secrets(iface)["preshared_keys"],
        **wgf_state.client_psks(iface, config_dir),
    }
    private_key = minion.private_key_of(iface, config_dir) or ""
    files = {
        **wgf_networkd.files(iface, layout),
        **wgf_networkd.key_files(iface, layout, private_key, psks),
    }
    return any(wgf_files.read(path) != text for path, text in files.items())


def changes(minion, interface, config_dir, firewall_changes):
    """``wgf_confirm.Changes`` of ``interface`` in this run, planned before anything
    changes. ``firewall_changes``: whether the formula's firewall table changes (one
    table holds every interface's rules: a change to it counts for each)."""
    iface = minion.declared(interface, config_dir)
    running = minion.is_up(interface)
    kept = bool(iface) and iface["enabled"] and not iface["absent"]
    file = bool(iface) and _file_changes(minion, iface, config_dir)
    if not (running and kept):
        return wgf_confirm.Changes(running=running, kept=kept, file=file)
    steps, _, _ = live(minion, interface, config_dir)
    return wgf_confirm.Changes(
        running=True,
        kept=True,
        file=file,
        live=bool(steps),
        peers=bool(peers(minion, iface)),
        firewall=bool(firewall_changes),
    )
