"""A confirmed change of one interface (issue 21) carried out through the host adapter:
arm (record the running state, write the undo, arm the timer), check (the probes until
the deadline, then disarm or undo at once), and what the execution functions ask:
status, accept, undo, report. The states and the execution module hand in their
``wgf_state.Minion`` or host; every command and write goes through ``wgf_host.Host``.

What the state directory holds (``wgf_confirm.state_dir``, 0700; files 0600): the
recorded ``conf``, ``key`` and ``dropin`` (the key: root only), the ``firewall`` (an
``nft -f`` script, or the ``iptables-restore`` input of the formula's chains, with
``firewall6`` for ip6tables), ``before.json`` (the probes' answers before the change: labels,
addresses, public keys, counters), ``meta.json`` (timeout, probes, deadline), the
``undo`` script, ``armed`` while armed; after an undo, ``undone`` (written by the
script), ``failed.json`` (the probes that failed) and ``reported`` once the event went
out. The recorded files are deleted once confirmed or undone."""

import ipaddress
import json
import os

from salt.exceptions import CommandExecutionError

import wgf_addr
import wgf_conf
import wgf_confirm
import wgf_confirm_undo
import wgf_dump
import wgf_files
import wgf_firewall
import wgf_iptables
import wgf_layout
import wgf_networkd
import wgf_quota
import wgf_quota_ipt
import wgf_tc

META = "meta.json"
BEFORE = "before.json"
FAILED_PROBES = "failed.json"
REPORTED = "reported"
#: What the undo puts back, and the rest of what a confirm records (the key among them).
RECORDS = ("conf", "key", "dropin", "firewall", "firewall6", BEFORE, wgf_confirm.UNDO_SCRIPT)
#: The rollout runner's pillar override: keep the undo armed this long after the probes
#: passed, until the runner accepts or undoes (``wireguard_rollout: {hold: <s>}``).
ROLLOUT = "wireguard_rollout"
#: The run stops probing this long before the timer's deadline (it must not race it).
MARGIN = 2
RETRY = 1.0


def check_hold(value):
    """The rollout's ``hold`` (seconds, as ``timeout``: 5-3600), or None."""
    if value is None:
        return None
    return wgf_confirm.parse_timeout(value, f"{ROLLOUT}:hold")


def probes_of(setting):
    """The probe records of an interface's effective confirm as the pipeline carries it
    (``{"timeout", "probes": [str]}``)."""
    return wgf_confirm.Confirm(
        timeout=setting["timeout"],
        probes=wgf_confirm.parse_probes(list(setting["probes"]), "confirm:probes"),
    )


def state_dir(interface):
    """``wgf_confirm.state_dir`` under the module's ``STATE_ROOT`` as it is now (tests
    move it)."""
    return wgf_confirm.state_dir(interface, wgf_confirm.STATE_ROOT)


def _path(interface, name):
    return os.path.join(state_dir(interface), name)


def _read_json(interface, name, default=None):
    text = wgf_files.read(_path(interface, name))
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def is_armed(interface):
    return os.path.exists(_path(interface, wgf_confirm.ARMED))


# ------------------------------------------------------------------------ probing


def _targets(confirm, opts):
    """``[(label, kind, args)]`` of the probes other than ``peers``: ``kind`` is
    ``tcp``, ``icmp``, or None (no target: a minion without a master)."""
    found = []
    for probe in confirm.probes:
        if isinstance(probe, wgf_confirm.MasterProbe):
            masters = wgf_confirm.master_targets(opts)
            found += [(wgf_confirm.master_label(h, p), "tcp", [h, p]) for h, p in masters]
            if not masters:
                found.append(("master", None, []))
        elif isinstance(probe, wgf_confirm.IcmpProbe):
            found.append((str(probe), "icmp", [probe.address]))
        elif isinstance(probe, wgf_confirm.TcpProbe):
            found.append((str(probe), "tcp", [probe.host, probe.port]))
    return found


def _answers(host, kind, args):
    if kind == "tcp":
        return host.tcp_answers(*args)
    if kind == "icmp":
        return host.icmp_answers(*args)
    return False


def _wants_peers(confirm):
    return any(isinstance(p, wgf_confirm.PeersProbe) for p in confirm.probes)


def _peer_samples(host, interface, names):
    """``{name: PeerSample}`` and ``{name: allowed_ips}`` of the live peers, and the
    interface's own public key; a peer is named by ``names`` (public key to pillar name),
    else by its public key."""
    shown = wgf_dump.parse(host.wg(["show", interface, "dump"]), interface).get(interface)
    shown = shown or {"public_key": None, "peers": {}}
    samples, allowed = {}, {}
    for key, peer in shown["peers"].items():
        name = names.get(key, key)
        samples[name] = wgf_confirm.PeerSample(key, peer["latest_handshake"] or 0, peer["rx_bytes"])
        allowed[name] = peer["allowed_ips"]
    return samples, allowed, shown["public_key"]


def _nudge(host, interface, allowed_ips):
    """Send a packet into the tunnel towards a peer, so WireGuard handshakes with it (or
    moves bytes through the session it has): one echo to a host of its first
    AllowedIPs."""
    for cidr in allowed_ips:
        network = ipaddress.ip_network(cidr, strict=False)
        if network.prefixlen == 0:
            continue
        target = network.network_address if network.num_addresses == 1 else network[1]
        host.icmp_answers(str(target), interface)
        return


def sample_before(host, interface, confirm, opts, names):
    """What answers before the change: ``{"targets": {label: bool}, "peers": {name:
    [key, handshake, rx]}, "own_key": the interface's public key}``."""
    targets = {label: _answers(host, kind, args) for label, kind, args in _targets(confirm, opts)}
    peers, own_key = {}, None
    if _wants_peers(confirm):
        samples, _, own_key = _peer_samples(host, interface, names)
        peers = {n: [s.public_key, s.latest_handshake, s.rx_bytes] for n, s in samples.items()}
    return {"targets": targets, "peers": peers, "own_key": own_key}


def outcomes(host, interface, confirm, opts, before, names, changed_at, answered):
    """The probes' verdicts now; ``answered`` (a set, kept by the caller between tries)
    holds the labels that answered once after the change: they stay answered."""
    found = []
    for label, kind, args in _targets(confirm, opts):
        was = before["targets"].get(label, False)
        if was and label not in answered and _answers(host, kind, args):
            answered.add(label)
        found.append(wgf_confirm.judge(label, was, label in answered))
    if _wants_peers(confirm):
        old = {n: wgf_confirm.PeerSample(*v) for n, v in before["peers"].items()}
        checked = wgf_confirm.peers_to_check(old, changed_at)
        _, allowed, _ = _peer_samples(host, interface, names)
        for name in checked:
            _nudge(host, interface, allowed.get(name, []))
        after, _, own_key = _peer_samples(host, interface, names)
        was = before.get("own_key")  # none in the records of an older formula
        changed = was is not None and own_key != was
        found += wgf_confirm.judge_peers(old, after, changed_at, own_key_changed=changed)
    return found


# -------------------------------------------------------------------------- arming


def _records(host, interface, layout, firewall, networkd=False):
    """``({name: text}, [Restore], firewall kind, iptables)``: the running state's files
    and the formula's firewall, as the undo puts them back: the nftables table, or the
    ``WIREGUARD-*`` chains and their jumps of each IP version whose tool is there
    (``iptables``: ``{4|6: wgf_iptables.iptables_ours lines}``; records ``firewall``
    and ``firewall6``)."""
    records, restores = {}, []
    paths = [("conf", layout.conf(interface)), ("key", layout.key(interface))]
    # the clients' rates: wg-quick's restart runs the restored script (its PostUp)
    paths.append(("rates", wgf_tc.script_path(interface)))
    if host.has_systemd():
        paths.append((wgf_confirm_undo.DROPIN, wgf_layout.dropin_path(interface, layout.service)))
    if networkd:  # its files, and the key copies it reads (issue 25)
        unit_files = layout.networkd_files(interface)
        paths += [(name, unit_files[name]) for name in wgf_confirm_undo.NETWORKD_UNITS]
        keys = layout.networkd_keys(interface)
        names = sorted(os.listdir(keys)) if os.path.isdir(keys) else []
        paths += [(f"networkd-key-{i}", os.path.join(keys, n)) for i, n in enumerate(names)]
    for name, path in paths:
        text = wgf_files.read(path)
        if text is not None:
            records[name] = text
        restores.append(
            wgf_confirm_undo.Restore(
                path,
                None if text is None else name,
                unit=name == wgf_confirm_undo.DROPIN,
                group=wgf_networkd.GROUP if name.startswith("networkd-key-") else None,
            )
        )
    kind, iptables = None, None
    if firewall == "nftables" and host.has_exec("nft"):
        records["firewall"] = wgf_firewall.nft_replace(host.nft_table(wgf_firewall.TABLE))
        kind = "nftables"
    elif firewall == "iptables":
        iptables = {}
        # the clients' quota counts of both versions, put back on the IPv4 rules
        counts = wgf_quota.parse_ipt_live(host.iptables_counts(4), host.iptables_counts(6))
        for version, name in wgf_confirm_undo.IPTABLES_RECORDS.items():
            saved = host.iptables_save(version)
            if saved is None:  # no such tool here
                continue
            iptables[version] = wgf_iptables.iptables_ours(saved)
            records[name] = wgf_iptables.iptables_put_back(iptables[version])
            if version == 4 and counts:
                records[name] = wgf_quota_ipt.with_counts(records[name], counts)
        kind = "iptables" if iptables else None
        iptables = iptables or None
    return records, restores, kind, iptables


def arm(minion, iface, confirm, layout, firewall):
    """Record the running state of ``iface``, write its undo, then ``armed``, then arm
    the timer. Still armed from a run the rollout holds: the records of the state
    before that run stay (they are the last confirmed one); only the timer is armed
    again. Returns what was done, for the state's comment."""
    host, interface = minion.host, iface["name"]
    directory = state_dir(interface)
    now = host.now()
    meta = {
        "interface": interface,
        "timeout": confirm.timeout,
        "probes": [str(p) for p in confirm.probes],
        "armed_at": now,
        "deadline": now + confirm.timeout,
    }
    current = wgf_files.read(layout.conf(interface)) or ""
    # a peer by its name in the running file (a key the change replaces keeps it), else
    # in pillar
    names = {p["public_key"]: n for n, p in iface["peers"].items() if p["public_key"]}
    names.update(
        {p["public_key"]: p["name"] for p in wgf_conf.parse(current)["peers"] if p["name"]}
    )
    before = sample_before(host, interface, confirm, minion.opts, names)
    if is_armed(interface):
        host.disarm_undo(interface)
        host.write_records(directory, {META: json.dumps(meta), BEFORE: json.dumps(before)})
        host.arm_undo(interface, confirm.timeout)
        minion.context.setdefault(ARMED_NOW, []).append(interface)
        return "re-armed (the records of the last confirmed state kept)"
    networkd = iface.get("backend") == wgf_networkd.NETWORKD
    records, restores, kind, iptables = _records(host, interface, layout, firewall, networkd)
    init = "systemd" if host.has_systemd() else "openrc"
    records[wgf_confirm.UNDO_SCRIPT] = wgf_confirm_undo.undo_script(
        interface,
        restores,
        layout.backend_unit(interface, iface.get("backend")),
        kind,
        init,
        wgf_confirm.STATE_ROOT,
        iptables=iptables,
        networkd=networkd,
    )
    records[META] = json.dumps(meta)
    records[BEFORE] = json.dumps(before)
    for stale in (wgf_confirm.UNDONE, FAILED_PROBES, REPORTED):
        host.remove(os.path.join(directory, stale))
    host.write_records(directory, records)
    host.write_records(directory, {wgf_confirm.ARMED: wgf_confirm_undo.armed_text(host.boot_id())})
    try:
        host.arm_undo(interface, confirm.timeout)
    except CommandExecutionError:
        host.remove(os.path.join(directory, wgf_confirm.ARMED))
        drop_records(host, interface)
        raise
    minion.context.setdefault(ARMED_NOW, []).append(interface)
    return "armed"


def drop_records(host, interface):
    """Delete what was recorded (the key among it); the markers stay."""
    for name in RECORDS:
        host.remove(_path(interface, name))


# -------------------------------------------------------------------------- checking


#: ``__context__`` key: the interfaces this run armed (an undo marker of an earlier run
#: is no failure of this one).
ARMED_NOW = "wireguard.confirm_armed"


def check(minion, iface, confirm, hold=None):
    """Probe until every probe answered or the deadline (less :data:`MARGIN`) came;
    then disarm (or, under the rollout's ``hold``, arm again for ``hold`` seconds), or
    undo at once. Returns ``(verdict, comment, failed labels)``: verdict ``confirmed``,
    ``held``, ``undone``, ``undone-by-timer`` or ``none`` (nothing armed)."""
    host, interface = minion.host, iface["name"]
    meta = _read_json(interface, META, {})
    if not is_armed(interface):
        armed_now = interface in minion.context.get(ARMED_NOW, ())
        if armed_now and os.path.exists(_path(interface, wgf_confirm.UNDONE)) and meta:
            return _timer_won(interface, meta["timeout"])
        return "none", f"{interface}: nothing armed, nothing to confirm", []
    before = _read_json(interface, BEFORE, {"targets": {}, "peers": {}})
    names = {p["public_key"]: n for n, p in iface["peers"].items() if p["public_key"]}
    armed_at = meta.get("armed_at", host.now())
    deadline = meta.get("deadline", armed_at + confirm.timeout) - MARGIN
    answered = set()
    try:
        while True:
            found = outcomes(
                host, interface, confirm, minion.opts, before, names, armed_at, answered
            )
            if not wgf_confirm.must_undo(found) or host.now() >= deadline:
                break
            host.sleep(RETRY)
    except CommandExecutionError:
        # a run slower than the deadline: the timer's undo restarts the interface under
        # the lock, and a probe meanwhile finds none
        if _undone_by_timer(host, interface):
            return _timer_won(interface, confirm.timeout)
        raise
    if wgf_confirm.must_undo(found):
        labels = [o.label for o in found if o.status == wgf_confirm.FAILED]
        worked = undo(host, interface, labels)
        message = wgf_confirm.failure_message(interface, found, confirm.timeout)
        if not worked:
            message += " (a step of the undo failed: see the journal of the service)"
        return "undone", message, labels
    message = wgf_confirm.confirmed_message(interface, host.now() - armed_at, found)
    if hold and is_armed(interface):
        host.disarm_undo(interface)
        meta["deadline"] = host.now() + hold
        host.write_records(state_dir(interface), {META: json.dumps(meta)})
        host.arm_undo(interface, hold)
        return (
            "held",
            f"{message}; kept armed for {hold} s (rollout hold) until wireguard.confirm_accept "
            "or wireguard.confirm_undo",
            [],
        )
    if not accept(host, interface):  # the timer took the lock first
        return _timer_won(interface, confirm.timeout, ", as the probes answered")
    return "confirmed", message, []


def _timer_won(interface, timeout, detail=""):
    """The verdict when the undo timer fired before the run's own check ended."""
    return (
        "undone-by-timer",
        f"{interface}: change undone by the timer at the deadline ({timeout} s){detail}",
        [],
    )


def _undone_by_timer(host, interface):
    """Whether the timer has undone the armed change (an undo under way is waited for:
    it holds the state directory's lock)."""
    directory = state_dir(interface)
    if os.path.isdir(directory):
        with host.locked(directory):
            pass
    return not is_armed(interface) and os.path.exists(_path(interface, wgf_confirm.UNDONE))


def accept(host, interface):
    """Disarm what is armed and delete the records; whether something was armed."""
    directory = state_dir(interface)
    if not os.path.isdir(directory):
        return False
    with host.locked(directory):
        host.disarm_undo(interface)
        armed = is_armed(interface)
        host.remove(_path(interface, wgf_confirm.ARMED))
        drop_records(host, interface)
    return armed


def undo(host, interface, labels=()):
    """Undo what is armed now (the same script the timer runs); whether every step of
    it worked. Nothing armed: True, nothing done."""
    if not is_armed(interface):
        return True
    host.disarm_undo(interface)
    worked = host.run_undo(interface, "now")
    directory = state_dir(interface)
    host.write_records(directory, {FAILED_PROBES: json.dumps(list(labels))})
    drop_records(host, interface)
    return worked


# ------------------------------------------------------------ status and the event


def interfaces():
    """The interfaces with a confirm state directory or a boot-time unit or script (what
    ``wireguard.clean`` removes, whatever pillar says now)."""
    found = set()
    root = wgf_confirm.STATE_ROOT
    if os.path.isdir(root):
        found |= {n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n))}
    units = wgf_layout.SYSTEMD_UNIT_DIR
    prefix, suffix = wgf_confirm.RESTORE_PREFIX, ".service"
    if os.path.isdir(units):
        found |= {
            n[len(prefix) : -len(suffix)].replace("\\x3d", "=")
            for n in os.listdir(units)
            if n.startswith(prefix) and n.endswith(suffix)
        }
    scripts, prefix = wgf_layout.INIT_SCRIPT_DIR, wgf_confirm.OPENRC_RESTORE_PREFIX
    if os.path.isdir(scripts):
        found |= {n[len(prefix) :] for n in os.listdir(scripts) if n.startswith(prefix)}
    return sorted(n for n in found if wgf_addr.is_interface_name(n))


def undone(interface):
    """``{"mode", "time", "failed": [labels], "steps_failed": bool}`` of the last undo,
    or None."""
    text = wgf_files.read(_path(interface, wgf_confirm.UNDONE))
    if text is None:
        return None
    fields = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
    try:
        when = int(fields.get("time", "0"))
    except ValueError:
        when = None
    return {
        "mode": fields.get("mode"),
        "time": when,
        "failed": _read_json(interface, FAILED_PROBES, []),
        "steps_failed": fields.get("failed") == "1",
    }


def status(interface):
    armed = is_armed(interface)
    meta = _read_json(interface, META, {})
    return {
        "armed": armed,
        "deadline": meta.get("deadline") if armed else None,
        "probes": meta.get("probes", []),
        "undone": undone(interface),
    }


def report(host):
    """Send ``wireguard/confirm/undone`` for each undo not reported yet, mark it
    reported, and delete what it left recorded; the list of the events' data."""
    sent = []
    for interface in interfaces():
        done = undone(interface)
        if done is None or os.path.exists(_path(interface, REPORTED)):
            continue
        data = {"interface": interface, **done}
        host.send_event(wgf_confirm.EVENT_UNDONE, data)
        host.write_records(state_dir(interface), {REPORTED: f"{host.now():.0f}\n"})
        if not is_armed(interface):
            drop_records(host, interface)
        sent.append(data)
    return sent
