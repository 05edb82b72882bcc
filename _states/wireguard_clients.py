"""
The interface's clients (pillar ``clients``): their addresses and keys kept on the
minion, and their live peers.

A file of the ``wireguard`` state module, by concern (``wireguard.clients``,
``wireguard.client_peers``, ``wireguard.client_expiry``, ``wireguard.client_expiry_absent``,
``wireguard.client_rates``): Salt loads it under the one name with the others. What a
client is is ``_utils/wgf_clients.py`` (its record ``_utils/wgf_client_record.py``), its
expiry on time ``_utils/wgf_expiry.py``, its rate ``_utils/wgf_tc.py``; the host adapter
(``wgf_host.Host``) writes and removes the files, arms the timer and runs tc.
"""

import datetime
import importlib
import os

from salt.exceptions import SaltInvocationError

import wgf_args
import wgf_client_record
import wgf_clients
import wgf_expiry
import wgf_files
import wgf_host
import wgf_keys
import wgf_layout
import wgf_pipeline
import wgf_reload
import wgf_state
import wgf_tc

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_state.loaded(__salt__, __virtualname__)


def clients(name, config_dir=None):
    """
    The interface's clients (pillar ``clients``) have their addresses, kept in
    ``<config_dir>/<name>.clients.json``, and their keys: a private key (none for a BYO
    client) and a preshared key where asked, made here once and kept in 0600 files
    under ``<config_dir>/clients/<name>/``. A revoked client (``absent: true``, or no
    longer in pillar) loses its files, its allocation and its live peer. Only names,
    addresses and public keys are reported.

    name
        The interface name.
    """
    return wgf_state.guarded(wgf_state.ret(name), _clients, config_dir)


def _clients(ret, config_dir):
    minion, interface = _minion(), ret["name"]
    host, config_dir = minion.host, minion.config_dir(config_dir)
    declared = minion.declared(interface, config_dir)
    if declared is None:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    layout = wgf_layout.Layout(config_dir)
    path, keydir = layout.clients_record(interface), layout.clients_dir(interface)
    old = wgf_client_record.parse_record(wgf_files.read(path), path)
    wanted = {n: c for n, c in declared["clients"].items() if not c["absent"]}
    made, writes, removals, rekeyed = {}, {}, [], set()
    since, present = _ctime(path), _entries(keydir)
    for name, client in wanted.items():
        key_name = wgf_layout.client_key_name(name, "key")
        psk_name = wgf_layout.client_key_name(name, "psk")
        if client["byo"]:
            removals.append(key_name)
        elif not client["public_key"] or not (
            _untouched_since(present.get(key_name), since)
            or _read_key(layout.client_key(interface, name, "key")) == client["public_key"]
        ):
            key = wgf_keys.genkey()
            made[name] = wgf_keys.pubkey(key)
            writes[layout.client_key(interface, name, "key")] = key + "\n"
            rekeyed.add(name)
        if not client["preshared_key"]:
            removals.append(psk_name)
        elif not (
            _untouched_since(present.get(psk_name), since)
            or _read_key(layout.client_key(interface, name, "psk"))
        ):
            writes[layout.client_key(interface, name, "psk")] = wgf_keys.genpsk() + "\n"
            rekeyed.add(name)
    revoked = {n: e for n, e in old["clients"].items() if n not in wanted}
    for name in revoked:
        removals += [wgf_layout.client_key_name(name, kind) for kind in ("key", "psk")]
    removals = [os.path.join(keydir, file) for file in removals if file in present]
    new = wgf_client_record.record_of(declared, made)
    if not writes and not removals and new == old:
        ret["comment"] = f"The clients of {interface} are as pillar says"
        return ret
    ret["changes"] = wgf_client_record.changes(old, new, rekeyed, made, minion.test)
    if minion.test:
        return minion.pending(ret, f"The clients of {interface} would be updated")
    for directory in (os.path.dirname(keydir), keydir):
        host.make_private_dir(directory)
    host.remove_stale_temps(os.path.join(keydir, "key"), prefix=".")
    host.write_secrets(writes)
    for file in removals:
        host.remove(file)
    host.write_secret(path, wgf_client_record.dump_record(new))
    stamp = wgf_client_record.stamp(config_dir)
    wgf_pipeline.carry_over(minion.context, interface, declared["clients"], made, stamp)
    _remove_revoked_peers(minion, interface, [e["public_key"] for e in revoked.values()])
    return minion.pending(
        ret,
        f"The clients of {interface} updated: {len(new['clients'])} "
        f"client(s), {len(revoked)} revoked",
    )


def _ctime(path):
    """The inode change time of ``path`` in ns, or None (no such file)."""
    try:
        return os.stat(path).st_ctime_ns
    except OSError:
        return None


def _read_key(path):
    """The public key of the key file ``path`` (a preshared key reads as one too), or
    None: no such file, or no key in it."""
    return wgf_keys.pubkey_or_none(wgf_files.read_key(path))


def _entries(directory):
    """``{file name: os.DirEntry}`` of ``directory`` (none when it is not there)."""
    try:
        with os.scandir(directory) as found:
            return {entry.name: entry for entry in found}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _untouched_since(entry, since):
    """Whether the key file ``entry`` (an ``os.DirEntry``, or None: no such file) was
    last changed before ``since`` (the clients record's change time), so the record's
    public key was made from it, or checked against it, by an earlier run. A change time
    cannot be set back (unlike a modification time: ``touch -d``, ``cp -p``), so a key
    file replaced or edited after the record was written is read and checked again. On a
    10,000-client hub this spares a no-op 10,000 reads and public-key derivations (issue
    24)."""
    if since is None or entry is None:
        return False
    try:
        return entry.stat().st_ctime_ns < since
    except OSError:
        return False


def _minion():
    """The minion for one state call; its host adapter is made here and nowhere else in
    this file (the unit tests hand in a fake one)."""
    return wgf_state.Minion(__salt__, __opts__, __context__, wgf_host.Host(__salt__))


def _remove_revoked_peers(minion, interface, keys):
    keys = [k for k in keys if k]
    if not keys or not minion.is_up(interface):
        return
    live = minion.live(interface)
    gone = [k for k in keys if k in live["peers"]]
    if gone:
        __salt__["wireguard.apply_peers"](interface, remove=gone)
        for key in gone:
            live["peers"].pop(key)


def client_peers(name, config_dir=None):
    """
    The live interface holds each of its active clients as a peer: its public key, its
    addresses as AllowedIPs, its preshared key (read from the minion's file), and no
    peer of a disabled (``enabled: false``) or expired client (their addresses and keys
    stay on record). Applied through ``wg set`` in one go: no restart. Run after
    ``clients``.

    name
        The live WireGuard interface.
    """
    return wgf_state.guarded(wgf_state.ret(name), _client_peers, config_dir)


def _client_peers(ret, config_dir):
    interface, minion = ret["name"], _minion()
    config_dir = minion.config_dir(config_dir)
    wanted = minion.client_peers_wanted(interface, config_dir)
    live = minion.live(interface)
    declared = minion.declared(interface, config_dir) or {"clients": {}}
    held = wgf_clients.held_back(declared)
    gone = [key for key in held if key in live["peers"] and key not in wanted]
    for key in gone:
        ret["changes"][held[key][0]] = {"old": "live", "new": held[key][1]}
    todo = []
    psks = wgf_state.client_psks(
        {"name": interface, "peers": {p["name"]: p for p in wanted.values()}}, config_dir
    )
    for key, peer in wanted.items():
        psk = psks.get(peer["name"])
        now = live["peers"].get(key)
        if (
            now
            and (
                now["allowed_ips"] == peer["allowed_ips"]
                or sorted(now["allowed_ips"]) == sorted(peer["allowed_ips"])
            )
            and not now["persistent_keepalive"]
            and now.get("preshared_key_sha256") == (wgf_keys.digest(psk) if psk else None)
        ):
            continue  # as wanted: the common case, without parsing every address again
        diff, change = minion.peer_diff(interface, key, now, peer["allowed_ips"], None, None, psk)
        if diff:
            ret["changes"][peer["name"]] = diff
            todo.append((key, change))
    if not todo and not gone:
        ret["comment"] = f"The clients of {interface} are live as wanted"
        return ret
    said = f"{len(todo)} client peer(s) of {interface} set live, {len(gone)} held back"
    if minion.test:
        return minion.pending(ret, f"Would be: {said}")
    if gone:
        __salt__["wireguard.apply_peers"](interface, remove=gone)
        for key in gone:
            live["peers"].pop(key)
        _expired_events(minion, interface, declared, [held[key][0] for key in gone])
    if todo:
        __salt__["wireguard.apply_peers"](interface, peers=[change for _, change in todo])
    for key, change in todo:
        wgf_state.remember(live, key, live["peers"].get(key), change)
    return minion.pending(ret, said)


def _expired_events(minion, interface, declared, names):
    """``wireguard/client/expired`` for each expired client whose peer the apply took
    away (its expiry passed with no timer armed, e.g. while the minion was off): the
    timer's script sends it for those it removes, which the apply then no longer finds."""
    for name in names:
        client = declared["clients"][name]
        if client.get("status") == "expired":
            data = {"interface": interface, "client": name, "expires": client["expires"]}
            minion.host.send_event(wgf_expiry.EVENT_TAG, data)


def client_expiry(name, config_dir=None):
    """
    Each client of the interface that expires later (pillar ``expires``) loses its live
    peer at that instant, without Salt: this state writes the interface's expiry script
    and schedule (root-only, under ``/var/lib/wireguard-formula/expiry/<name>/``: client
    names, public keys and instants, no key) and arms a persistent systemd timer
    ``wireguard-client-expiry-<name>.timer`` (a unit file: it survives a reboot, and an
    instant passed while the machine was off runs at boot; OpenRC: a detached waiter,
    started again at boot by ``/etc/init.d/wireguard-client-expiry-<name>``)
    with one instant per future expiry. The script removes each expired client's peer
    alone (``wg set``) and its ``[Peer]`` from the interface's conf (a restart brings
    back what is live), and sends ``wireguard/client/expired``. No future expiry: the
    timer is disarmed and its units removed. Already armed as wanted: nothing is
    touched. It also sends the events a script could not. Run after ``client_peers``.

    name
        The live WireGuard interface.
    """
    return wgf_state.guarded(wgf_state.ret(name), _client_expiry, config_dir)


def _client_expiry(ret, config_dir):
    interface, minion = ret["name"], _minion()
    host, config_dir = minion.host, minion.config_dir(config_dir)
    declared = minion.declared(interface, config_dir)
    if declared is None:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    now = datetime.datetime.fromtimestamp(host.now(), datetime.timezone.utc)
    entries = wgf_expiry.schedule(declared, minion.client_peers_wanted(interface, config_dir), now)
    root = wgf_expiry.STATE_ROOT
    directory = wgf_expiry.state_dir(interface, root)
    sent = [] if minion.test else wgf_expiry.report(host, root)
    said = f"; sent {len(sent)} earlier {wgf_expiry.EVENT_TAG} event(s)" if sent else ""
    wanted = wgf_expiry.schedule_text(entries)
    armed = host.read_text(os.path.join(directory, wgf_expiry.ARMED))
    old = [line.split()[1] for line in (armed or "").splitlines() if line.strip()]
    new = [entry[1] for entry in entries]
    systemd = host.has_systemd()
    units = [p for p in wgf_expiry.unit_paths(interface) if host.read_text(p) is not None]
    files, service = {}, None
    if entries:
        conf = wgf_layout.Layout(config_dir).conf(interface)
        files = {
            os.path.join(directory, wgf_expiry.SCRIPT): wgf_expiry.script_text(
                interface, root, host.salt_call(), conf
            ),
            os.path.join(directory, wgf_expiry.SCHEDULE): wanted,
        }
        if systemd:
            service = __salt__["wireguard.service_name"](interface)
            instants = wgf_expiry.instants(entries)
            files.update(wgf_expiry.unit_files(interface, instants, service, root))
        stale = any(host.read_text(path) != text for path, text in files.items())
        if armed == wanted and not stale and host.expiry_armed(interface):
            ret["comment"] = f"{interface}: the expiry timer is armed as wanted{said}"
            return ret
    elif armed is None and not units:
        ret["comment"] = f"{interface}: no client expires later, no expiry timer{said}"
        return ret
    ret["changes"]["expiry timer"] = {"old": old or None, "new": new or None}
    if minion.test:
        word = f"armed for {', '.join(new)}" if new else "disarmed"
        return minion.pending(ret, f"{interface}: the expiry timer would be {word}")
    if not entries:
        host.disarm_expiry(interface)
        for file in (wgf_expiry.ARMED, wgf_expiry.SCHEDULE, wgf_expiry.SCRIPT):
            host.remove(os.path.join(directory, file))
        ret["comment"] = f"{interface}: no client expires later, expiry timer disarmed{said}"
        return ret
    names = (wgf_expiry.SCRIPT, wgf_expiry.SCHEDULE)
    host.write_records(directory, {n: files[os.path.join(directory, n)] for n in names})
    host.arm_expiry(interface, wgf_expiry.instants(entries), service)
    host.write_records(directory, {wgf_expiry.ARMED: wanted})
    ret["comment"] = f"{interface}: expiry timer armed for {', '.join(new)}{said}"
    return ret


def client_rates(name, config_dir=None):
    """
    Each active client of the interface whose ``limits`` set a ``rate`` is held to it in
    both directions by tc on the interface (to the client: HTB classes on the interface;
    from it: its ingress redirected to the IFB device ``<name>-ifb``, HTB classes there),
    whatever the firewall backend; everything else is not shaped. Applied live in one
    ``tc -batch``: no restart, other clients' classes and queues are kept; a client that
    loses its rate is no longer shaped, and with no rated client left the IFB and the
    qdiscs go. The interface's rates script
    (``/var/lib/wireguard-formula/rates/<name>.sh``), which the config's ``PostUp`` runs
    at every start, is rewritten to match. Run after ``client_peers``.

    name
        The WireGuard interface.
    """
    return wgf_state.guarded(wgf_state.ret(name), _client_rates, config_dir)


def _client_rates(ret, config_dir):
    interface, minion = ret["name"], _minion()
    host, config_dir = minion.host, minion.config_dir(config_dir)
    declared = minion.declared(interface, config_dir)
    wanted = wgf_tc.classes(declared) if declared and not declared["absent"] else []
    path = wgf_tc.script_path(interface)
    old = host.read_text(path)
    text = wgf_tc.script(interface, wanted) if wanted else None
    up = minion.is_up(interface)
    live = wgf_tc.parse_live(host.tc_live(interface, wgf_tc.ifb_name(interface))) if up else None
    if old == text and (live is None or wgf_tc.live_matches(live, wanted)):
        ret["comment"] = f"The client rates of {interface} are as pillar says"
        return ret
    ret["changes"] = wgf_tc.changes(old, wanted) or {"tc": {"old": "drifted", "new": "restored"}}
    said = f"{len(wanted)} client(s) of {interface} rated" + ("" if up else " (not up)")
    if minion.test:
        return minion.pending(ret, f"Would be: {said}")
    if up:
        host.tc_apply(*wgf_tc.batch(interface, wanted, live))
    if text:
        host.write_records(wgf_tc.STATE_ROOT, {os.path.basename(path): text})
    elif old is not None:
        host.remove(path)
    ret["comment"] = said
    return ret


def client_expiry_absent(name):
    """
    Nothing of the interface's client expiry is left (``wireguard.clean``, and an
    interface that is ``absent``): its timer or waiter is stopped, the timer's and
    service's unit files removed, and its state directory
    ``/var/lib/wireguard-formula/expiry/<name>/`` deleted (the events it could not send
    are sent first, where a master answers).

    name
        The interface name.
    """
    return wgf_state.guarded(wgf_state.ret(name), _client_expiry_absent)


def _client_expiry_absent(ret):
    interface, minion = ret["name"], _minion()
    host = minion.host
    directory = wgf_expiry.state_dir(interface, wgf_expiry.STATE_ROOT)
    units = [p for p in wgf_expiry.unit_paths(interface) if host.read_text(p) is not None]
    armed = host.expiry_armed(interface)
    if units or armed:
        ret["changes"]["expiry timer"] = {"old": units or "armed", "new": None}
    if os.path.isdir(directory):
        ret["changes"]["records"] = {"old": directory, "new": None}
    if not ret["changes"]:
        ret["comment"] = f"{interface}: no client expiry of its is left"
        return ret
    if minion.test:
        return minion.pending(ret, f"{interface}: its client expiry would be removed")
    host.disarm_expiry(interface)
    if "records" in ret["changes"]:
        wgf_expiry.report(host, wgf_expiry.STATE_ROOT)
        host.remove_records(directory)
    ret["comment"] = f"{interface}: its client expiry removed"
    return ret


# Last: every state above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals(), wgf_args.state_refused)
