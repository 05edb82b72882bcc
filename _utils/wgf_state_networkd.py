"""``wireguard.config`` on the networkd backend (issue 25): the ``.netdev``/``.network``
files and networkd's key copies (``wgf_networkd``), ``networkctl reload`` after a
change, and a switch between the backends in either direction with one restart.

Over a ``wgf_state.Minion``: every write and command goes through its host adapter.
The running interface is not touched here beyond a switch: the peers and the interface
states change it live (``wg set``, ``ip``), as under wg-quick; the files make
``networkctl reload``, ``networkctl reconfigure <if>`` and a reboot build the same.
"""

import glob
import os

from salt.exceptions import CommandExecutionError

import wgf_addr
import wgf_conf
import wgf_files
import wgf_keys
import wgf_layout
import wgf_live
import wgf_networkd
import wgf_state


def _layout(config_dir):
    return wgf_layout.Layout(config_dir)


def _present(layout, interface):
    """Whether networkd builds ``interface`` now (its ``.netdev`` is there)."""
    return os.path.exists(layout.netdev(interface))


def _key_changes(keys, keys_dir):
    """The key files that differ from ``keys`` (missing, other text, other mode) or
    that are there and not wanted: paths only, never a key."""
    changed = []
    for path, text in keys.items():
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = None
        if mode != 0o640 or wgf_files.read(path) != text:
            changed.append(path)
    if os.path.isdir(keys_dir):
        changed += [
            os.path.join(keys_dir, n)
            for n in sorted(os.listdir(keys_dir))
            if os.path.join(keys_dir, n) not in keys
        ]
    if os.path.isdir(keys_dir) and os.stat(keys_dir).st_mode & 0o7777 != 0o750:
        changed.append(keys_dir)
    return sorted(changed)


def config(ret, minion, config_dir, iface):
    """The state's work for an interface whose ``backend`` is networkd."""
    interface, host = ret["name"], minion.host
    layout = _layout(config_dir)
    wg_quick = minion.salt["wireguard.service_name"](interface)
    conf = layout.conf(interface)
    enabled = iface["enabled"]
    units, keys = {}, {}
    if enabled:
        private_key = minion.private_key_of(iface, config_dir)
        if not wgf_keys.pubkey_or_none(private_key):
            raise CommandExecutionError(
                f"{interface}: no private key in {layout.key(interface)} yet "
                "(wireguard.private_key makes it)"
            )
        psks = {
            **minion.pillar_secrets(iface)["preshared_keys"],
            **wgf_state.client_psks(iface, config_dir),
        }
        units = wgf_networkd.files(iface, layout)
        keys = wgf_networkd.key_files(iface, layout, private_key, psks)
    public = wgf_conf.known_public(pillar=iface)
    diffs = []
    # files networkd has not seen: it learns of the interface at a reload
    unknown = enabled and not os.path.exists(layout.netdev(interface))
    for path in (layout.netdev(interface), layout.network(interface)):
        current, wanted = wgf_files.read(path), units.get(path)
        if current != wanted:
            diffs.append(wgf_conf.masked_diff(path, current, wanted, public))
    if diffs:
        ret["changes"]["diff"] = "".join(diffs)
    keys_dir = layout.networkd_keys(interface)
    changed_keys = _key_changes(keys, keys_dir) if enabled else []
    if not enabled and os.path.isdir(keys_dir):
        changed_keys = [keys_dir]
    dropin = wgf_layout.NETWORKD_CONF_DROPIN
    if enabled and wgf_files.read(dropin) != wgf_networkd.FOREIGN:
        ret["changes"]["networkd.conf"] = {"old": wgf_files.read(dropin), "new": dropin}
        units = {**units, dropin: wgf_networkd.FOREIGN}
    if changed_keys:
        ret["changes"]["key_files"] = {
            "old": sorted(changed_keys) if not enabled else "differ or missing",
            "new": sorted(changed_keys) if enabled else None,
        }
    # wg-quick ran it: stopped and its file removed, enabled or not
    leaving = os.path.exists(conf) or host.service_active(wg_quick)
    switching = enabled and leaving
    networkd_up = host.service_active(wgf_networkd.SERVICE)
    reasons = _restart_reasons(layout, interface, units) if enabled and not switching else []
    if leaving:
        ret["changes"]["backend"] = {"old": wgf_networkd.WG_QUICK, "new": wgf_networkd.NETWORKD}
    if switching:
        ret["changes"]["restarted"] = {
            "service": wgf_networkd.SERVICE,
            "why": (
                f"{interface} switches from wg-quick to networkd: {wg_quick} is stopped "
                f"and disabled, {conf} removed, and networkd builds {interface} from "
                f"{layout.netdev(interface)}"
            ),
        }
    elif enabled and networkd_up and not minion.is_up(interface):
        ret["changes"]["restarted"] = {
            "service": wgf_networkd.SERVICE,
            "why": "its interface is not up: networkd, restarted, builds it from its files",
        }
    elif reasons and networkd_up:
        # networkd does not change a netdev it has: the interface is made again
        ret["changes"]["restarted"] = {"service": wgf_networkd.SERVICE, "why": "; ".join(reasons)}
    elif not enabled and minion.is_up(interface) and (leaving or _present(layout, interface)):
        ret["changes"]["stopped"] = {"old": interface, "new": None}
    if not ret["changes"]:
        ret["comment"] = f"{layout.netdev(interface)} and its .network are as pillar says"
        return ret
    if minion.test:
        return minion.pending(ret, _comment(interface, ret, True))
    rebuilt = switching or bool(reasons and "restarted" in ret["changes"])
    if rebuilt:
        minion.remember_endpoints(interface)
    if leaving:
        minion.forget_live(interface)
        host.stop_service(wg_quick)  # wg-quick down: the interface goes with it
        host.remove(conf)
        dropin = wgf_layout.dropin_path(interface)
        if os.path.exists(dropin):
            host.remove(dropin)
    if reasons and "restarted" in ret["changes"]:
        minion.forget_live(interface)
        host.delete_link(interface)  # the reload below builds it from the new files
    if enabled:
        host.write_networkd(units, keys, keys_dir, wgf_networkd.GROUP)
    else:
        for path in (layout.netdev(interface), layout.network(interface), keys_dir):
            host.remove_tree(path)
        _forget_foreign(host)
    # a reload has networkd set every WireGuard netdev it has again, replacing its
    # peers (their sessions go: packets are lost until the next handshake): only where
    # networkd must act, to build, learn of or forget the interface. What the live
    # engine applies to a running interface needs none; networkd reads the files when
    # it next builds the interface or reloads (docs/networkd.md).
    if networkd_up and "restarted" in ret["changes"] and not switching:
        # a netdev networkd knew and no longer finds: it builds it again only when it
        # starts (systemd before 257 ignores it at a reload; systemd issue 34907)
        host.restart_service(wgf_networkd.SERVICE)
    elif networkd_up and (unknown or not enabled or set(ret["changes"]) & _RELOAD_FOR):
        host.networkctl("reload")
    if "stopped" in ret["changes"] and not leaving:
        minion.forget_live(interface)
        host.delete_link(interface)  # networkd keeps a netdev whose file is gone
    if rebuilt and networkd_up:
        _carry_endpoints(minion, interface)
    return minion.pending(ret, _comment(interface, ret, False))


#: How long a run waits for networkd to build an interface whose peers' endpoints it
#: carries over, in tenths of a second.
BUILD_WAIT_TENTHS = 100


def _carry_endpoints(minion, interface):
    """Once networkd has built the interface and set its peers, give them the endpoints
    they had (``Minion.carry_endpoints``)."""
    host = minion.host
    for _ in range(BUILD_WAIT_TENTHS):
        live = minion.live_or_none(interface)
        if live is not None and live.get("peers"):
            break
        host.sleep(0.1)
    else:
        return
    host.sleep(0.3)  # networkd may set a long list of peers in several messages
    minion.carry_endpoints(interface)


#: The changes that only a reload brings about: networkd builds the interface, or
#: forgets it (its files are gone).
_RELOAD_FOR = {"backend", "restarted", "stopped"}


def _forget_foreign(host):
    """networkd's drop-in (``wgf_networkd.FOREIGN``) goes with the last interface it
    builds for the formula; networkd reads it at its next start."""
    netdevs = glob.glob(f"{wgf_layout.NETWORK_DIR}/*-wireguard-*.netdev")
    if not netdevs and os.path.exists(wgf_layout.NETWORKD_CONF_DROPIN):
        host.remove(wgf_layout.NETWORKD_CONF_DROPIN)


def _restart_reasons(layout, interface, units):
    """What changed between networkd's files and ``units`` that only making the
    interface again applies (its table, its default-route setup: ``wgf_live``'s rule)."""
    netdev = wgf_files.read(layout.netdev(interface))
    if netdev is None:
        return []
    old = wgf_networkd.as_conf(netdev, wgf_files.read(layout.network(interface)), None)
    new = wgf_networkd.as_conf(
        units[layout.netdev(interface)], units[layout.network(interface)], None
    )
    return [r.replace("wg-quick", "networkd") for r in wgf_live.restart_reasons(old, new)]


def _comment(interface, ret, test):
    would = "would be" if test else "was"
    parts = [f"{interface}: networkd's files {would} brought to what pillar says"]
    if "backend" in ret["changes"] and "restarted" in ret["changes"]:
        parts.append(f"{interface} {would} switched from wg-quick to networkd (one restart)")
    elif "backend" in ret["changes"]:
        parts.append(f"wg-quick {would} stopped from running {interface}")
    elif "restarted" in ret["changes"]:
        parts.append(f"networkd {would} reloaded: {ret['changes']['restarted']['why']}")
    if "stopped" in ret["changes"]:
        parts.append(f"{interface} {would} removed (enabled: false)")
    return "; ".join(parts)


def leave(ret, minion, config_dir):
    """An interface on wg-quick whose networkd files are still there (it was switched
    back): the files and key copies go, networkd forgets them and the netdev is
    deleted, so the service state starts wg-quick on a free name (one restart).
    ``changes`` says so; in test mode only that."""
    interface, host = ret["name"], minion.host
    layout = _layout(config_dir)
    if not _present(layout, interface):
        return
    ret["changes"]["backend"] = {"old": wgf_networkd.NETWORKD, "new": wgf_networkd.WG_QUICK}
    ret["changes"]["restarted"] = {
        "service": minion.salt["wireguard.service_name"](interface),
        "why": (
            f"{interface} switches from networkd to wg-quick: networkd's files are "
            f"removed and {interface} is built again by wg-quick"
        ),
    }
    if minion.test:
        return
    minion.remember_endpoints(interface)  # for wg-quick's interface (wireguard.interface)
    for path in (layout.netdev(interface), layout.network(interface)):
        host.remove(path)
    host.remove_tree(layout.networkd_keys(interface))
    _forget_foreign(host)
    if host.service_active(wgf_networkd.SERVICE):
        host.networkctl("reload")
    if minion.is_up(interface):
        minion.forget_live(interface)
        host.delete_link(interface)


def absent(ret, minion, config_dir):
    """``wireguard.networkd_absent``: networkd's files of the interface removed, networkd
    reloaded, and the interface deleted when networkd built it (its ``.netdev`` was
    there)."""
    interface, host = ret["name"], minion.host
    wgf_addr.check_interface_name(interface)  # it names paths that are removed
    layout = _layout(config_dir)
    paths = [
        p
        for p in (
            layout.netdev(interface),
            layout.network(interface),
            layout.networkd_keys(interface),
        )
        if os.path.lexists(p)
    ]
    if not paths:
        ret["comment"] = f"networkd has no file of {interface}"
        return ret
    built = _present(layout, interface) and minion.is_up(interface)
    ret["changes"]["removed"] = {"old": paths, "new": None}
    if built:
        ret["changes"]["stopped"] = {"old": interface, "new": None}
    if minion.test:
        return minion.pending(ret, f"networkd's files of {interface} would be removed")
    for path in paths:
        host.remove_tree(path)
    _forget_foreign(host)
    if host.service_active(wgf_networkd.SERVICE):
        host.networkctl("reload")
    if built:
        minion.forget_live(interface)
        host.delete_link(interface)
    return minion.pending(ret, f"networkd's files of {interface} were removed")
