"""
Confirmed changes (issue 21, docs/confirm.md): before the run's first change to a
running interface, an undo is armed that does not need salt-minion (a transient
systemd timer, on OpenRC a detached process); after the changes, the probes must
answer, or the change is undone.

A file of the ``wireguard`` state module, by concern (``wireguard.confirm_armed``,
``wireguard.confirm_checked``, ``wireguard.confirm_absent``): Salt loads it under the
one name with the others. What a run would change is ``_utils/wgf_plan.py`` (the
planning the other states do); the decision, names and messages are
``_utils/wgf_confirm.py``; recording, arming and probing ``_utils/wgf_confirm_run.py``,
through the host adapter (``wgf_host.Host``).
"""

import importlib

import wgf_args
import wgf_confirm
import wgf_confirm_run
import wgf_confirm_undo
import wgf_files
import wgf_host
import wgf_layout
import wgf_plan
import wgf_reload
import wgf_state

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_state.loaded(__salt__, __virtualname__)


def _minion():
    """The minion for one state call; its host adapter is made here and nowhere else in
    this file (the unit tests hand in a fake one)."""
    return wgf_state.Minion(__salt__, __opts__, __context__, wgf_host.Host(__salt__))


def _setting(minion, interface, config_dir):
    """``(validated interface or None, its Confirm or None)``."""
    iface = minion.declared(interface, config_dir)
    setting = (iface or {}).get("confirm")
    return iface, wgf_confirm_run.probes_of(setting) if setting else None


def confirm_armed(name, config_dir=None):
    """
    Arm the undo of interface ``name`` when this run changes it while it runs and its
    ``confirm`` is on: the running state (config file, key file, systemd drop-in, the
    formula's firewall: its nftables table, or its iptables and ip6tables
    ``WIREGUARD-*`` chains and jumps) is recorded root-only under
    ``/var/lib/wireguard-formula/confirm/<name>/``, with the probes' answers before the
    change, and a transient timer (``wireguard-confirm-<name>.timer``; on OpenRC a
    detached process in a cgroup of its own) puts it back at the timeout unless
    ``wireguard.confirm_checked`` disarms it. A run that changes nothing, a first
    bring-up and a removal arm nothing. With ``confirm`` on, the boot-time unit
    ``wireguard-confirm-restore-<name>.service`` is installed (OpenRC:
    ``/etc/init.d/wireguard-confirm-restore.<name>`` in the ``boot`` runlevel); every
    run also sends the event ``wireguard/confirm/undone`` for an undo not reported yet.

    name
        The interface name.
    """
    return wgf_state.guarded(wgf_state.ret(name), _armed, _minion(), config_dir)


def _armed(ret, minion, config_dir):
    interface, host = ret["name"], minion.host
    config_dir = minion.config_dir(config_dir)
    iface, confirm = _setting(minion, interface, config_dir)
    notes = []
    if not minion.test:
        sent = wgf_confirm_run.report(host)
        if sent:
            notes.append(f"reported {len(sent)} earlier undo(s) ({wgf_confirm.EVENT_UNDONE})")
    if confirm is not None:
        service = minion.salt["wireguard.service_name"](interface)
        _boot_unit(
            minion,
            ret,
            interface,
            wgf_layout.Layout(config_dir, service).backend_unit(interface, iface.get("backend")),
        )
    changes = wgf_confirm.Changes(running=False)
    if confirm is not None:
        interfaces = list(
            minion.salt["wireguard.pillar_interfaces"](config_dir=config_dir).values()
        )
        backend = minion.salt["wireguard.pillar_settings"]()["firewall"]
        firewall = bool(wgf_plan.firewall(host, interfaces, backend))
        changes = wgf_plan.changes(minion, interface, config_dir, firewall)
    decision = wgf_confirm.decide(interface, changes, confirm)
    warnings = wgf_confirm.blind_spots(interface, changes, confirm)
    if warnings:
        ret["warnings"] = warnings
    if not decision.arm:
        ret["comment"] = "; ".join([decision.reason, *notes])
        return minion.pending(ret, ret["comment"]) if ret["changes"] else ret
    ret["changes"]["confirm"] = {
        "old": None,
        "new": {"timeout": confirm.timeout, "probes": [str(p) for p in confirm.probes]},
    }
    if minion.test:
        return minion.pending(ret, wgf_confirm.test_comment(interface, decision))
    layout = wgf_layout.Layout(config_dir, minion.salt["wireguard.service_name"](interface))
    done = wgf_confirm_run.arm(minion, iface, confirm, layout, backend)
    return minion.pending(ret, "; ".join([f"{decision.reason}: {done}", *notes]))


def _init(minion):
    """The init that runs the undo: the pillar check refused ``confirm`` on any other."""
    return "systemd" if minion.host.has_systemd() else "openrc"


def _boot_unit(minion, ret, interface, service):
    """The boot-time unit of ``interface`` is installed and enabled (systemd), or its
    init script is in the ``boot`` runlevel (OpenRC)."""
    init = _init(minion)
    path = wgf_layout.confirm_restore_path(interface, init)
    if init == "systemd":
        text = wgf_confirm_undo.restore_unit_text(interface, service)
    else:
        text = wgf_confirm_undo.restore_script_text(interface, service)
    if wgf_files.read(path) == text:
        return
    ret["changes"]["boot_unit"] = {"old": None, "new": path}
    if minion.test:
        return
    unit = wgf_confirm.restore_unit(interface, init)
    if init == "systemd":
        minion.host.install_unit(path, text, unit)
    else:
        minion.host.install_init_script(unit, text, "boot")


def confirm_checked(name, config_dir=None):
    """
    After the run's changes: when an undo of interface ``name`` is armed, its probes are
    tried again until each answers or the deadline (the timeout, less 2 s) comes. All
    answered (a probe that did not answer before the change is not applicable): the
    undo is disarmed and the recorded state deleted (``wg0: confirmed in 3 s``). One did
    not: the change is undone now (file, live interface, peers, firewall) and the state
    fails, naming it (``wg0: change undone: master 10.0.0.1:4506 did not answer within
    30 s``). Under the rollout's pillar ``wireguard_rollout: {hold: <seconds>}`` a
    confirmed change stays armed for ``hold`` seconds, until ``wireguard.confirm_accept``
    or ``wireguard.confirm_undo``.

    name
        The interface name.
    """
    return wgf_state.guarded(wgf_state.ret(name), _checked, _minion(), config_dir, waits=True)


def _checked(ret, minion, config_dir):
    interface = ret["name"]
    config_dir = minion.config_dir(config_dir)
    # unmasked: Salt 3008 masks what pillar.get returns (the lab saw '**********')
    hold = wgf_confirm_run.check_hold(
        minion.salt["pillar.get"](f"{wgf_confirm_run.ROLLOUT}:hold", None, unmask=True)
    )
    if minion.test:
        ret["comment"] = f"{interface}: test mode arms nothing, so nothing is checked"
        return ret
    iface, confirm = _setting(minion, interface, config_dir)
    status = wgf_confirm_run.status(interface)
    if confirm is None and status["armed"]:  # turned off while a rollout held it
        confirm = wgf_confirm_run.probes_of(
            {"timeout": wgf_confirm.DEFAULT_TIMEOUT, "probes": status["probes"]}
        )
    if confirm is None:
        ret["comment"] = f"{interface}: confirm is off"
        return ret
    verdict, comment, failed = wgf_confirm_run.check(
        minion, iface or {"name": interface, "peers": {}}, confirm, hold
    )
    ret["comment"] = comment
    if verdict == "none":
        return ret
    ret["changes"]["confirm"] = {"old": "armed", "new": verdict}
    if verdict in ("undone", "undone-by-timer"):
        ret["result"] = False
        if failed:
            ret["changes"]["failed"] = {"old": [], "new": failed}
    return ret


def confirm_absent(name):
    """
    Nothing of interface ``name``'s confirm is left: an undo still armed is disarmed
    (the running state kept), the boot-time unit is disabled and removed, and the
    recorded state deleted.

    name
        The interface name.
    """
    return wgf_state.guarded(wgf_state.ret(name), _absent, _minion())


def _absent(ret, minion):
    interface, host = ret["name"], minion.host
    init = _init(minion)
    path = wgf_layout.confirm_restore_path(interface, init)
    directory = wgf_confirm_run.state_dir(interface)
    if wgf_files.read(path) is not None:
        ret["changes"]["boot_unit"] = {"old": path, "new": None}
    if wgf_confirm_run.status(interface)["armed"]:
        ret["changes"]["confirm"] = {"old": "armed", "new": None}
    if wgf_confirm_run.interfaces().count(interface):
        ret["changes"]["records"] = {"old": directory, "new": None}
    if not ret["changes"]:
        ret["comment"] = f"{interface}: no confirm of its is left"
        return ret
    if minion.test:
        return minion.pending(ret, f"{interface}: its confirm would be removed")
    if "confirm" in ret["changes"]:
        wgf_confirm_run.accept(host, interface)
    if "boot_unit" in ret["changes"]:
        unit = wgf_confirm.restore_unit(interface, init)
        if init == "systemd":
            host.remove_unit(path, unit)
        else:
            host.remove_init_script(unit, "boot")
    host.remove_records(directory)
    return minion.pending(ret, f"{interface}: its confirm removed")


# Last: every state above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals(), wgf_args.state_refused)
