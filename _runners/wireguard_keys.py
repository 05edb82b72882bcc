"""
Rotate the keys of the mine-driven networks: the preshared keys of each pair, made and
stored on the master, and each node's private key, made on the minion.

:depends: the formula's ``wireguard`` execution module and its ``wireguard_rotate``
    steps on the minions, its ext_pillar on the master (``saltutil.sync_all``)

Salt loads this file and ``_runners/wireguard.py`` as one runner, ``wireguard``: here
live ``wireguard.rotate_psks``, ``wireguard.ensure_psks`` and ``wireguard.rotate_keys``.
Which networks a minion belongs to comes from the pillar the master compiles itself for
it, never from a minion's answer; what the minions answer is checked by the plain
functions of ``_utils/wgf_rotate.py`` and ``_utils/wgf_psk.py``.
"""

import importlib
import logging

import salt.cache
import salt.fileserver
import salt.pillar
import salt.utils.minions
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_jobs
import wgf_modules
import wgf_networks
import wgf_psk
import wgf_reload
import wgf_rotate

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"


def __virtual__():
    return __virtualname__


def _targets(tgt, tgt_type):
    return sorted(salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)["minions"])


def _master_pillar(minion):
    """The pillar the master compiles itself for ``minion`` (its top file and pillar
    sources, with the grains it cached), as ``salt-run pillar.show_pillar`` does: never
    a minion's answer, never a minion's ``pillar_override``."""
    _, grains, _ = salt.utils.minions.get_minion_data(minion, __opts__)
    compiler = salt.pillar.Pillar(
        __opts__,
        grains if isinstance(grains, dict) else {},
        minion,
        __opts__.get("saltenv") or "base",
        pillarenv=__opts__.get("pillarenv"),
    )
    try:
        pillar = compiler.compile_pillar()
    finally:
        if hasattr(compiler, "destroy"):
            compiler.destroy()
    if not isinstance(pillar, dict) or pillar.get("_errors"):
        raise SaltInvocationError(
            f"the master cannot compile the pillar of minion "
            f"{wgf_addr.shown(minion)}; see salt-run "
            "pillar.show_pillar"
        )
    return pillar


def _master_pillars(minions, broken=None):
    """``{minion: the pillar the master compiles for it}``. With a list ``broken``, a
    minion whose pillar does not compile is added to it and left out."""
    pillars = {}
    for minion in minions:
        try:
            pillars[minion] = _master_pillar(minion)
        except SaltInvocationError:
            if broken is None:
                raise
            broken.append(minion)
    return pillars


def _master_networks(minions, only=None, broken=None):
    """``wgf_networks.declared`` of the master's own pillar of each of ``minions``."""
    return wgf_networks.declared(_master_pillars(minions, broken), only)


def _network_definition(network, tgt, tgt_type):
    """The one definition of ``network`` the master's pillar gives the targeted
    minions."""
    networks, _ = _master_networks(_targets(tgt, tgt_type), only={network})
    if network not in networks:
        raise SaltInvocationError(
            f"no targeted minion has network "
            f"{wgf_rotate.shown_arg(network)} in its pillar "
            "wireguard:networks"
        )
    return networks[network]


def _apply_on(minions, timeout):
    """Refresh pillar and apply the formula on ``minions`` in one job; per minion a
    summary without state output (no key can pass through it), and who did not answer."""
    timeout = timeout or 300
    returned = wgf_jobs.ask(
        __opts__,
        minions,
        ["saltutil.refresh_pillar", "state.apply"],
        [[{"__kwarg__": True, **wgf_jobs.REFRESH_WAITS}], ["wireguard"]],
        timeout=timeout + wgf_jobs.REFRESH_WAITS["timeout"],
    )
    results = {}
    for minion, ret in returned.items():
        states = ret.get("state.apply") if isinstance(ret, dict) else None
        if not isinstance(states, dict):
            results[minion] = {"result": False, "error": str(states)[:500]}
            continue
        failed = sorted(
            sid for sid, r in states.items() if not (isinstance(r, dict) and r.get("result"))
        )
        results[minion] = {
            "result": not failed,
            "failed": failed,
            "changed": sorted(
                sid for sid, r in states.items() if isinstance(r, dict) and r.get("changes")
            ),
        }
    return results, sorted(set(minions) - set(returned))


def rotate_psks(network, tgt="*", tgt_type="glob", timeout=None):
    """
    Give every pair of ``network`` (which sets ``preshared_keys: true``) a new preshared
    key, and apply it on both ends of every pair in one job.

    The keys are made here on the master from fresh randomness and kept in its store
    (``<cachedir>/wireguard/psks.json``); the minions get them through the formula's
    ext_pillar. A session already established stays valid until the next handshake, so
    no packet is lost. The return names the pairs and minions, never a key; its
    ``retcode`` (1 when a minion failed or did not answer) is ``salt-run``'s exit code.

    tgt, tgt_type
        The minions whose pillar defines the network (default: all).
    timeout
        Seconds to wait for the state runs (default 300).

    CLI Example:

    .. code-block:: bash

        salt-run wireguard.rotate_psks network=corp
    """
    network = wgf_rotate.checked_name(network, "network")
    tgt, tgt_type = wgf_rotate.checked_target(tgt, tgt_type)
    timeout = wgf_rotate.checked_timeout(timeout)
    definition = _network_definition(network, tgt, tgt_type)
    pairs = wgf_psk.network_pairs(network, definition)
    if not pairs:
        raise SaltInvocationError(
            f"network {wgf_rotate.shown_arg(network)} does not set preshared_keys: true"
        )
    wgf_psk.replace_network(__opts__["cachedir"], network, pairs)
    minions = sorted({m for p in pairs for m in p})
    results, unreachable = _apply_on(minions, timeout)
    ok = not unreachable and all(r["result"] for r in results.values())
    # salt-run exits with the return's "retcode"; orchestrate reads __context__'s
    if not ok:
        __context__["retcode"] = 1
    return {
        "ok": ok,
        "network": network,
        "pairs": [list(p) for p in pairs],
        "minions": minions,
        "results": results,
        "unreachable": unreachable,
        "retcode": 0 if ok else 1,
    }


def ensure_psks(network=None, tgt="*", tgt_type="glob"):
    """
    Make the missing preshared keys of every network with ``preshared_keys: true`` (or
    only ``network``) that the master's pillar gives the targeted minions: stored keys
    are kept, pairs no longer in a network are forgotten. The orchestration
    (``wireguard.orchestrate``) runs it before it applies the formula; the ext_pillar
    never makes a key. The minions of a network that got a new key refresh their pillar
    (``refreshed``). Returns per network the number of pairs and of keys made, never
    a key, and the minions whose pillar the master cannot compile (``pillar_errors``:
    skipped; their own runs fail on it).

    tgt, tgt_type
        The minions whose pillar (compiled on the master) is read (default: all).

    CLI Example:

    .. code-block:: bash

        salt-run wireguard.ensure_psks
        salt-run wireguard.ensure_psks network=corp
    """
    network = wgf_rotate.checked_name(network, "network", optional=True)
    targeted = _targets(*wgf_rotate.checked_target(tgt, tgt_type))
    broken = []
    pillars = _master_pillars(targeted, broken)
    return _ensure_psks(pillars, targeted, broken, network)


def _ensure_psks(pillars, targeted, broken, network=None):
    """``ensure_psks`` from the master's ``pillars`` of the ``targeted`` minions."""
    networks, _ = wgf_networks.declared(pillars, only=None if network is None else {network})
    if network is not None and network not in networks:
        raise SaltInvocationError(
            f"no targeted minion has network {wgf_rotate.shown_arg(network)} "
            "in its pillar wireguard:networks"
        )
    done, given = {}, set()
    for netname, definition in sorted(networks.items()):
        # a network without preshared keys is not checked here: its keys are forgotten
        pairs = (
            wgf_psk.network_pairs(netname, definition)
            if definition.get("preshared_keys") not in (None, False)
            else []
        )
        made = wgf_psk.ensure_network(__opts__["cachedir"], netname, pairs)
        if pairs:
            done[netname] = {"pairs": len(pairs), "made": made}
        if made:
            given.update(node for pair in pairs for node in pair)
    if broken:
        log.warning("wireguard: the master cannot compile the pillar of %s", ", ".join(broken))
    # the minions' own pillar (what their execution functions read, such as
    # wireguard.check) gets the new keys now, not at their next refresh
    refreshed = sorted(given & set(targeted))
    if refreshed:
        wgf_jobs.ask(
            __opts__,
            refreshed,
            "saltutil.refresh_pillar",
            kwarg=dict(wgf_jobs.REFRESH_WAITS),
            timeout=wgf_jobs.REFRESH_WAITS["timeout"] + 10,
        )
    return {"ok": True, "networks": done, "pillar_errors": broken, "refreshed": refreshed}


def _each(minions, fun, arg, timeout, kwarg=None):
    """``{minion: return}`` of one job on ``minions``, and who did not answer or failed."""
    if not minions:
        return {}, []
    answers = wgf_jobs.ask(
        __opts__, sorted(minions), fun, arg, timeout=timeout, kwarg=kwarg, succeeded=True
    )
    return answers, sorted(set(minions) - set(answers))


def _rotation_networks(targeted):
    """The networks (from the master's pillar) a targeted minion is a node of; every
    other node's pillar that has one of them must define it the same."""
    networks, _ = _master_networks(targeted)
    involved = {
        name: net
        for name, net in networks.items()
        if isinstance(net.get("nodes"), dict) and {str(n) for n in net["nodes"]} & set(targeted)
    }
    others = sorted(
        {str(n) for net in involved.values() for n in net["nodes"]}
        & set(_targets("*", "glob")) - set(targeted)
    )
    more, holders = _master_networks(others, only=set(involved))
    for name, net in more.items():
        if net != involved[name]:
            raise SaltInvocationError(
                f"the master's pillar defines network {wgf_addr.shown(name)} differently "
                f"for {', '.join(sorted(holders[name]))} than for the targets: fix the "
                "pillar and run again"
            )
    return involved


def _published(minions):
    """``{minion: {interface: public key}}`` the master's mine holds (untrusted)."""
    cache = salt.cache.factory(__opts__)
    found = {}
    for minion in minions:
        try:
            data = cache.fetch("mine", minion)
        except Exception:  # the mine only adds checks; no mine, fewer checks
            log.debug("wireguard.rotate_keys: no mine data of %s", minion, exc_info=True)
            data = None
        keys = data.get("wireguard.public_keys") if isinstance(data, dict) else None
        found[minion] = (
            {i: k for i, k in keys.items() if isinstance(i, str)} if isinstance(keys, dict) else {}
        )
    return found


def rotate_keys(tgt, interface=None, tgt_type="glob", timeout=None):
    """
    Give each targeted node of the mine-driven networks a new private key, made on the
    minion, and switch every peer in its networks to the new public key.

    Staged so that traffic to a rotated node stops only between its key switch and its
    partners' AllowedIPs move, which happen in one job (docs/rotation.md: Key rotation): the node
    makes ``<if>.key.next`` and the partners add its public half as an extra peer first;
    then one job switches the node and moves each partner's AllowedIPs; then the mine
    and the files are made consistent with ``mine.update`` and ``state.apply wireguard``.

    A node or partner that does not answer is named and left with its old key, which
    every other node still accepts; running the same command again finishes the job.
    The return's ``retcode`` (1 when one failed) is ``salt-run``'s exit code.

    tgt, tgt_type
        The nodes to give new keys.
    interface
        Only this interface of theirs.
    timeout
        Seconds to wait for a minion's answer in each step (default: the master's).

    CLI Example:

    .. code-block:: bash

        salt-run wireguard.rotate_keys tgt=gw1
        salt-run wireguard.rotate_keys tgt='G@role:vpn' tgt_type=compound interface=wg1
    """
    tgt, tgt_type = wgf_rotate.checked_target(tgt, tgt_type)
    interface = wgf_rotate.checked_name(interface, "interface", optional=True)
    timeout = wgf_rotate.checked_timeout(timeout)
    targeted = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)["minions"]
    if not targeted:
        raise SaltInvocationError(f"target {wgf_rotate.shown_arg(tgt)} matches no minion")
    networks = _rotation_networks(targeted)
    nodes, refused = wgf_rotate.plan(networks, targeted, interface)
    if refused:
        raise SaltInvocationError(wgf_rotate.refusal(refused, interface))
    failed = {}
    answers, silent = _each(
        nodes, "wireguard_rotate.stage", [{m: sorted(i) for m, i in nodes.items()}], timeout
    )
    failed.update({m: "did not answer or failed while staging its next key" for m in silent})
    everyone = {str(n) for net in networks.values() for n in net["nodes"]}
    staged, malformed = wgf_rotate.checked_staged(
        {m: i for m, i in nodes.items() if m in answers}, answers, _published(everyone)
    )
    failed.update({m: f"was not rotated: {why}" for m, why in malformed.items()})
    nodes = {m: i for m, i in nodes.items() if m in staged}
    announce = wgf_rotate.announce_orders(networks, nodes, staged)
    announced, silent = _each(announce, "wireguard_rotate.announce", [announce], timeout)
    failed.update({m: "did not answer or failed while adding the next keys" for m in silent})
    for node in list(nodes):
        partners = {
            p
            for ifname, netname in nodes[node].items()
            for p in wgf_rotate.partner_entries(networks, netname, node)
        }
        if partners & set(silent):
            del nodes[node]  # a partner that does not know the next key would lose it
    orders = wgf_rotate.switch_orders(networks, nodes, staged)
    switched, silent = _each(orders, "wireguard_rotate.switch", [orders], timeout)
    failed.update({m: "did not answer or failed during the switch" for m in silent})
    _each(nodes, "mine.update", [], timeout)
    settled, silent = _each(orders, "state.apply", ["wireguard"], timeout or 300)
    failed.update({m: "did not answer the state run, or a state failed" for m in silent})
    failed.update(
        {
            m: "state.apply wireguard failed"
            for m, states in settled.items()
            if not isinstance(states, dict)
            or not all(isinstance(r, dict) and r.get("result") for r in states.values())
        }
    )
    # salt-run exits with the return's "retcode"; orchestrate reads __context__'s
    if failed:
        __context__["retcode"] = 1
    return {
        "ok": not failed,
        "rotated": {m: sorted(i) for m, i in nodes.items()},
        "partners": sorted(set(orders) - set(nodes)),
        "failed": failed,
        "announced": sorted(announced),
        "switched": sorted(switched),
        "retcode": 1 if failed else 0,
    }


def _master_digest(saltenv):
    """The digest of the formula's modules the master serves (``salt://_modules/...``),
    and the hash type its file server uses."""
    fileserver = salt.fileserver.Fileserver(__opts__)
    hashes, hash_type = {}, wgf_modules.HASH_TYPE
    for path in fileserver.file_list({"saltenv": saltenv}):
        name = wgf_modules.formula_file(path)
        if name is not None:
            found = fileserver.file_hash({"path": path, "saltenv": saltenv}) or {}
            hashes[name] = found.get("hsum")
            hash_type = found.get("hash_type") or hash_type
    return wgf_modules.digest(hashes), hash_type


def _facts(minions, hash_type, timeout):
    answers, _ = _each(minions, "wireguard.orchestration_facts", [hash_type], timeout)
    return {minion: answers.get(minion) for minion in minions}


def prepare(tgt="*", tgt_type="glob", sls="wireguard.config.key", saltenv="base", timeout=None):
    """
    Bring the targeted minions to where the formula can be applied, doing only what is
    missing (the orchestration ``wireguard.orchestrate`` runs it): make the missing
    preshared keys of their networks (as ``wireguard.ensure_psks``); sync the modules of a
    minion whose copy of the formula's modules differs from what the master serves
    (and wait until it has loaded them); make the keys (``state.sls <sls>``) of a
    minion whose pillar (compiled on the master) has an interface without one;
    ``mine.update`` a minion whose public keys the mine does not hold as they are. A
    minion where all of it holds gets one small job (``wireguard.orchestration_facts``:
    its modules' digest and public keys), no sync and no state run. Fails (non-zero
    exit) naming each minion where a step failed. Returns the minions of each step,
    the networks given preshared keys (pairs and keys made, never a key) and the
    minions whose pillar the master cannot compile (``pillar_errors``: their own runs
    fail on it).

    tgt, tgt_type
        The minions (default: all).
    sls
        The keys' SLS (default ``wireguard.config.key``).
    saltenv
        Where the master serves the formula's modules from (default ``base``).
    timeout
        Seconds to wait for the minions' answers (default: the master's ``timeout``).

    CLI Example:

    .. code-block:: bash

        salt-run wireguard.prepare
        salt-run wireguard.prepare tgt='G@role:vpn' tgt_type=compound
    """
    tgt, tgt_type = wgf_rotate.checked_target(tgt, tgt_type)
    sls = wgf_rotate.checked_name(sls, "sls")
    saltenv = wgf_rotate.checked_name(saltenv, "saltenv")
    timeout = wgf_rotate.checked_timeout(timeout)
    targeted = _targets(tgt, tgt_type)
    # one compile of each pillar on the master: its networks' preshared keys, its interfaces
    broken = []
    pillars = _master_pillars(targeted, broken)
    psks = _ensure_psks(pillars, targeted, broken)
    interfaces = {
        minion: wgf_modules.interfaces(pillar, minion, wgf_networks.member_networks)
        for minion, pillar in pillars.items()
    }
    digest, hash_type = _master_digest(saltenv)
    todo = wgf_modules.plan(
        digest, _facts(targeted, hash_type, timeout), _published(targeted), interfaces
    )
    done, failed = {"synced": [], "keyed": [], "published": []}, {}
    if todo["sync"]:
        # the minion loads the synced modules again before the next job, not meanwhile
        # (a refresh is asynchronous by default: a state run at once may find a state
        # module half loaded)
        synced, failed_sync = _each(
            todo["sync"], "saltutil.sync_all", [], timeout, kwarg={"refresh": False}
        )
        failed.update(dict.fromkeys(failed_sync, "saltutil.sync_all"))
        synced, failed_load = _each(
            synced, "saltutil.refresh_modules", [], timeout, kwarg={"async": False}
        )
        failed.update(dict.fromkeys(failed_load, "saltutil.refresh_modules"))
        done["synced"] = sorted(synced)
        # a minion synced from another saltenv may still differ: it is not synced again
        again = wgf_modules.plan(
            digest,
            _facts(done["synced"], hash_type, timeout),
            _published(done["synced"]),
            interfaces,
            synced=True,
        )
        failed.update(dict.fromkeys(again["sync"], "wireguard.orchestration_facts"))
        todo["keys"] += again["keys"]
        todo["publish"] += again["publish"]
    if todo["keys"]:
        keyed, failed_keys = _each(todo["keys"], "state.sls", [sls], timeout)
        failed.update(dict.fromkeys(failed_keys, f"state.sls {sls}"))
        done["keyed"] = sorted(keyed)
        todo["publish"] += done["keyed"]
    if todo["publish"]:
        published, failed_mine = _each(todo["publish"], "mine.update", [], timeout)
        failed.update(dict.fromkeys(failed_mine, "mine.update"))
        done["published"] = sorted(published)
    if failed:
        raise CommandExecutionError(
            "wireguard.prepare failed on "
            + ", ".join(f"{minion} ({step})" for minion, step in sorted(failed.items()))
        )
    done["current"] = sorted(set(targeted) - {m for step in done.values() for m in step})
    return {**done, "preshared_keys": psks["networks"], "pillar_errors": broken}
