"""
The interface's files: its private key and its wg-quick config, and the restart of its
service when the config changed what only a restart applies.

A file of the ``wireguard`` state module, by concern (``wireguard.private_key``,
``wireguard.config``): Salt loads it under the one name with the others. The host
adapter (``wgf_host.Host``) writes the files and restarts the service.
"""

import importlib
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_args
import wgf_conf
import wgf_files
import wgf_host
import wgf_keys
import wgf_layout
import wgf_live
import wgf_networkd
import wgf_plan
import wgf_reload
import wgf_state
import wgf_state_networkd

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_state.loaded(__salt__, __virtualname__)


def _minion():
    """The minion for one state call; its host adapter is made here and nowhere else in
    this file (the unit tests hand in a fake one)."""
    return wgf_state.Minion(__salt__, __opts__, __context__, wgf_host.Host(__salt__))


def _mode_fix(minion, ret, path):
    """Key and config files are 0600 and owned by root."""
    stat = os.stat(path)
    if stat.st_mode & 0o7777 != 0o600 or stat.st_uid != 0:
        ret["changes"]["mode"] = {"old": oct(stat.st_mode & 0o7777), "new": "0o600"}
        if not minion.test:
            minion.host.make_private(path)


def private_key(name, config_dir=None):
    """
    The interface's private key is in ``<config_dir>/<name>.key`` (0600, root): the
    one pillar gives, or one generated once on the minion and then kept. Only the
    public key is ever reported.

    name
        The interface name.
    """
    return wgf_state.guarded(wgf_state.ret(name), _private_key, _minion(), config_dir)


def _private_key(ret, minion, config_dir):
    config_dir = minion.config_dir(config_dir)
    path = wgf_layout.Layout(config_dir).key(ret["name"])
    interface = ret["name"]
    if not minion.test:
        minion.host.remove_stale_temps(path)
    declared = minion.declared(interface, config_dir)
    wanted = minion.pillar_secrets(declared)["private_key"] if declared else None
    current = wgf_files.read_key(path)
    current_public = wgf_keys.pubkey_or_none(current)  # an unreadable key is replaced
    if current_public and (wanted is None or wanted == current):
        _mode_fix(minion, ret, path)
        if ret["changes"]:
            return minion.pending(ret, f"Mode of {path} fixed")
        ret["comment"] = f"Private key of {interface} is in place ({path})"
        return ret
    source = "from pillar" if wanted else "generated"
    conf = wgf_layout.Layout(config_dir).conf(interface)
    if not wanted and not current_public:
        # a hand-written config taken over: keep its key, so its peers keep working
        wanted = wgf_keys.pubkey_or_none(
            wgf_conf.private_key(wgf_files.read(conf))
        ) and wgf_conf.private_key(wgf_files.read(conf))
        source = f"taken from {conf}" if wanted else source
    new_public = wgf_keys.pubkey(wanted) if wanted else None
    ret["changes"] = {"public_key": {"old": current_public, "new": new_public or "(new key)"}}
    if minion.test:
        return minion.pending(ret, f"Private key of {interface} would be {source} ({path})")
    key = wanted or wgf_keys.genkey()
    minion.host.write_secret(path, key + "\n")
    ret["changes"]["public_key"]["new"] = wgf_keys.pubkey(key)
    return minion.pending(ret, f"Private key of {interface} {source} ({path})")


def config(name, config_dir=None, service=None):
    """
    ``<config_dir>/<name>.conf`` is the wg-quick config rendered from pillar (0600,
    written atomically). Changes are reported as a diff with keys masked.

    On the networkd backend (pillar ``backend: networkd``, docs/networkd.md) it writes
    ``/etc/systemd/network/50-wireguard-<name>.netdev`` and ``.network`` instead, with
    the keys networkd reads copied 0640 root:systemd-network into a 0750 directory
    (never into the files), and runs ``networkctl reload`` after a change. A change of
    backend on a running interface is one restart (``changes``: ``backend``,
    ``restarted``); the other backend's files and unit go.

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
    return wgf_state.guarded(wgf_state.ret(name), _config, _minion(), config_dir, service)


def _config(ret, minion, config_dir, service):
    interface, host = ret["name"], minion.host
    config_dir = minion.config_dir(config_dir)
    declared = minion.declared(interface, config_dir)
    if declared and declared.get("backend") == wgf_networkd.NETWORKD:
        return wgf_state_networkd.config(ret, minion, config_dir, declared)
    path = wgf_layout.Layout(config_dir).conf(interface)
    if declared:  # from networkd: its files and netdev go, the service starts wg-quick
        wgf_state_networkd.leave(ret, minion, config_dir)
    if not minion.test:
        host.remove_stale_temps(path)
    wanted, warnings = wgf_plan.rendered(minion, interface, config_dir)
    if warnings:
        ret["warnings"] = warnings
    current = wgf_files.read(path)
    # the same text has nothing to restart for (parsing 10,000 peers twice to find so
    # cost a no-op 0.2 s; issue 24)
    reasons = [] if current == wanted else wgf_live.restart_reasons(current, wanted)
    if (
        current is not None
        and current != wanted
        and host.resolvconf_records() is None
        and wgf_conf.parse(current)["dns"] != wgf_conf.parse(wanted)["dns"]
    ):
        reasons.append(
            "its DNS changed and this minion's resolvconf keeps no record to change in place"
        )
    restart = None
    pending = wgf_layout.restart_pending(interface)
    up = minion.is_up(interface)
    # the service is asked only when something would restart it: an interface up as
    # its file says needs no restart, and starting a stopped one is the service
    # state's (Salt's service.status is two systemctl calls; issue 24)
    ask = service and not (up and not reasons and not os.path.exists(pending))
    if ask and host.service_active(service):
        if not up:
            restart = "its interface is not up"
        elif reasons:
            restart = "; ".join(reasons)
        else:
            restart = "an earlier run was stopped between writing its file and restarting it"
    elif ask and _start_refused(host, service):
        # the service state after this one starts it: systemd would refuse that too
        ret["changes"]["start_limit_reset"] = {
            "service": service,
            "why": ("systemd refused to start it again so soon (start-limit-hit)"),
        }
    if current == wanted:
        _mode_fix(minion, ret, path)
    else:
        # the keys the rendered file holds are pillar's (not parsed back: 10,000 peers);
        # the live peers are read once a run, for the live states after this one too
        public = wgf_conf.known_public(
            pillar=declared,
            live=minion.live(interface) if up else None,
            own=[wgf_keys.pubkey_or_none(wgf_conf.private_key(t)) for t in (current, wanted)],
        )
        diff = wgf_conf.masked_diff(path, current, wanted, public)
        ret["changes"]["diff"] = diff or "private or preshared key changed"
    if restart:
        ret["changes"]["restarted"] = {"service": service, "why": restart}
    if not ret["changes"]:
        ret["comment"] = f"{path} is as pillar says"
        return ret
    if restart:
        _refuse_unresolvable_endpoints(minion, service, interface, wanted)
    if minion.test:
        return minion.pending(ret, wgf_state.config_comment(path, service, restart, ret, True))
    if "start_limit_reset" in ret["changes"]:
        _systemd(host, service)["reset_failed"]()
    if restart:
        host.write_secret(pending, "")
    if current != wanted:
        # the previous file, should a live change of this run fail (wireguard.interface)
        minion.keep_previous(interface, path, current)
        host.write_secret(path, wanted)
    if restart:
        try:
            if _restart(minion, service, interface, path, current):
                ret["changes"]["restarted"]["start_limit_reset"] = True
        finally:
            host.remove(pending)
    return minion.pending(ret, wgf_state.config_comment(path, service, restart, ret))


def _refuse_unresolvable_endpoints(minion, service, interface, text):
    """Raise before anything changes when a host name endpoint of ``text`` does not
    resolve: wg-quick would wait for it (``WG_ENDPOINT_RESOLUTION_RETRIES=infinity`` in
    the stock unit) with the interface down, and the run would hang."""
    unresolved = []
    for peer in wgf_conf.parse(text)["peers"]:
        endpoint = peer["endpoint"]
        if not endpoint or wgf_addr.endpoint_ip(endpoint)[0] is not None:
            continue
        try:
            if minion.salt["wireguard.resolve_endpoint"](endpoint):
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


def _start_refused(host, service):
    """Whether systemd refused to start ``service`` for its unit's start limit."""
    result = _systemd(host, service)["result"]
    try:
        return result is not None and wgf_state.start_limit_hit(result())
    except CommandExecutionError:
        return False


def _systemd(host, service):
    """``result`` and ``reset_failed`` of ``service``'s systemd unit for
    ``wgf_state.restarted``, or Nones where systemd is not the init (OpenRC)."""
    if not host.has_systemd():
        return {"result": None, "reset_failed": None}
    # `Result=start-limit-hit`
    return {
        "result": lambda: host.unit_result(service),
        "reset_failed": lambda: host.reset_failed(service),
    }


def _restart(minion, service, interface, path, previous):
    """Restart ``service``; on failure put ``previous`` back, restart, and raise. A
    restart systemd refuses for the unit's start limit (a few applies in a row that
    each restart) is retried once after ``systemctl reset-failed``, here and for the
    put-back: the formula does not raise the limit with a drop-in (``wgf_state``).
    Returns whether the limit was reset."""
    host = minion.host
    minion.remember_endpoints(interface)  # for the restarted one (wireguard.interface)
    minion.forget_live(interface)
    return wgf_state.restart_with_fallback(
        service,
        path,
        lambda: host.restart(service),
        None if previous is None else lambda: host.write_secret(path, previous),
        lambda: host.journal(service),
        **_systemd(host, service),
    )


def networkd_absent(name, config_dir=None):
    """
    The networkd backend has no file of interface ``name``: its ``.netdev`` and
    ``.network`` (``/etc/systemd/network/50-wireguard-<name>.*``) and its key copies
    are removed, networkd is reloaded, and the interface networkd made from them is
    deleted. ``wireguard.clean`` and an ``absent`` interface use it; an interface on
    wg-quick is left alone.

    name
        The interface name.
    """
    return wgf_state.guarded(wgf_state.ret(name), _networkd_absent, _minion(), config_dir)


def _networkd_absent(ret, minion, config_dir):
    return wgf_state_networkd.absent(ret, minion, minion.config_dir(config_dir))


# Last: every state above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals(), wgf_args.state_refused)
