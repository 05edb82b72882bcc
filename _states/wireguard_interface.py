"""
The running interface changed in place to what its config file says: key, port and
fwmark, addresses, MTU, DNS and routes, without a restart.

A file of the ``wireguard`` state module, by concern (``wireguard.interface``): Salt
loads it under the one name with the others. What the steps are is
``_utils/wgf_live.py``; the host adapter (``wgf_host.Host``) runs them.
"""

import importlib
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_args
import wgf_files
import wgf_host
import wgf_iproute
import wgf_keys
import wgf_live
import wgf_reload
import wgf_state

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_state.loaded(__salt__, __virtualname__)


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
    return wgf_state.guarded(wgf_state.ret(name), _interface, config_dir)


def _minion():
    """The minion for one state call; its host adapter is made here and nowhere else in
    this file (the unit tests hand in a fake one)."""
    return wgf_state.Minion(__salt__, __opts__, __context__, wgf_host.Host(__salt__))


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


def _interface(ret, config_dir):
    interface, minion = ret["name"], _minion()
    host, config_dir = minion.host, minion.config_dir(config_dir)
    if not minion.is_up(interface):
        ret["comment"] = f"Interface {interface} is not up; it is built from its file at start"
        return ret
    iface = minion.declared(interface, config_dir)
    if iface is None:
        raise SaltInvocationError(f"interface '{interface}' is not in pillar wireguard")
    live = __salt__["wireguard.show"](interface)[interface]
    private_key = minion.private_key_of(iface, config_dir)
    routes_v4 = host.ip_json(["-4", "route", "show", "table", "all", "dev", interface])
    routes_v6 = host.ip_json(["-6", "route", "show", "table", "all", "dev", interface])
    allowed = _allowed_ips(iface, live)
    want = wgf_live.wanted(
        iface,
        wgf_keys.pubkey_or_none(private_key),
        allowed,
        wgf_live.has_link_local(routes_v6),
        None if iface["mtu"] else _auto_mtu(host, iface, live, allowed),
    )
    records = host.resolvconf_records()
    record_path = os.path.join(records, host.resolvconf_name(interface)) if records else None
    have = wgf_live.running(
        live,
        wgf_iproute.link(host.ip_json(["addr", "show", "dev", interface])),
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
    if minion.test:
        return minion.pending(
            ret, f"{interface} would be changed in place: " + ", ".join(s["name"] for s in steps)
        )
    _apply_steps(minion, interface, steps, private_key)
    minion.forget_live(interface)
    return minion.pending(
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


def _apply_steps(minion, interface, steps, private_key):
    """Run the steps; when one fails, undo those before it (last first), put the
    previous config file back, and raise naming the step."""
    done = []
    for step in steps:
        try:
            _do(minion.host, interface, step, private_key, undo=False)
        except CommandExecutionError as exc:
            failed = []
            for earlier in reversed(done):
                try:
                    _do(minion.host, interface, earlier, None, undo=True)
                except CommandExecutionError as undo_exc:
                    failed.append(f"{earlier['name']} ({undo_exc})")
            path, previous = minion.previous(interface)
            if previous is not None:
                minion.host.write_secret(path, previous)
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


def _do(host, interface, step, private_key, undo):
    if "wg" in step:
        _wg_set(host, interface, step["undo_wg" if undo else "wg"], private_key)
    elif "dns" in step:
        record = step["undo_dns" if undo else "dns"]
        name = host.resolvconf_name(interface)
        if record:
            host.set_dns(name, wgf_live.dns_text(record))
        else:
            host.remove_dns(name)
    else:
        for argv in step["undo" if undo else "do"]:
            host.run(argv)


def _wg_set(host, interface, values, private_key):
    """``wg set`` of key, port and fwmark; the private key only through a 0600 file."""
    if "public_key" in values and not private_key:
        # never: the key is the last step, so never undone
        raise CommandExecutionError("the previous private key cannot be put back")
    host.wg_set(
        interface,
        private_key=private_key if "public_key" in values else None,
        listen_port=values.get("listen_port"),
        fwmark=(values["fwmark"] or "off") if "fwmark" in values else None,
    )


# Last: every state above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals(), wgf_args.state_refused)
