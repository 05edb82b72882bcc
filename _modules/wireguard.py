"""
Manage WireGuard: keys, live interfaces and peers, and the formula's pillar.

:depends: PyNaCl (keys), ``wg`` from wireguard-tools (live interfaces), the formula's
    ``_utils/wgf_*.py`` (``saltutil.sync_all`` ships them with this module)

This module runs commands and reads pillar, the mine and files; what it decides is
in the utils: ``wgf_keys`` (keys), ``wgf_addr`` (names, endpoints, CIDRs),
``wgf_schema`` and ``wgf_networks`` (the pillar), ``wgf_conf`` (config files),
``wgf_dump`` (``wg show dump``) and ``wgf_health`` (``check``).

No function returns a private or preshared key, and none reaches a command line or
a log line: ``wg`` reads preshared keys from 0600 files in a private directory.
"""

import copy
import importlib
import logging
import os
import socket
import time

import salt.utils.json
import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_args
import wgf_clients
import wgf_conf
import wgf_dump
import wgf_files
import wgf_firewall
import wgf_health
import wgf_host
import wgf_iproute
import wgf_keys
import wgf_layout
import wgf_pipeline
import wgf_reload
import wgf_schema

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"

DEFAULT_CONFIG_DIR = "/etc/wireguard"
DEFAULT_SERVICE = "wg-quick@{interface}"
#: Peers per ``wg set`` call, so the argv stays far below ARG_MAX.
PEERS_PER_CALL = 500
#: The mine function that publishes each minion's public keys.
MINE_FUNCTION = "wireguard.public_keys"
#: The formula's map data (parameters/ and pillar ``wireguard:lookup``), rendered.
MAP_DATA = "salt://wireguard/mapdata.jinja"


def __virtual__():
    # Loads without ``wg``: the key functions need only PyNaCl. Functions that need
    # ``wg`` say so when it is missing.
    if not wgf_keys.HAS_NACL:
        return (False, "The wireguard module needs PyNaCl (python3-nacl / pip install pynacl)")
    return __virtualname__


# --------------------------------------------------------------------------- keys


def genkey():
    """
    Generate a private key, as ``wg genkey`` does: 32 random bytes, clamped, base64.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.genkey
    """
    return wgf_keys.genkey()


def pubkey(private_key=None, **kwargs):
    """
    Return the public key of a private key, as ``wg pubkey`` does.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.pubkey "$(cat /etc/wireguard/wg0.key)"
    """
    return wgf_keys.pubkey(
        wgf_keys.arguments(
            "pubkey", {"private_key": private_key}, kwargs, ["private_key"], ["private_key"]
        )["private_key"]
    )


def genpsk():
    """
    Generate a preshared key, as ``wg genpsk`` does: 32 random bytes, base64.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.genpsk
    """
    return wgf_keys.genpsk()


def key_digest(key=None, **kwargs):
    """
    Return the SHA-256 (hex) of a key, to compare keys without showing them.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.key_digest "$(wg genpsk)"
    """
    return wgf_keys.digest(
        wgf_keys.arguments("key_digest", {"key": key}, kwargs, ["key"], ["key"])["key"]
    )


# ---------------------------------------------------------------- running ``wg``


#: ``wg`` runs through the one place that hides keys and masks its errors.
_wg = wgf_host.wg


def show(interface=None, psk_digests=False):
    """
    Return the live state of all WireGuard interfaces, or of one.

    Per interface: ``public_key``, ``listen_port``, ``fwmark`` and ``peers`` keyed by
    public key, each with ``endpoint``, ``allowed_ips``, ``latest_handshake`` (epoch
    seconds or None), ``latest_handshake_age`` (seconds), ``rx_bytes``, ``tx_bytes``,
    ``persistent_keepalive`` and ``preshared_key`` (True when one is set). No private
    or preshared key is returned; ``psk_digests=True`` adds each preshared key's
    SHA-256 as ``preshared_key_sha256``, so states can compare keys without seeing them.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.show
        salt '*' wireguard.show wg0 --out=json
    """
    if interface is None:
        return wgf_dump.parse(_wg(["show", "all", "dump"]), psk_digests=psk_digests)
    wgf_addr.check_interface_name(interface)
    try:
        text = _wg(["show", interface, "dump"])
    except CommandExecutionError:
        _require_interface(interface)
        raise
    return wgf_dump.parse(text, interface, psk_digests)


def interfaces():
    """
    Return the names of the live WireGuard interfaces.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.interfaces
    """
    return _wg(["show", "interfaces"]).split()


def _require_interface(interface):
    if interface not in interfaces():
        raise CommandExecutionError(
            f"WireGuard interface '{interface}' does not exist on this minion; bring it "
            f"up first ({wgf_health.service_command('start', service_name(interface))})"
        )


# ------------------------------------------------------------------ live peers


def _peer_args(peer, put_key):
    """``wg set`` arguments for one peer change; a preshared key goes into a file."""
    args = ["peer", peer["public_key"]]
    if peer.get("remove"):
        return [*args, "remove"]
    if peer.get("allowed_ips") is not None:
        args += ["allowed-ips", ",".join(peer["allowed_ips"])]
    if peer.get("endpoint"):
        args += ["endpoint", peer["endpoint"]]
    if peer.get("persistent_keepalive") is not None:
        args += ["persistent-keepalive", str(peer["persistent_keepalive"] or "off")]
    if peer.get("preshared_key") is not None:
        # wg: an all-zero key from /dev/null removes it
        args += [
            "preshared-key",
            put_key(peer["preshared_key"]) if peer["preshared_key"] else "/dev/null",
        ]
    return args


def apply_peers(interface, peers=None, remove=None, **kwargs):
    """
    Apply many live peer changes to an interface with as few ``wg set`` calls as
    possible (one per 500 peers). Nothing is changed when any change is invalid.

    peers
        List of dicts with ``public_key`` and any of ``allowed_ips`` (list, replaces
        the peer's list; ``[]`` clears it), ``endpoint``, ``persistent_keepalive``
        (0 turns it off) and ``preshared_key`` (``""`` removes it).

    remove
        List of public keys to remove.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.apply_peers wg0 remove='["3cp0...="]'
    """
    wgf_keys.arguments(
        "apply_peers", {"interface": interface, "peers": peers, "remove": remove}, kwargs, []
    )
    wgf_addr.check_interface_name(interface)
    changes = [wgf_schema.normalise_peer_change(interface, peer) for peer in peers or []]
    changes += [
        wgf_schema.normalise_peer_change(interface, {"public_key": key, "remove": True})
        for key in remove or []
    ]
    if not changes:
        return True
    with wgf_files.key_files() as put_key:
        for start in range(0, len(changes), PEERS_PER_CALL):
            args = ["set", interface]
            for change in changes[start : start + PEERS_PER_CALL]:
                args += _peer_args(change, put_key)
            _wg(args)
    return True


def set_peer(
    interface,
    public_key=None,
    allowed_ips=None,
    endpoint=None,
    persistent_keepalive=None,
    preshared_key=None,
    **kwargs,
):
    """
    Add a peer to a live interface, or change it. Arguments left at None keep the
    peer's current value. The preshared key never appears on a command line.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.set_peer wg0 "3cp0...=" allowed_ips='[10.0.0.2/32]' \\
            endpoint=vpn.example.com:51820 persistent_keepalive=25
    """
    peer = wgf_keys.arguments(
        "set_peer",
        {
            "interface": interface,
            "public_key": public_key,
            "allowed_ips": allowed_ips,
            "endpoint": endpoint,
            "persistent_keepalive": persistent_keepalive,
            "preshared_key": preshared_key,
        },
        kwargs,
        ["public_key", "preshared_key"],
        ["public_key"],
    )
    return apply_peers(peer.pop("interface"), peers=[peer])


def remove_peer(interface, public_key=None, **kwargs):
    """
    Remove a peer from a live interface.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.remove_peer wg0 "3cp0...="
    """
    return apply_peers(
        interface,
        remove=[
            wgf_keys.arguments(
                "remove_peer",
                {"interface": interface, "public_key": public_key},
                kwargs,
                ["public_key"],
                ["public_key"],
            )["public_key"]
        ],
    )


def resolve_endpoint(endpoint):
    """
    Return the ``ip:port`` strings (IPv6 as ``[addr]:port``) an endpoint resolves to,
    the way ``wg`` prints a live endpoint.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.resolve_endpoint vpn.example.com:51820
    """
    host, port = wgf_addr.split_endpoint(wgf_addr.endpoint(endpoint, "endpoint"))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise CommandExecutionError(f"Endpoint '{endpoint}' does not resolve: {exc}") from None
    found = []
    for family, _, _, _, sockaddr in infos:
        text = f"[{sockaddr[0]}]:{port}" if family == socket.AF_INET6 else f"{sockaddr[0]}:{port}"
        if text not in found:
            found.append(text)
    return found


# ------------------------------------------------------ map data, files, pillar


def _map():
    """The formula's map data for this minion, rendered once per run; without the
    formula on the file server, its defaults and pillar ``wireguard:lookup``."""
    if "wireguard.map" not in __context__:
        data = None
        try:
            if __salt__["cp.hash_file"](MAP_DATA):  # the formula is on the file server
                data = __salt__["slsutil.renderer"](
                    MAP_DATA, default_renderer="jinja|json", tpldir=MAP_DATA.split("/")[2]
                )
        except Exception as exc:  # whatever the file server says: use the defaults
            log.debug("wireguard: no map data from %s: %s", MAP_DATA, exc)
        if not isinstance(data, dict) or not data.get("config_dir"):
            lookup = wgf_layout.read_lookup(__salt__["pillar.get"])
            service = lookup.get("service") if isinstance(lookup.get("service"), dict) else {}
            data = {
                "config_dir": wgf_layout.config_dir(lookup),
                "service": {"name": service.get("name") or DEFAULT_SERVICE},
            }
        __context__["wireguard.map"] = data
    return __context__["wireguard.map"]


def _config_dir(config_dir=None):
    # not the map: a file server request from the beacon (minion's main process) stalls it
    return wgf_layout.config_dir(
        wgf_layout.read_lookup(__salt__["pillar.get"]), config_dir if config_dir != "" else None
    )


def is_interface_name(name):
    """
    Whether ``name`` is a valid interface name (wg-quick's rule, 1-15 of a-zA-Z0-9_=+.-,
    without ``+``: iptables reads it as a wildcard).

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.is_interface_name wg0
    """
    return wgf_addr.is_interface_name(name)


def service_name(interface):
    """
    Return the name of the service that runs ``interface`` on this minion (from the
    formula's map data: ``wg-quick@wg0`` on systemd, ``wg-quick.wg0`` on OpenRC).

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.service_name wg0
    """
    wgf_addr.check_interface_name(interface)
    return _map()["service"]["name"].replace("{interface}", interface)


def _key_path(ifname, config_dir=None):
    return os.path.join(_config_dir(config_dir), f"{ifname}.key")


def _pillar_wireguard(pillar):  # unmask: Salt 3008 masks pillar.get outside renders
    return __salt__["pillar.get"]("wireguard", {}, unmask=True) if pillar is None else pillar


def _published_keys(minions):
    """``{minion: {interface: key}}`` from the mine, fetched once per run."""
    cache = __context__.setdefault("wireguard.mine", {})
    wanted = sorted(set(minions) - set(cache))
    if wanted:
        found = __salt__["mine.get"](",".join(wanted), MINE_FUNCTION, tgt_type="list") or {}
        for minion in wanted:
            cache[minion] = found.get(minion)
    return {minion: cache[minion] for minion in minions}


def _validated(pillar=None, config_dir=None):
    """This minion's interfaces from the pillar pipeline (``wgf_pipeline``)."""
    return _pipeline(pillar, config_dir)["interfaces"]


def _pipeline(pillar=None, config_dir=None):
    """``{"settings", "interfaces"}`` of ``wgf_pipeline``, fed the minion's facts once."""
    directory = _config_dir(config_dir)
    pillar = _pillar_wireguard(pillar)
    firewall = wgf_firewall.backend(_map().get("firewall"), bool(salt.utils.path.which("nft")))
    # repr, not sorted JSON: a YAML slip can mix key types sorting cannot compare
    stamp = (
        directory,
        firewall,
        wgf_addr.checked_repr(pillar, "wireguard"),
        wgf_clients.stamp(directory),
    )
    cache = __context__.setdefault("wireguard.validated", {})  # every SLS and state asks
    if stamp not in cache:
        cache.clear()
        compiled = wgf_pipeline.compile_pillar(pillar, __opts__["id"])
        wanted = wgf_pipeline.needs(compiled)
        facts = wgf_pipeline.Facts(
            minion_id=__opts__["id"],
            published_keys=_published_keys(wanted["minions"]),
            own_public_keys={
                name: wgf_keys.pubkey_or_none(
                    wgf_files.read_key(os.path.join(directory, f"{name}.key"))
                )
                for name in wanted["key_files"]
            },
            known_tables=wgf_iproute.known_tables(),
            firewall=firewall,
            client_records={
                name: wgf_files.read(wgf_clients.record_path(directory, name))
                for name in wanted["client_records"]
            },
        )
        cache[stamp] = wgf_pipeline.resolve(compiled, facts)
    return copy.deepcopy(cache[stamp])


def pillar_interfaces(pillar=None, config_dir=None):
    """
    Return the interfaces pillar ``wireguard`` declares, validated and normalised,
    with every default filled in and no secret: ``has_private_key`` and each peer's
    ``has_preshared_key`` say whether pillar holds one.

    Raises an error that lists every problem (naming interface, peer and key) when the
    pillar is bad; the formula calls this while rendering, so a bad pillar fails the
    run before anything changes.

    pillar
        The ``wireguard`` pillar to check instead of this minion's.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.pillar_interfaces
    """
    return _validated(pillar, config_dir)


def pillar_settings(pillar=None):
    """
    Return what pillar ``wireguard`` sets for the whole minion, once, validated with
    the interfaces (a bad pillar raises as ``wireguard.pillar_interfaces`` does):
    ``firewall``, the firewall backend (``nftables``, ``iptables`` or ``none``, from
    ``wireguard:lookup:firewall``), and ``needs``: ``resolvconf`` (an interface sets
    ``dns``) and ``firewall_tools`` (an interface NATs, opens its port, limits
    access, or routes a default route with ``table: auto``).

    pillar
        The ``wireguard`` pillar to check instead of this minion's.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.pillar_settings
    """
    return _pipeline(pillar)["settings"]


def render_config(interface, config_dir=None, pillar=None):
    """
    Return the wg-quick config the formula writes for ``interface`` from pillar, with
    keys shown as ``<hidden>``.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.render_config wg0
    """
    declared = pillar_interfaces(pillar, config_dir)
    if interface not in declared:
        raise SaltInvocationError(
            f"interface {wgf_addr.shown(interface)} is not in pillar wireguard"
        )
    return wgf_conf.render(declared[interface])


def client_config(interface, client, qr=None, path=None, config_dir=None):
    """
    Return the wg-quick config of ``client`` of ``interface`` (pillar ``clients``) to
    import on the device: its address, DNS and private key (a placeholder for a BYO
    client), and this minion as its peer with ``endpoint``.

    **Without path the return holds the client's private key, and Salt's job cache
    keeps every return on the master.** Give ``path``, or run it with ``salt-call`` on
    the minion, to keep the key off the master.

    qr
        ``ansi`` or ``utf8``: return the config as a QR code for a terminal instead;
        ``png`` or ``svg``: an image, written with ``path``.
    path
        A directory on the minion (made 0700; refused when others may enter it):
        ``<client>.conf`` and the QR code are written there 0600, and only their paths
        are returned.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.client_config wg0 phone qr=utf8 --out=newline_values_only
        salt vpn wireguard.client_config wg0 phone qr=png path=/root/wg-clients
    """
    kind = wgf_clients.qr_kind(qr, path)
    directory = _config_dir(config_dir)
    iface = _validated(None, directory).get(interface)
    server_key = wgf_keys.pubkey_or_none(wgf_files.read_key(_key_path(interface, directory)))
    text = wgf_clients.device_config(iface, interface, client, directory, server_key)
    if path:
        return wgf_clients.export(wgf_clients.export_dir(path, directory), client, text, kind)
    return wgf_clients.qr_code(text, kind) if kind else text


def clients(interface=None, config_dir=None):
    """
    List the clients of each interface (or of one), no secret: ``address``, ``public_key``,
    ``byo``, ``preshared_key`` (bool), ``allowed_ips``, and from the live peer ``live``,
    ``endpoint``, ``latest_handshake(_age)``, ``rx_bytes``, ``tx_bytes``.

    CLI Example:

    .. code-block:: bash

        salt vpn wireguard.clients wg0
    """
    declared = _validated(None, _config_dir(config_dir))
    if interface is not None and interface not in declared:
        raise SaltInvocationError(f"interface {wgf_addr.shown(interface)} is not in pillar")
    live = show() if salt.utils.path.which("wg") else {}
    return {
        name: wgf_clients.listing(iface, live.get(name))
        for name, iface in declared.items()
        if iface["clients_managed"] and interface in (None, name)
    }


def route_command(cidr):
    """
    The command that routes ``cidr`` into the interface (``%i``), as PostUp runs it.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.route_command 172.16.1.0/24
    """
    return wgf_conf.route_command(cidr)


def public_keys(config_dir=None):
    """
    Return ``{interface: public key}`` for this minion's WireGuard interfaces: those
    with a key file in the config directory, and any other live one. Meant for the
    mine; no private key leaves the minion.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.public_keys
    """
    directory = _config_dir(config_dir)
    keys = {}
    if os.path.isdir(directory):
        for entry in sorted(os.listdir(directory)):
            name, ext = os.path.splitext(entry)
            if ext != ".key" or not wgf_addr.is_interface_name(name):
                continue
            key = wgf_keys.pubkey_or_none(wgf_files.read_key(os.path.join(directory, entry)))
            if key:
                keys[name] = key
            else:
                log.warning("wireguard: %s holds no valid private key", entry)
    if salt.utils.path.which("wg"):
        for name, iface in show().items():
            if iface["public_key"]:
                keys.setdefault(name, iface["public_key"])
    return keys


def _read_conf(interface, config_dir=None):
    """(path, parsed conf or None, raw text or None, error or None)."""
    path = os.path.join(_config_dir(config_dir), f"{interface}.conf")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return path, None, None, None
    except OSError as exc:
        return path, None, None, f"{path} cannot be read: {exc.strerror}"
    return path, wgf_conf.parse(text), text, None


def config_peers(interface, config_dir=None):
    """
    Return the peers ``<config_dir>/<interface>.conf`` holds, keyed by public key:
    ``name`` (the comment the formula writes above each peer), ``endpoint`` as
    written, ``allowed_ips``, ``persistent_keepalive`` and ``has_preshared_key``.
    No key but the public ones is returned.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.config_peers wg0
    """
    wgf_addr.check_interface_name(interface)
    path, conf, _, error = _read_conf(interface, config_dir)
    if error:
        raise CommandExecutionError(error)
    if conf is None:
        raise CommandExecutionError(f"{path} does not exist")
    return {
        peer["public_key"]: {k: v for k, v in peer.items() if k != "public_key"}
        for peer in conf["peers"]
        if peer["public_key"]
    }


# --------------------------------------------------------------- diagnostics


def _ip_json(args):
    """``ip -j ARGS``, parsed; CommandExecutionError when ip fails."""
    result = __salt__["cmd.run_all"](
        ["ip", "-j", *args], python_shell=False, ignore_retcode=True, output_loglevel="quiet"
    )
    if result["retcode"] != 0:
        raise CommandExecutionError(f"ip {' '.join(args)}: {(result.get('stderr') or '').strip()}")
    try:
        return salt.utils.json.loads(result["stdout"] or "[]")
    except ValueError:
        raise CommandExecutionError(f"ip -j {' '.join(args)} printed no JSON") from None


def _live_interface_routes(interface):
    """The destinations of every unicast route through ``interface``, in any table."""
    found = set()
    for family in ("-4", "-6"):
        found |= wgf_iproute.unicast_destinations(
            _ip_json([family, "route", "show", "table", "all", "dev", interface]), family
        )
    return sorted(found, key=wgf_addr.cidr_sort_key)


def _underlay(address, fwmark=None):
    """Where packets to a peer's endpoint go: ``{"dev", "mtu", "dev_mtu", "error"}``.

    With a fwmark the lookup carries it, as WireGuard's own packets do: a full tunnel
    (wg-quick's fwmark rule) would otherwise send the lookup into the tunnel itself.
    """
    args = ["route", "get", str(address)]
    if fwmark:
        args += ["mark", str(fwmark)]
    try:
        route = (_ip_json(args) or [{}])[0]
        dev = route.get("dev")
        link = _ip_json(["link", "show", "dev", dev]) if dev else []
    except CommandExecutionError as exc:
        return {"dev": None, "mtu": None, "dev_mtu": None, "error": str(exc)}
    return {
        "dev": dev,
        "mtu": wgf_iproute.route_mtu(route),
        "dev_mtu": link[0].get("mtu") if link else None,
        "error": None,
    }


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
            resolved[endpoint] = {"addresses": resolve_endpoint(endpoint), "error": None}
        except (CommandExecutionError, SaltInvocationError) as exc:
            resolved[endpoint] = {"addresses": [], "error": str(exc)}
    return resolved


def _gather(name, directory, pillar_iface, live, forwarding):
    """Everything the checks look at for one interface, as plain data."""
    path, conf, text, conf_error = _read_conf(name, directory)
    key_path = os.path.join(directory, f"{name}.key")
    key = wgf_files.read_key(key_path)
    data = {
        "name": name,
        "config_path": path,
        "conf": conf,
        "conf_error": conf_error,
        "modes": {
            "conf": _file_mode(path),
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
        "service": service_name(name),
        "init": __grains__.get("init"),
        "now": time.time(),
    }
    public = wgf_conf.known_public(
        [conf or {}], pillar=pillar_iface, live=live, own=[data["key_file_public"]]
    )
    if text is not None:
        data["conf_masked"] = wgf_conf.mask(text, public)
    if pillar_iface and not pillar_iface["absent"]:
        data["rendered"] = wgf_conf.mask(wgf_conf.render(pillar_iface), public)
    data["resolved"] = _resolve_all(wgf_health.endpoints(conf, pillar_iface))
    if live is not None:
        data["link"] = wgf_iproute.link(_ip_json(["addr", "show", "dev", name]))
        data["routes"] = _live_interface_routes(name)
        addresses = []
        for peer in live["peers"].values():
            address = wgf_addr.endpoint_ip(peer["endpoint"])[0]
            if address is not None and address not in addresses:
                addresses.append(address)
        for address in addresses[: wgf_health.MTU_PROBES]:
            data["underlay"][str(address)] = _underlay(address, live["fwmark"])
    return data


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
    interface=None, config_dir=None, stale_after=wgf_health.STALE_AFTER, sample=wgf_health.SAMPLE
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
    directory = _config_dir(config_dir)
    result = {"problems": []}
    try:
        declared = _validated(None, directory)
    except SaltInvocationError as exc:
        declared = {}
        result["problems"].append(
            wgf_health.problem(
                "error",
                "pillar",
                str(exc).replace("\n", " "),
                "Correct pillar wireguard as the message says.",
            )
        )
    try:
        live = show()
    except CommandExecutionError as exc:
        live = {}
        result["problems"].append(
            wgf_health.problem(
                "error",
                "live",
                f"The live interfaces cannot be read: {exc}",
                "Install wireguard-tools (wg) and run this as root.",
            )
        )
    if interface is not None:
        names = [interface]
    else:
        names = sorted(
            set(live)
            | set(_config_files(directory))
            | {n for n, i in declared.items() if not i["absent"]}
        )
    forwarding = _forwarding()
    gathered = {}
    for name in names:
        data = _gather(name, directory, declared.get(name), live.get(name), forwarding)
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
    return wgf_health.report(gathered, result["problems"], stale_after)


def _sample_transfer(gathered, stale_after, sample):
    """Watch the transfer counters for ``sample`` seconds, for the peers whose
    handshake is missing or old."""
    if not sample:
        return
    wanted = [
        name
        for name, data in gathered.items()
        if wgf_health.worth_sampling(data["live"], stale_after)
    ]
    if not wanted:
        return
    time.sleep(sample)
    try:
        later = show()
    except CommandExecutionError:
        return
    for name in wanted:
        before = gathered[name]["live"]["peers"]
        after = (later.get(name) or {}).get("peers", {})
        gathered[name]["samples"] = {
            key: wgf_health.sample(before[key], peer)
            for key, peer in after.items()
            if key in before
        }


def link_states(interface=None, stale_after=wgf_health.STALE_AFTER, since=None):
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
    return wgf_health.link_states(show(interface), time.time(), stale_after, since)


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
    live = show()
    names = [interface] if interface else sorted(live)
    result = {}
    for name in names:
        if name not in live:
            raise CommandExecutionError(f"WireGuard interface '{name}' is not up")
        path, conf, _, error = _read_conf(name, config_dir)
        if error or conf is None:
            if interface is not None:
                raise CommandExecutionError(error or f"{path} does not exist")
            continue
        result[name] = wgf_health.reresolve_interface(
            name, conf, live[name], peer, test, resolve_endpoint, _wg
        )
    if peer is not None and not any(result.values()):
        raise CommandExecutionError(
            f"no peer {wgf_addr.shown(peer)} in the config of {interface or 'any live interface'}"
        )
    return result


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
