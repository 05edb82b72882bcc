"""
The ``wireguard`` execution module's diagnostics: ``check`` (what is wrong and how to
fix it), ``link_states`` (the staleness rule per live peer) and ``reresolve`` (live
endpoints set again from the names in the config files).

One of the files Salt loads as ``wireguard`` (see ``wireguard.py``). The commands run
through the host adapter (``wgf_host.Host``); what is judged is ``wgf_health``.
"""

import importlib
import os
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_args
import wgf_conf
import wgf_files
import wgf_findings
import wgf_health
import wgf_host
import wgf_iproute
import wgf_keys
import wgf_layout
import wgf_networkd
import wgf_reload
import wgf_reresolve
import wgf_staleness

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return wgf_keys.module_virtual(__virtualname__)


#: ``wg`` runs through the one place that hides keys and masks its errors.
_wg = wgf_host.wg


# --------------------------------------------------------------- diagnostics


def _live_interface_routes(host, interface):
    """The destinations of every unicast route through ``interface``, in any table."""
    found = set()
    for family in ("-4", "-6"):
        found |= wgf_iproute.unicast_destinations(
            host.ip_json([family, "route", "show", "table", "all", "dev", interface]), family
        )
    return sorted(found, key=wgf_addr.cidr_sort_key)


def _underlay(host, addresses, fwmark=None):
    """Where packets to each peer endpoint address go: ``{address: {"dev", "mtu",
    "dev_mtu", "error"}}``, from one batch of route lookups that carry the fwmark, as
    WireGuard's own packets do (``Host.endpoint_routes``), and the links' MTUs."""
    try:
        routes = host.endpoint_routes(addresses, fwmark)
        mtus = host.link_mtus() if routes else {}
    except (CommandExecutionError, ValueError) as exc:
        routes, mtus, error = {}, {}, str(exc)
    else:
        error = None
    found = {}
    for address in map(str, addresses):
        route = routes.get(address)
        if route is None:
            why = error or f"ip route get {address}: no route"
            found[address] = {"dev": None, "mtu": None, "dev_mtu": None, "error": why}
            continue
        found[address] = {
            "dev": route.get("dev"),
            "mtu": wgf_iproute.route_mtu(route),
            "dev_mtu": mtus.get(route.get("dev")),
            "error": None,
        }
    return found


def _forwarding():
    """``{"ipv4": bool, "ipv6": bool}`` from /proc/sys (None where unreadable)."""
    values = {}
    for family, path in (
        ("ipv4", "/proc/sys/net/ipv4/ip_forward"),
        ("ipv6", "/proc/sys/net/ipv6/conf/all/forwarding"),
    ):
        try:
            with open(path, encoding="ascii") as handle:
                values[family] = handle.read().strip() == "1"
        except OSError:
            values[family] = None
    return values


def _file_mode(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return {"path": path, "mode": stat.st_mode & 0o7777, "uid": stat.st_uid, "mtime": stat.st_mtime}


def _resolve_all(endpoints):
    """``{endpoint: {"addresses": [ip:port], "error": None or text}}``."""
    resolved = {}
    for endpoint in endpoints:
        if endpoint in resolved:
            continue
        try:
            addresses = __salt__["wireguard.resolve_endpoint"](endpoint)
            resolved[endpoint] = {"addresses": addresses, "error": None}
        except (CommandExecutionError, SaltInvocationError) as exc:
            resolved[endpoint] = {"addresses": [], "error": str(exc)}
    return resolved


def _gather(host, name, directory, pillar_iface, live, forwarding):
    """Everything the checks look at for one interface, as plain data."""
    layout = wgf_layout.Layout(directory)
    # wg-quick's conf, or networkd's .netdev and .network (issue 25)
    path, conf, text, conf_error = wgf_networkd.read_config(layout, name)
    networkd = path == layout.netdev(name)
    key_path = layout.key(name)
    key = wgf_files.read_key(key_path)
    data = {
        "name": name,
        "config_path": path,
        "conf": conf,
        "conf_error": conf_error,
        "modes": {
            "conf": None if networkd else _file_mode(path),  # networkd's are 0644
            "key": _file_mode(key_path),
            "dir": _file_mode(directory),
        },
        "key_file_public": (wgf_keys.pubkey_or_none(key) or "invalid") if key else None,
        "pillar": pillar_iface,
        "rendered": None,
        "conf_masked": None,
        "live": live,
        "samples": None,
        "link": None,
        "routes": None,
        "underlay": {},
        "resolved": {},
        "forwarding": forwarding,
        "service": wgf_networkd.SERVICE if networkd else __salt__["wireguard.service_name"](name),
        "init": __grains__.get("init"),
        "now": time.time(),
    }
    public = wgf_conf.known_public(
        [conf or {}], pillar=pillar_iface, live=live, own=[data["key_file_public"]]
    )
    if text is not None:
        data["conf_masked"] = wgf_conf.mask(text, public)
    if pillar_iface and not pillar_iface["absent"]:
        rendered = (
            "".join(wgf_networkd.files(pillar_iface, layout).values())
            if networkd
            else wgf_conf.render(pillar_iface)
        )
        data["rendered"] = wgf_conf.mask(rendered, public)
    data["resolved"] = _resolve_all(wgf_health.endpoints(conf, pillar_iface))
    if live is not None:
        data["link"] = wgf_iproute.link(host.ip_json(["addr", "show", "dev", name]))
        data["routes"] = _live_interface_routes(host, name)
        addresses = []
        for peer in live["peers"].values():
            address = wgf_addr.endpoint_ip(peer["endpoint"])[0]
            if address is not None and address not in addresses:
                addresses.append(address)
        data["underlay"] = _underlay(host, addresses[: wgf_health.MTU_PROBES], live["fwmark"])
    return data


#: check: (its message from the exception, its fix), for what ``check`` reads first.
_UNREADABLE = {
    "pillar": (
        lambda exc: str(exc).replace("\n", " "),
        "Correct pillar wireguard as the message says.",
    ),
    "live": (
        "The live interfaces cannot be read: {}".format,
        "Install wireguard-tools (wg) and run this as root.",
    ),
}


def _or_problem(problems, check, refused, read):
    """``read()``; ``{}`` when it raises ``refused``, and then an error in ``problems``:
    ``check`` goes on without what cannot be read, and says why."""
    try:
        return read()
    except refused as exc:
        message, fix = _UNREADABLE[check]
        problems.append(wgf_findings.problem("error", check, message(exc), fix))
        return {}


def _config_files(directory):
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    return [
        entry[:-5]
        for entry in entries
        if entry.endswith(".conf") and wgf_addr.is_interface_name(entry[:-5])
    ]


def check(
    interface=None,
    config_dir=None,
    stale_after=wgf_staleness.STALE_AFTER,
    sample=wgf_staleness.SAMPLE,
):
    """
    Diagnose this minion's WireGuard interfaces (all of them, or one) and say how to
    fix each problem found. It checks:

    - drift between ``<config_dir>/<if>.conf`` and the live interface (key, port,
      fwmark, MTU, addresses from ``ip -j addr``, peers and their attributes), and
      between the file and what pillar renders;
    - modes of the config and key files (readable by group or others is an error);
    - peers that never completed a handshake although traffic was sent, and stale
      ones: no handshake for over ``stale_after`` seconds while traffic is sent and
      nothing comes back (the rule the audit and the beacon use too);
    - AllowedIPs given to two peers, or nested inside another peer's;
    - an MTU above what the path to a peer's endpoint carries minus WireGuard's
      overhead (60 bytes over IPv4, 80 over IPv6);
    - routes of pillar (or of the file) missing live, AllowedIPs that nothing routes
      into the interface, forwarding wanted but off;
    - endpoints that do not resolve.

    Returns ``{"interfaces": {if: {"problems": [...], "ok": bool, "facts": {...}}},
    "problems": [...], "ok": bool, "summary": text}``. Each problem is ``{"severity":
    error|warning|info, "check", "peer" (public key or None), "message", "fix"}``;
    ``ok`` is false when there is an error or a warning. ``facts`` hold what the
    audit runner compares between minions: public key, listen port, addresses,
    forwarding, the service, the peers of the config file and each live peer's
    ``link_states``. No private or preshared key is returned.

    interface
        Check only this interface.
    stale_after
        Seconds without a handshake after which a peer that is sent traffic is stale
        (default 180).
    sample
        Seconds to watch the transfer counters of peers without a recent handshake,
        to tell a stale peer (traffic sent) from an idle one; 0 skips it (peers with
        a persistent keepalive are always sent traffic).

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.check
        salt 'gw*' wireguard.check wg0 --out=json
        salt-call wireguard.check sample=0 --out=txt
    """
    if interface is not None:
        wgf_addr.check_interface_name(interface)
    stale_after = wgf_addr.integer(stale_after, "stale_after", 1, 2**31, "stale_after")
    sample = wgf_addr.seconds(sample, "sample", 60)
    directory = __salt__["wireguard_layout.config_dir"](config_dir)
    problems = []
    declared = _or_problem(
        problems,
        "pillar",
        SaltInvocationError,
        lambda: __salt__["wireguard.pillar_interfaces"](config_dir=directory),
    )
    live = _or_problem(problems, "live", CommandExecutionError, __salt__["wireguard.show"])
    if interface is not None:
        names = [interface]
    else:
        names = sorted(
            set(live)
            | set(_config_files(directory))
            | {n for n, i in declared.items() if not i["absent"]}
        )
    forwarding = _forwarding()
    host = wgf_host.Host(__salt__)
    gathered = {}
    for name in names:
        data = _gather(host, name, directory, declared.get(name), live.get(name), forwarding)
        if (
            interface is not None
            and data["conf"] is None
            and data["live"] is None
            and data["pillar"] is None
            and not data["conf_error"]
        ):
            raise CommandExecutionError(
                f"interface '{name}' has no {data['config_path']}, is not in pillar and is not up"
            )
        gathered[name] = data
    _sample_transfer(gathered, stale_after, sample)
    return wgf_health.report(gathered, problems, stale_after)


def _sample_transfer(gathered, stale_after, sample):
    """Watch the transfer counters for ``sample`` seconds, for the peers whose
    handshake is missing or old."""
    if not sample:
        return
    wanted = [
        name
        for name, data in gathered.items()
        if wgf_staleness.worth_sampling(data["live"], stale_after)
    ]
    if not wanted:
        return
    time.sleep(sample)
    try:
        later = __salt__["wireguard.show"]()
    except CommandExecutionError:
        return
    for name in wanted:
        before = gathered[name]["live"]["peers"]
        after = (later.get(name) or {}).get("peers", {})
        gathered[name]["samples"] = {
            key: wgf_staleness.sample(before[key], peer)
            for key, peer in after.items()
            if key in before
        }


def link_states(interface=None, stale_after=wgf_staleness.STALE_AFTER, since=None):
    """
    Judge the link to every live peer with the rule ``check`` and the audit use:
    ``up``, ``idle``, ``stale``, ``never`` (no handshake although traffic was sent) or
    ``new``. Given ``since`` (an earlier return of this function, at most
    ``max(stale_after, 60)`` seconds old), the counters' growth since then is the
    sample; the beacon calls it that way.

    Returns ``{"at": epoch seconds, "stale_after", "interfaces": {if: {public key: {"state",
    "latest_handshake", "age", "endpoint", "tx_bytes", "rx_bytes"}}}}``.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.link_states
        salt '*' wireguard.link_states wg0 stale_after=300
    """
    stale_after = wgf_addr.integer(stale_after, "stale_after", 1, 2**31, "stale_after")
    live = __salt__["wireguard.show"](interface)
    return wgf_staleness.link_states(live, time.time(), stale_after, since)


# ------------------------------------------------------------------ reresolve


def reresolve(interface=None, peer=None, config_dir=None, test=False, **kwargs):
    """
    Set the endpoint of live peers again from the host name their config file gives
    (``Endpoint = host:port`` in ``<config_dir>/<if>.conf``): the name is resolved now
    and, when the live endpoint is not among its addresses, set with
    ``wg set <if> peer <key> endpoint <address>:<port>``. WireGuard resolves a name only
    when the endpoint is set, so a peer behind dynamic DNS that moved is found again
    this way. Peers whose endpoint is an address are left alone.

    Returns ``{interface: {peer name or key: {"public_key", "endpoint", "old", "new",
    "result": changed|unchanged|would change|failed|skipped, "comment"}}}``; a peer
    asked for by ``peer`` whose endpoint is an address (or that is not live) is
    ``skipped``, with the reason.

    interface
        Only this interface (default: every live interface with a config file).
    peer
        Only this peer: its name (the comment above it in the file) or public key.
    test
        Report what would change, change nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.reresolve
        salt 'site-a' wireguard.reresolve wg0 peer=hub
    """
    peer = wgf_keys.arguments(
        "reresolve",
        {"interface": interface, "peer": peer, "config_dir": config_dir, "test": test},
        kwargs,
        ["peer"],
    )["peer"]
    if interface is not None:
        wgf_addr.check_interface_name(interface)
    live = __salt__["wireguard.show"]()
    names = [interface] if interface else sorted(live)
    result = {}
    for name in names:
        if name not in live:
            raise CommandExecutionError(f"WireGuard interface '{name}' is not up")
        directory = __salt__["wireguard_layout.config_dir"](config_dir)
        path, conf, _, error = wgf_networkd.read_config(wgf_layout.Layout(directory), name)
        if error or conf is None:
            if interface is not None:
                raise CommandExecutionError(error or f"{path} does not exist")
            continue
        result[name] = wgf_reresolve.reresolve_interface(
            name,
            conf,
            live[name],
            peer,
            test,
            __salt__["wireguard.resolve_endpoint"],
            _wg,
        )
    if peer is not None and not any(result.values()):
        raise CommandExecutionError(
            f"no peer {wgf_addr.shown(peer)} in the config of {interface or 'any live interface'}"
        )
    return result


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
