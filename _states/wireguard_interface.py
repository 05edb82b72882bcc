"""
The running interface changed in place to what its config file says: key, port and
fwmark, addresses, MTU, DNS and routes, without a restart.

A file of the ``wireguard`` state module, by concern (``wireguard.interface``): Salt
loads it under the one name with the others. What the steps are is
``_utils/wgf_live.py``; the host adapter (``wgf_host.Host``) runs them.
"""

import importlib

from salt.exceptions import CommandExecutionError

import wgf_args
import wgf_host
import wgf_live
import wgf_plan
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
    An interface this run made anew (a restart, a backend switch) first gets the
    endpoints its peers had and it lacks (a peer behind NAT has none in pillar).
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


def _interface(ret, config_dir):
    interface, minion = ret["name"], _minion()
    config_dir = minion.config_dir(config_dir)
    if not minion.is_up(interface):
        ret["comment"] = f"Interface {interface} is not up; it is built from its file at start"
        return ret
    if not minion.test:  # made anew by this run: the endpoints its peers had
        minion.carry_endpoints(interface)
    steps, changes, private_key = wgf_plan.live(minion, interface, config_dir)
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
