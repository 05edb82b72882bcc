"""
Manage WireGuard keys, config files and live peers.

Live peers are changed with ``wg set``: a peer change never restarts the interface,
so traffic to the other peers does not notice it. Each run reads an interface's live
state once (cached in ``__context__``) and writes each change once.

.. code-block:: yaml

    wg0-hub:
      wireguard.peer:
        - name: 3cp0...=
        - interface: wg0
        - allowed_ips: [10.1.1.0/24]
        - endpoint: vpn.example.com:51820
        - persistent_keepalive: 25

No private or preshared key ever appears in ``changes`` or comments.
"""

import difflib
import importlib
import ipaddress
import logging
import os

import salt.utils.json
import salt.utils.path
import salt.utils.systemd
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_args
import wgf_clients
import wgf_conf
import wgf_files
import wgf_host
import wgf_iproute
import wgf_keys
import wgf_layout
import wgf_live
import wgf_reload
import wgf_schema
import wgf_state

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"

LIVE = "wireguard.live"
PREVIOUS_CONF = "wireguard.previous_conf"
#: Where openresolv and Debian's resolvconf keep each interface's DNS record.
RESOLVCONF_RECORDS = {
    "openresolv": "/run/resolvconf/interfaces",
    "resolvconf": "/run/resolvconf/interface",
}
INTERFACE_ORDER = "/etc/resolvconf/interface-order"


def __virtual__():
    if "wireguard.show" not in __salt__:
        return (False, "The wireguard execution module did not load")
    return __virtualname__


_ret = wgf_state.ret


def _guarded(ret, func, *args, **kwargs):
    """The one place state errors are caught and turned into a failed result."""
    try:
        return func(ret, *args, **kwargs)
    except _NotUpYet as exc:
        ret.update(
            result=None,
            changes={},
            comment=(
                f"Interface {exc} is not up yet: it gets its peers from its config file "
                "when its service starts"
            ),
        )
        return ret
    except (CommandExecutionError, SaltInvocationError) as exc:
        return wgf_state.failed(ret, exc)


def _pending(ret, comment):
    return wgf_state.pending(ret, comment, __opts__["test"])


# --------------------------------------------------------------- live peers


class _NotUpYet(Exception):
    """In test mode: the interface is not up yet, its service would start it."""


def _live(interface):
    """The interface's live peers, read once per run."""
    cache = __context__.setdefault(LIVE, {})
    if interface not in cache:
        try:
            cache[interface] = __salt__["wireguard.show"](interface, psk_digests=True)[interface]
        except CommandExecutionError:
            if interface in __salt__["wireguard.interfaces"]():
                raise
            if __opts__["test"]:
                raise _NotUpYet(interface) from None
            service = __salt__["wireguard.service_name"](interface)
            raise CommandExecutionError(
                f"WireGuard interface '{interface}' is not up on this minion: start its "
                f"service {service} first, or apply the wireguard formula"
            ) from None
    return cache[interface]


def _forget_live(interface=None):
    """Drop cached live state, after anything that may have changed it behind us."""
    if interface is None:
        __context__.pop(LIVE, None)
    else:
        __context__.get(LIVE, {}).pop(interface, None)


def _normalise_cidrs(cidrs, where):
    try:
        return sorted({str(ipaddress.ip_network(c, strict=False)) for c in cidrs})
    except (TypeError, ValueError) as exc:
        raise SaltInvocationError(f"{where}: {exc}") from None


def _psk_from_arguments(interface, name, preshared_key, preshared_key_pillar):
    if preshared_key_pillar:
        preshared_key = __salt__["pillar.get"](preshared_key_pillar, unmask=True) or None
        if preshared_key is None:
            raise SaltInvocationError(
                f"interface '{interface}', peer '{name}': pillar "
                f"'{preshared_key_pillar}' holds no preshared key"
            )
    return preshared_key


def _peer_diff(interface, name, live, allowed_ips, endpoint, keepalive, psk):
    """Changes that bring the live peer ``live`` (or None) to the wanted attributes."""
    where = f"interface '{interface}', peer '{name}'"
    change = wgf_schema.normalise_peer_change(
        interface,
        {
            "public_key": name,
            "allowed_ips": allowed_ips or [],
            "endpoint": endpoint,
            "persistent_keepalive": keepalive or 0,
            "preshared_key": psk or "",
        },
    )
    live = live or {}
    diff, todo = {}, {"public_key": name}
    wanted_ips = _normalise_cidrs(change["allowed_ips"], f"{where}, allowed_ips")
    live_ips = _normalise_cidrs(live.get("allowed_ips", []), f"{where}, live allowed_ips")
    if not live or wanted_ips != live_ips:
        diff["allowed_ips"] = {"old": live_ips if live else None, "new": wanted_ips}
        todo["allowed_ips"] = wanted_ips
    if endpoint and (
        not live
        or live.get("endpoint") not in __salt__["wireguard.resolve_endpoint"](change["endpoint"])
    ):
        diff["endpoint"] = {"old": live.get("endpoint"), "new": change["endpoint"]}
        todo["endpoint"] = change["endpoint"]
    wanted_keepalive = change["persistent_keepalive"] or None
    if not live or live.get("persistent_keepalive") != wanted_keepalive:
        diff["persistent_keepalive"] = {
            "old": live.get("persistent_keepalive"),
            "new": wanted_keepalive,
        }
        todo["persistent_keepalive"] = wanted_keepalive or 0
    wanted_digest = wgf_keys.digest(psk) if psk else None
    live_digest = live.get("preshared_key_sha256")
    if wanted_digest != live_digest and (live or psk):
        diff["preshared_key"] = {
            "old": "set" if live_digest else "unset",
            "new": ("changed" if live_digest else "set") if psk else "unset",
        }
        todo["preshared_key"] = psk or ""
    return diff, todo


def peer(
    name,
    interface,
    allowed_ips=None,
    endpoint=None,
    persistent_keepalive=None,
    preshared_key=None,
    preshared_key_pillar=None,
):
    """
    The live interface holds this peer with exactly these attributes.

    name
        The peer's public key.
    interface
        The live WireGuard interface.
    allowed_ips
        List of CIDRs; compared regardless of order and host bits. None means none.
    endpoint
        ``host:port``, ``a.b.c.d:port`` or ``[v6]:port``. A host name is resolved and
        compared with the live address. None leaves the live endpoint alone (a roaming
        peer's endpoint is learnt from its packets).
    persistent_keepalive
        Seconds; 0, ``off`` and None all mean off.
    preshared_key
        A preshared key; compared without being shown. None means none.
    preshared_key_pillar
        A pillar path holding the preshared key, so the key never appears in SLS.
    """
    return _guarded(
        _ret(name),
        _peer,
        interface,
        allowed_ips,
        endpoint,
        persistent_keepalive,
        preshared_key,
        preshared_key_pillar,
    )


def _peer(ret, interface, allowed_ips, endpoint, keepalive, psk, psk_pillar):
    name = ret["name"]
    psk = _psk_from_arguments(interface, name, psk, psk_pillar)
    live = _live(interface)
    current = live["peers"].get(name)
    diff, todo = _peer_diff(interface, name, current, allowed_ips, endpoint, keepalive, psk)
    if not diff:
        ret["comment"] = f"Peer {name} on {interface} is already as wanted"
        return ret
    ret["changes"] = diff
    verb = "changed" if current else "added"
    if __opts__["test"]:
        return _pending(ret, f"Peer {name} on {interface} would be {verb}")
    __salt__["wireguard.apply_peers"](interface, peers=[todo])
    _remember(live, name, current, todo)
    return _pending(ret, f"Peer {name} on {interface} {verb}")


def _remember(live, name, current, todo):
    """Update the cached live state with a change we made, instead of reading it again."""
    entry = dict(
        current
        or {
            "allowed_ips": [],
            "endpoint": None,
            "persistent_keepalive": None,
            "preshared_key_sha256": None,
        }
    )
    if "allowed_ips" in todo:
        entry["allowed_ips"] = todo["allowed_ips"]
    if "endpoint" in todo:
        entry["endpoint"] = None  # resolved by wg; read again if compared again
    if "persistent_keepalive" in todo:
        entry["persistent_keepalive"] = todo["persistent_keepalive"] or None
    if "preshared_key" in todo:
        entry["preshared_key_sha256"] = (
            wgf_keys.digest(todo["preshared_key"]) if todo["preshared_key"] else None
        )
    live["peers"][name] = entry


def peer_absent(name, interface):
    """
    The live interface does not hold this peer.

    name
        The peer's public key.
    interface
        The live WireGuard interface. When it is not up, there is nothing to remove.
    """
    return _guarded(_ret(name), _peer_absent, interface)


def _peer_absent(ret, interface):
    name = ret["name"]
    if interface not in __salt__["wireguard.interfaces"]():
        ret["comment"] = f"Interface {interface} is not up, so it holds no peer {name}"
        return ret
    live = _live(interface)
    if name not in live["peers"]:
        ret["comment"] = f"Peer {name} is not on {interface}"
        return ret
    ret["changes"] = {"peer": {"old": name, "new": None}}
    if __opts__["test"]:
        return _pending(ret, f"Peer {name} would be removed from {interface}")
    __salt__["wireguard.apply_peers"](interface, remove=[name])
    live["peers"].pop(name)
    return _pending(ret, f"Peer {name} removed from {interface}")


def peers_purged(name, keep=None, keep_clients=False, config_dir=None):
    """
    The live interface holds no peer other than those in ``keep``.

    name
        The live WireGuard interface.
    keep
        Public keys of the peers to keep (the formula passes every peer its pillar
        declares, so a run that targets a few minions never drops the others' peers).
    keep_clients
        Keep the interface's clients too (their keys may be made in this very run).
    """
    return _guarded(_ret(name), _peers_purged, keep or [], keep_clients, config_dir)


def _peers_purged(ret, keep, keep_clients=False, config_dir=None):
    interface = ret["name"]
    if keep_clients:
        keep = [*keep, *_client_peers_wanted(interface, config_dir)]
    live = _live(interface)
    extra = sorted(set(live["peers"]) - set(keep))
    if not extra:
        ret["comment"] = f"{interface} holds no undeclared peer"
        return ret
    ret["changes"] = {"removed": {"old": extra, "new": []}}
    if __opts__["test"]:
        return _pending(ret, f"{len(extra)} undeclared peer(s) would be removed from {interface}")
    __salt__["wireguard.apply_peers"](interface, remove=extra)
    for key in extra:
        live["peers"].pop(key)
    return _pending(ret, f"{len(extra)} undeclared peer(s) removed from {interface}")


# ------------------------------------------------------------ live interface


def interface(name, config_dir=None):
    """
    The running interface is what a restart of its service would build from the
    config file the formula writes, changed in place: private key, listen port and
    fwmark (``wg set``), addresses, MTU, DNS (resolvconf, as wg-quick registers it),
    and the routes wg-quick derives from the peers' AllowedIPs (``table: auto``: in
    main unless an address's connected route covers them; a table: all of them there;
    ``off``: none) plus the formula's ``routes``. What only a restart can change
    (hooks, the table mode, the default-route setup) is ``wireguard.config``'s.

    Run after the peer states: the live peers' AllowedIPs are read once, with the
    addresses, routes and DNS (a fixed number of commands, whatever the peer count).
    A step that fails undoes the steps of this run before it, puts back the config
    file this run replaced, and fails naming the step.

    name
        The interface name. When it is not up, there is nothing to change.
    """
    return _guarded(_ret(name), _interface, config_dir)


def _run(argv, stdin=None):
    return wgf_host.Host(__salt__).run(argv, stdin)


def _ip_json(args):
    return salt.utils.json.loads(_run(["ip", "-j", *args]) or "[]")


def _dns_records():
    """Where this minion's resolvconf keeps each interface's record (which may not
    exist yet), or None when its records cannot be read (systemd-resolved's)."""
    binary = salt.utils.path.which("resolvconf")
    if not binary or os.path.basename(os.path.realpath(binary)) == "resolvectl":
        return None
    if os.path.exists(INTERFACE_ORDER):  # Debian's resolvconf
        return RESOLVCONF_RECORDS["resolvconf"]
    return RESOLVCONF_RECORDS["openresolv"]


def _resolvconf_name(interface):
    return wgf_live.resolvconf_name(interface, wgf_files.read(INTERFACE_ORDER))


def _auto_mtu(iface, live, allowed):
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
    routes = []
    mark = ""
    if wgf_live.default_route_mode(iface["table"], allowed) and live["fwmark"]:
        mark = f" mark {live['fwmark']}"
    if addresses:
        out = __salt__["cmd.run_all"](
            ["ip", "-j", "-force", "-batch", "-"],
            python_shell=False,
            ignore_retcode=True,
            output_loglevel="quiet",
            stdin="".join(f"route get {a}{mark}\n" for a in addresses),
        )
        for line in (out["stdout"] or "").split("\n"):
            if line.strip():
                routes += salt.utils.json.loads(line)
    links = {link.get("ifname"): link.get("mtu") for link in _ip_json(["link", "show"])}
    default = next(iter(_ip_json(["route", "show", "default"])), None)
    return wgf_live.mtu_from_routes(routes, links, default)


def _interface(ret, config_dir):
    interface = ret["name"]
    config_dir = _dir(config_dir)
    if interface not in __salt__["wireguard.interfaces"]():
        ret["comment"] = f"Interface {interface} is not up; it is built from its file at start"
        return ret
    iface = __salt__["wireguard.pillar_interfaces"](config_dir=config_dir).get(interface)
    if iface is None:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    live = __salt__["wireguard.show"](interface)[interface]
    private_key = _private_key_of(iface, config_dir)
    routes_v4 = _ip_json(["-4", "route", "show", "table", "all", "dev", interface])
    routes_v6 = _ip_json(["-6", "route", "show", "table", "all", "dev", interface])
    allowed = _allowed_ips(iface, live)
    want = wgf_live.wanted(
        iface,
        wgf_keys.pubkey_or_none(private_key),
        allowed,
        wgf_live.has_link_local(routes_v6),
        None if iface["mtu"] else _auto_mtu(iface, live, allowed),
    )
    records = _dns_records()
    record_path = os.path.join(records, _resolvconf_name(interface)) if records else None
    have = wgf_live.running(
        live,
        wgf_iproute.link(_ip_json(["addr", "show", "dev", interface])),
        routes_v4,
        routes_v6,
        wgf_files.read(record_path) if record_path else None,
        want["default_route"],
    )
    if records is None:
        have["dns"] = want["dns"]  # nothing to read it from: wireguard.config restarts
    steps, changes = wgf_live.plan(want, have, interface)
    if not steps:
        ret["comment"] = f"{interface} runs as its config file says"
        return ret
    ret["changes"] = changes
    if __opts__["test"]:
        return _pending(
            ret, f"{interface} would be changed in place: " + ", ".join(s["name"] for s in steps)
        )
    _apply_steps(interface, steps, private_key)
    _forget_live(interface)
    return _pending(
        ret, f"{interface} changed in place, no restart: " + ", ".join(s["name"] for s in steps)
    )


def _allowed_ips(iface, live):
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


def _dir(config_dir):  # the argument, else pillar's lookup:config_dir; checked either way
    return __salt__["wireguard_layout.config_dir"](config_dir)


def _private_key_of(iface, config_dir):
    """The interface's private key: pillar's, else its key file's."""
    return _pillar_secrets(iface)["private_key"] or wgf_files.read_key(
        os.path.join(config_dir, f"{iface['name']}.key")
    )


def _apply_steps(interface, steps, private_key):
    """Run the steps; when one fails, undo those before it (last first), put the
    previous config file back, and raise naming the step."""
    done = []
    for step in steps:
        try:
            _do(interface, step, private_key, undo=False)
        except CommandExecutionError as exc:
            failed = []
            for earlier in reversed(done):
                try:
                    _do(interface, earlier, None, undo=True)
                except CommandExecutionError as undo_exc:
                    failed.append(f"{earlier['name']} ({undo_exc})")
            path, previous = __context__.get(PREVIOUS_CONF, {}).get(interface, (None, None))
            if previous is not None:
                wgf_files.write_private(path, previous)
            raise CommandExecutionError(
                f"{interface}: the live step '{step['name']}' failed: {exc}. "
                + (
                    f"Undoing failed for: {'; '.join(failed)}."
                    if failed
                    else "The steps before it were undone"
                )
                + (" and the previous config file put back." if previous is not None else ".")
            ) from None
        done.append(step)


def _do(interface, step, private_key, undo):
    if "wg" in step:
        _wg_set(interface, step["undo_wg" if undo else "wg"], private_key)
    elif "dns" in step:
        record = step["undo_dns" if undo else "dns"]
        name = _resolvconf_name(interface)
        if record:
            _run(["resolvconf", "-a", name, "-m", "0", "-x"], stdin=wgf_live.dns_text(record))
        else:
            _run(["resolvconf", "-d", name, "-f"])
    else:
        for argv in step["undo" if undo else "do"]:
            _run(argv)


def _wg_set(interface, values, private_key):
    """``wg set`` of key, port and fwmark; the private key only through a 0600 file."""
    args = ["set", interface]
    with wgf_files.key_files() as put_key:
        if "public_key" in values:
            if not private_key:  # never: the key is the last step, so never undone
                raise CommandExecutionError("the previous private key cannot be put back")
            args += ["private-key", put_key(private_key)]
        if values.get("listen_port") is not None:
            args += ["listen-port", str(values["listen_port"])]
        if "fwmark" in values:
            args += ["fwmark", str(values["fwmark"] or "off")]
        wgf_host.wg(args)


# ----------------------------------------------------------- key and config


def _mode_fix(ret, path):
    """Key and config files are 0600 and owned by root."""
    stat = os.stat(path)
    if stat.st_mode & 0o7777 != 0o600 or stat.st_uid != 0:
        ret["changes"]["mode"] = {"old": oct(stat.st_mode & 0o7777), "new": "0o600"}
        if not __opts__["test"]:
            os.chown(path, 0, 0)
            os.chmod(path, 0o600)


def private_key(name, config_dir=None):
    """
    The interface's private key is in ``<config_dir>/<name>.key`` (0600, root): the
    one pillar gives, or one generated once on the minion and then kept. Only the
    public key is ever reported.

    name
        The interface name.
    """
    return _guarded(_ret(name), _private_key, config_dir)


def _private_key(ret, config_dir):
    interface = ret["name"]
    config_dir = _dir(config_dir)
    path = os.path.join(config_dir, f"{interface}.key")
    if not __opts__["test"]:
        wgf_files.remove_stale_temps(path)
    declared = __salt__["wireguard.pillar_interfaces"](config_dir=config_dir).get(interface)
    wanted = _pillar_secrets(declared)["private_key"] if declared else None
    current = wgf_files.read_key(path)
    current_public = wgf_keys.pubkey_or_none(current)  # an unreadable key is replaced
    if current_public and (wanted is None or wanted == current):
        _mode_fix(ret, path)
        if ret["changes"]:
            return _pending(ret, f"Mode of {path} fixed")
        ret["comment"] = f"Private key of {interface} is in place ({path})"
        return ret
    source = "from pillar" if wanted else "generated"
    conf = os.path.join(config_dir, f"{interface}.conf")
    if not wanted and not current_public:
        # a hand-written config taken over: keep its key, so its peers keep working
        wanted = wgf_keys.pubkey_or_none(
            wgf_conf.private_key(wgf_files.read(conf))
        ) and wgf_conf.private_key(wgf_files.read(conf))
        source = f"taken from {conf}" if wanted else source
    new_public = wgf_keys.pubkey(wanted) if wanted else None
    ret["changes"] = {"public_key": {"old": current_public, "new": new_public or "(new key)"}}
    if __opts__["test"]:
        return _pending(ret, f"Private key of {interface} would be {source} ({path})")
    key = wanted or wgf_keys.genkey()
    wgf_files.write_private(path, key + "\n")
    ret["changes"]["public_key"]["new"] = wgf_keys.pubkey(key)
    return _pending(ret, f"Private key of {interface} {source} ({path})")


def _pillar_secrets(iface):
    """The keys pillar gives one validated interface, read here and nowhere else: they
    never pass through SLS, an execution function's return or a log."""
    return wgf_schema.secrets_of(__salt__["pillar.get"]("wireguard", {}, unmask=True), iface)


def _rendered(interface, config_dir):
    """The conf text for ``interface`` with its real keys, and pillar's warnings."""
    declared = __salt__["wireguard.pillar_interfaces"](config_dir=config_dir)
    if interface not in declared:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    iface = declared[interface]
    psks = {**_pillar_secrets(iface)["preshared_keys"], **_client_psks(iface, config_dir)}
    return (wgf_conf.render(iface, _private_key_of(iface, config_dir), psks), iface["warnings"])


def config(name, config_dir=None, service=None):
    """
    ``<config_dir>/<name>.conf`` is the wg-quick config rendered from pillar (0600,
    written atomically). Changes are reported as a diff with keys masked.

    name
        The interface name.
    service
        The interface's service (``wg-quick@wg0``). When given and running, it is
        restarted if the ``[Interface]`` part changed (peers and routes change live,
        without a restart) or if its interface is gone; if the restart fails the
        previous file is put back and started again, and the state fails with the
        service's error. A start systemd refuses for the unit's start limit
        (``start-limit-hit``: by default more than 5 starts in 10 s, e.g. a few applies
        in a row that each restart) is tried once more after ``systemctl
        reset-failed``; a service down for that reason gets its limit reset, so the
        service state can start it. No drop-in relaxes the limit: it stays the admin's.
    """
    return _guarded(_ret(name), _config, config_dir, service)


def _config(ret, config_dir, service):
    interface = ret["name"]
    config_dir = _dir(config_dir)
    path = os.path.join(config_dir, f"{interface}.conf")
    if not __opts__["test"]:
        wgf_files.remove_stale_temps(path)
    wanted, warnings = _rendered(interface, config_dir)
    if warnings:
        ret["warnings"] = warnings
    current = wgf_files.read(path)
    reasons = wgf_live.restart_reasons(current, wanted)
    if (
        current is not None
        and _dns_records() is None
        and wgf_conf.parse(current)["dns"] != wgf_conf.parse(wanted)["dns"]
    ):
        reasons.append(
            "its DNS changed and this minion's resolvconf keeps no record to change in place"
        )
    restart = None
    pending = wgf_layout.restart_pending(interface)
    if service and _service_active(service):
        if interface not in __salt__["wireguard.interfaces"]():
            restart = "its interface is not up"
        elif reasons:
            restart = "; ".join(reasons)
        elif os.path.exists(pending):
            restart = "an earlier run was stopped between writing its file and restarting it"
    elif service and _start_refused(service):
        # the service state after this one starts it: systemd would refuse that too
        ret["changes"]["start_limit_reset"] = {
            "service": service,
            "why": ("systemd refused to start it again so soon (start-limit-hit)"),
        }
    if current == wanted:
        _mode_fix(ret, path)
    else:
        public = wgf_conf.known_public(
            [wgf_conf.parse(current or "")], [wgf_conf.parse(wanted)], live=_live_or_none(interface)
        )
        diff = "".join(
            difflib.unified_diff(
                wgf_conf.mask(current, public).splitlines(True),
                wgf_conf.mask(wanted, public).splitlines(True),
                fromfile=path,
                tofile=path,
            )
        )
        ret["changes"]["diff"] = diff or "private or preshared key changed"
    if restart:
        ret["changes"]["restarted"] = {"service": service, "why": restart}
    if not ret["changes"]:
        ret["comment"] = f"{path} is as pillar says"
        return ret
    if restart:
        _refuse_unresolvable_endpoints(service, interface, wanted)
    if __opts__["test"]:
        return _pending(ret, wgf_state.config_comment(path, service, restart, ret, True))
    if "start_limit_reset" in ret["changes"]:
        _systemd(service)["reset_failed"]()
    if restart:
        wgf_files.write_private(pending, "")
    if current != wanted:
        # the previous file, should a live change of this run fail (wireguard.interface)
        __context__.setdefault(PREVIOUS_CONF, {})[interface] = (path, current)
        wgf_files.write_private(path, wanted)
    if restart:
        try:
            if _restart(service, interface, path, current):
                ret["changes"]["restarted"]["start_limit_reset"] = True
        finally:
            wgf_files.remove(pending)
    return _pending(ret, wgf_state.config_comment(path, service, restart, ret))


def _refuse_unresolvable_endpoints(service, interface, text):
    """Raise before anything changes when a host name endpoint of ``text`` does not
    resolve: wg-quick would wait for it (``WG_ENDPOINT_RESOLUTION_RETRIES=infinity`` in
    the stock unit) with the interface down, and the run would hang."""
    unresolved = []
    for peer in wgf_conf.parse(text)["peers"]:
        endpoint = peer["endpoint"]
        if not endpoint or wgf_addr.endpoint_ip(endpoint)[0] is not None:
            continue
        try:
            if __salt__["wireguard.resolve_endpoint"](endpoint):
                continue
        except (CommandExecutionError, SaltInvocationError):
            pass
        unresolved.append(f"{peer['name'] or wgf_keys.short(peer['public_key'])} ({endpoint})")
    if unresolved:
        raise CommandExecutionError(
            f"{interface}: {service} needs a restart, but the endpoint of "
            f"{', '.join(unresolved)} does not resolve now: wg-quick would wait for it with "
            f"{interface} down. Nothing was changed; make the name resolve (DNS or /etc/hosts) "
            "and apply again"
        )


def _live_or_none(interface):
    """The live interface (``wireguard.show``), or None when it is not up."""
    try:
        return __salt__["wireguard.show"](interface)[interface]
    except (CommandExecutionError, KeyError):
        return None


def _service_active(service):
    return bool(__salt__["service.status"](service))


def _start_refused(service):
    """Whether systemd refused to start ``service`` for its unit's start limit."""
    result = _systemd(service)["result"]
    try:
        return result is not None and wgf_state.start_limit_hit(result())
    except CommandExecutionError:
        return False


def _systemd(service):
    """``result`` and ``reset_failed`` of ``service``'s systemd unit for
    ``wgf_state.restarted``, or Nones where systemd is not the init (OpenRC)."""
    if not salt.utils.systemd.booted(__context__):
        return {"result": None, "reset_failed": None}
    # `Result=start-limit-hit` (no --value: systemd before 230 lacks it)
    return {
        "result": lambda: (
            _run(["systemctl", "show", "-p", "Result", service]).strip().partition("=")[2]
        ),
        "reset_failed": lambda: _run(["systemctl", "reset-failed", service]),
    }


def _restart(service, interface, path, previous):
    """Restart ``service``; on failure put ``previous`` back, restart, and raise. A
    restart systemd refuses for the unit's start limit (a few applies in a row that
    each restart) is retried once after ``systemctl reset-failed``, here and for the
    put-back: the formula does not raise the limit with a drop-in (``wgf_state``).
    Returns whether the limit was reset."""
    _forget_live(interface)
    return wgf_state.restart_with_fallback(
        service,
        path,
        lambda: __salt__["service.restart"](service),
        None if previous is None else lambda: wgf_files.write_private(path, previous),
        lambda: _service_error(service),
        **_systemd(service),
    )


def _service_error(service):
    """The service's last log lines, where systemd keeps them."""
    if not __salt__["cmd.has_exec"]("journalctl"):
        return "(see the service's log)"
    out = __salt__["cmd.run_stdout"](
        ["journalctl", "-u", service, "-n", "8", "--no-pager", "-o", "cat"],
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="quiet",
    )
    return wgf_conf.mask(out).strip() or "(no log)"


# ------------------------------------------------------------------ clients


def _client_psks(iface, config_dir):
    """``{client: preshared key}`` from the minion's files (made by ``clients``)."""
    found = {}
    for name, peer in iface["peers"].items():
        if peer.get("client") and peer["has_preshared_key"]:
            path = wgf_clients.key_path(config_dir, iface["name"], name, "psk")
            found[name] = wgf_files.read_key(path)
    return found


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
    return _guarded(_ret(name), _clients, config_dir)


def _clients(ret, config_dir):
    interface = ret["name"]
    config_dir = _dir(config_dir)
    declared = __salt__["wireguard.pillar_interfaces"](config_dir=config_dir).get(interface)
    if declared is None:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    path = wgf_clients.record_path(config_dir, interface)
    old = wgf_clients.parse_record(wgf_files.read(path), path)
    keydir = wgf_clients.key_dir(config_dir, interface)
    wanted = {n: c for n, c in declared["clients"].items() if not c["absent"]}
    made, writes, removals = {}, {}, []
    for name, client in sorted(wanted.items()):
        key_file = wgf_clients.key_path(config_dir, interface, name, "key")
        psk_file = wgf_clients.key_path(config_dir, interface, name, "psk")
        if client["byo"]:
            removals.append(key_file)
        elif (
            not client["public_key"]
            or wgf_keys.pubkey_or_none(wgf_files.read_key(key_file)) != client["public_key"]
        ):
            key = wgf_keys.genkey()
            writes[key_file], made[name] = key + "\n", wgf_keys.pubkey(key)
        if not client["preshared_key"]:
            removals.append(psk_file)
        elif not wgf_keys.pubkey_or_none(wgf_files.read_key(psk_file)):
            writes[psk_file] = wgf_keys.genpsk() + "\n"
    revoked = {n: e for n, e in old["clients"].items() if n not in wanted}
    for name in revoked:
        removals += [
            wgf_clients.key_path(config_dir, interface, name, kind) for kind in ("key", "psk")
        ]
    removals = [p for p in removals if os.path.exists(p)]
    new = wgf_clients.record_of(declared, made)
    ret["changes"] = wgf_clients.changes(old, new, writes, made, __opts__["test"])
    if not ret["changes"] and not removals and new == old:
        ret["comment"] = f"The clients of {interface} are as pillar says"
        return ret
    if __opts__["test"]:
        return _pending(ret, f"The clients of {interface} would be updated")
    for directory in (os.path.dirname(keydir), keydir):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    wgf_files.remove_stale_temps(os.path.join(keydir, "key"), prefix=".")
    wgf_files.write_many(writes, sync_each=False)
    for file in removals:
        os.unlink(file)
    wgf_files.write_private(path, wgf_clients.dump_record(new))
    _remove_revoked_peers(interface, [e["public_key"] for e in revoked.values()])
    return _pending(
        ret,
        f"The clients of {interface} updated: {len(new['clients'])} "
        f"client(s), {len(revoked)} revoked",
    )


def _remove_revoked_peers(interface, keys):
    keys = [k for k in keys if k]
    if not keys or interface not in __salt__["wireguard.interfaces"]():
        return
    live = _live(interface)
    gone = [k for k in keys if k in live["peers"]]
    if gone:
        __salt__["wireguard.apply_peers"](interface, remove=gone)
        for key in gone:
            live["peers"].pop(key)


def _client_peers_wanted(interface, config_dir):
    declared = __salt__["wireguard.pillar_interfaces"](config_dir=config_dir).get(interface)
    return {
        p["public_key"]: p for p in (declared or {}).get("peers", {}).values() if p.get("client")
    }


def client_peers(name, config_dir=None):
    """
    The live interface holds each of its clients as a peer: its public key, its
    addresses as AllowedIPs, its preshared key (read from the minion's file). Applied
    through ``wg set`` in one go: no restart. Run after ``clients``.

    name
        The live WireGuard interface.
    """
    return _guarded(_ret(name), _client_peers, config_dir)


def _client_peers(ret, config_dir):
    interface = ret["name"]
    config_dir = _dir(config_dir)
    wanted = _client_peers_wanted(interface, config_dir)
    live = _live(interface)
    todo = []
    for key, peer in wanted.items():
        psk = _client_psks({"name": interface, "peers": {peer["name"]: peer}}, config_dir)
        psk = psk.get(peer["name"])
        now = live["peers"].get(key)
        if (
            now
            and sorted(now["allowed_ips"]) == sorted(peer["allowed_ips"])
            and not now["persistent_keepalive"]
            and now.get("preshared_key_sha256") == (wgf_keys.digest(psk) if psk else None)
        ):
            continue  # as wanted: the common case, without parsing every address again
        diff, change = _peer_diff(interface, key, now, peer["allowed_ips"], None, None, psk)
        if diff:
            ret["changes"][peer["name"]] = diff
            todo.append((key, change))
    if not todo:
        ret["comment"] = f"The clients of {interface} are live as wanted"
        return ret
    if __opts__["test"]:
        return _pending(ret, f"{len(todo)} client peer(s) of {interface} would be set")
    __salt__["wireguard.apply_peers"](interface, peers=[change for _, change in todo])
    for key, change in todo:
        _remember(live, key, live["peers"].get(key), change)
    return _pending(ret, f"{len(todo)} client peer(s) of {interface} set live")


# Last: every state above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals(), wgf_args.state_refused)
