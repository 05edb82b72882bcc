"""
The ``wireguard`` execution module's pillar, map data and config files: the interfaces
pillar declares (validated, with the mine's keys), the configs rendered from them, the
public keys the mine publishes and the peers a config file holds.

One of the files Salt loads as ``wireguard`` (see ``wireguard.py``).
"""

import importlib
import logging
import os

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_addr
import wgf_args
import wgf_client_record
import wgf_clients
import wgf_conf
import wgf_files
import wgf_firewall
import wgf_gc
import wgf_iproute
import wgf_keys
import wgf_layout
import wgf_modules
import wgf_networkd
import wgf_pipeline
import wgf_reload

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

log = logging.getLogger(__name__)

__virtualname__ = "wireguard"

#: The mine function that publishes each minion's public keys.
MINE_FUNCTION = "wireguard.public_keys"
#: Where a run keeps the minion's ``wireguard`` pillar and its repr (``_pillar_wireguard``).
PILLAR_MEMO = "wireguard.pillar"
#: Where a run keeps the pillar compiled (``_compiled``).
COMPILED_MEMO = "wireguard.compiled"
#: The formula's map data (parameters/ and pillar ``wireguard:lookup``), rendered.
MAP_DATA = wgf_layout.MAP_DATA


def __virtual__():
    return wgf_keys.module_virtual(__virtualname__)


def _map():
    """The formula's map data for this minion: the state run's (an SLS file rendered
    map.jinja), else rendered once per run; without the formula on the file server, its
    defaults and pillar ``wireguard:lookup``."""
    if "wireguard.map" not in __context__:
        data = __salt__["wireguard_layout.run_map"](wgf_layout.FORMULA_DIR)
        try:
            if data is None and __salt__["cp.hash_file"](MAP_DATA):  # on the file server
                data = __salt__["slsutil.renderer"](
                    MAP_DATA, default_renderer="jinja|json", tpldir=wgf_layout.FORMULA_DIR
                )
        except Exception as exc:  # whatever the file server says: use the defaults
            log.debug("wireguard: no map data from %s: %s", MAP_DATA, exc)
        if not isinstance(data, dict) or not data.get("config_dir"):
            lookup = wgf_layout.read_lookup(__salt__["pillar.get"])
            service = lookup.get("service") if isinstance(lookup.get("service"), dict) else {}
            data = {
                "config_dir": wgf_layout.config_dir(lookup),
                "service": {"name": service.get("name") or wgf_layout.DEFAULT_SERVICE},
            }
        __context__["wireguard.map"] = data
    return __context__["wireguard.map"]


def _config_dir(config_dir=None):
    # not the map: a file server request from the beacon (minion's main process) stalls it
    return __salt__["wireguard_layout.config_dir"](config_dir)


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


def _pillar_wireguard(pillar):
    """``(pillar wireguard, its repr)``: the argument, or the minion's (unmasked: Salt
    3008 masks pillar.get outside renders) as plain dicts and lists, copied and shown
    again only when it no longer equals the copy kept: every state of a run asks, and
    a 10,000-client pillar costs ms to compare but tens of ms to copy and show (issue
    24)."""
    if pillar is not None:
        return pillar, wgf_addr.checked_repr(pillar, "wireguard")
    fresh = __salt__["pillar.get"]("wireguard", {}, unmask=True)
    memo = __context__.get(PILLAR_MEMO)
    if memo is None or memo[0] != fresh:
        plain = wgf_pipeline.copied(fresh)
        memo = (plain, wgf_addr.checked_repr(plain, "wireguard"))
        __context__[PILLAR_MEMO] = memo
    return memo


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
    """This minion's interfaces from the pillar pipeline (``wgf_pipeline``): each
    interface's top level is a copy; what is under it (peers, clients: 10,000 of them on
    a hub) is the run's cached value, shared by every SLS file and state that asks and
    never changed by them (a deep copy per call cost seconds a run; issue 24)."""
    return {
        name: dict(iface) for name, iface in _pipeline(pillar, config_dir)["interfaces"].items()
    }


def _compiled(pillar, shown):
    """``wgf_pipeline.compile_pillar`` of ``pillar`` (``shown`` is its repr), once for
    as long as it stays the same: a run that writes a clients record or a key file
    resolves the facts again, not the pillar (``resolve`` copies what it changes)."""
    key = (shown, __opts__["id"])
    memo = __context__.get(COMPILED_MEMO)
    if memo is None or memo[0] != key:
        memo = (key, wgf_pipeline.compile_pillar(pillar, __opts__["id"]))
        __context__[COMPILED_MEMO] = memo
    return memo[1]


def _pipeline(pillar=None, config_dir=None):
    """``{"settings", "interfaces"}`` of ``wgf_pipeline``, fed the minion's facts once
    (the cached value itself: callers copy what they hand out);
    each interface also gets its ``files`` and ``service`` from the layout, so the SLS
    files build no path or unit name themselves. Built with the garbage collector
    paused (``wgf_gc``)."""
    with wgf_gc.paused():
        return _built(pillar, config_dir)


def _built(pillar, config_dir):
    """``_pipeline``'s value: the run's cached one, or built now from the facts."""
    service = _map()["service"]
    layout = wgf_layout.Layout(_config_dir(config_dir), service["name"], service.get("link"))
    pillar, shown = _pillar_wireguard(pillar)
    firewall = wgf_firewall.backend(_map().get("firewall"), bool(salt.utils.path.which("nft")))
    # repr, not sorted JSON: a YAML slip can mix key types sorting cannot compare
    inputs = (layout, firewall, shown)
    files = wgf_client_record.stamp(layout.config_dir)
    now = wgf_clients.utc_now()
    result = wgf_pipeline.cached(__context__, inputs, files, now)  # every SLS and state asks
    if result is None:
        compiled = _compiled(pillar, shown)
        wanted = wgf_pipeline.needs(compiled)
        facts = wgf_pipeline.Facts(
            minion_id=__opts__["id"],
            published_keys=_published_keys(wanted["minions"]),
            own_public_keys={
                name: wgf_keys.pubkey_or_none(wgf_files.read_key(layout.key(name)))
                for name in wanted["key_files"]
            },
            known_tables=wgf_iproute.known_tables(),
            firewall=firewall,
            client_records={
                name: wgf_files.read(layout.clients_record(name))
                for name in wanted["client_records"]
            },
            confirm=wgf_layout.read_lookup(__salt__["pillar.get"]).get("confirm"),
            init=__grains__.get("init"),
            metrics=wgf_layout.read_lookup(__salt__["pillar.get"]).get("metrics"),
            backend=_map().get("backend")
            or wgf_layout.read_lookup(__salt__["pillar.get"]).get("backend"),
            systemd_version=wgf_networkd.systemd_version(__grains__.get("systemd")),
            now=now,
        )
        result = wgf_pipeline.resolve(compiled, facts)
        for name, iface in result["interfaces"].items():
            iface.update(
                files={
                    **layout.files(name),
                    **(layout.networkd_files(name) if iface["backend"] == "networkd" else {}),
                },
                # an absent interface: its wg-quick unit is stopped (networkd's files
                # go by wireguard.networkd_absent; systemd-networkd itself stays)
                service=layout.backend_unit(
                    name, "wg-quick" if iface["absent"] else iface["backend"]
                ),
                service_link=layout.link(name),
                confirm_unit=wgf_layout.confirm_restore_path(name, facts.init),
            )
        result["settings"]["files"] = {"config_dir": layout.config_dir, "marker": layout.marker}
        wgf_pipeline.keep(__context__, inputs, files, result, now)
    return result


def pillar_interfaces(pillar=None, config_dir=None):
    """
    Return the interfaces pillar ``wireguard`` declares, validated and normalised,
    with every default filled in and no secret: ``has_private_key`` and each peer's
    ``has_preshared_key`` say whether pillar holds one. Each interface also names its
    ``files`` (``conf``, ``key``, ``clients_record``, ``clients_dir``; on the networkd
    backend also ``netdev``, ``network`` and ``networkd_keys``), its ``backend``
    (``wg-quick`` or ``networkd``), its ``service`` (networkd: ``systemd-networkd``)
    and, on OpenRC, its ``service_link`` on this minion.

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
    access, or routes a default route with ``table: auto``); ``files``: the
    ``config_dir`` and the ``marker`` that says the formula made it; ``metrics``:
    ``wireguard:lookup:metrics`` checked (``{"textfile", "interval"}``), or None.

    pillar
        The ``wireguard`` pillar to check instead of this minion's.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.pillar_settings
    """
    return wgf_pipeline.copied(_pipeline(pillar)["settings"])


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
        for name, iface in __salt__["wireguard.show"]().items():
            if iface["public_key"]:
                keys.setdefault(name, iface["public_key"])
    return keys


def orchestration_facts(hash_type=wgf_modules.HASH_TYPE):
    """
    Return what ``salt-run wireguard.prepare`` asks of this minion: ``modules``, the
    digest of the formula's modules it runs (its synced ``wireguard*``/``wgf_*`` files,
    hashed with ``hash_type``, as the master's file server hashes them), and
    ``public_keys``, as ``wireguard.public_keys``. The runner reads which interfaces
    it should have from the pillar the master compiles. No private key is returned.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.orchestration_facts
    """
    try:
        hashes = wgf_modules.local_hashes(__opts__["extension_modules"], hash_type)
    except ValueError as exc:
        raise SaltInvocationError(f"hash_type: {exc}") from exc
    return {"modules": wgf_modules.digest(hashes), "public_keys": public_keys()}


def config_peers(interface, config_dir=None):
    """
    Return the peers ``<config_dir>/<interface>.conf`` holds (on the networkd backend:
    its ``.netdev``), keyed by public key:
    ``name`` (the comment the formula writes above each peer), ``endpoint`` as
    written, ``allowed_ips``, ``persistent_keepalive`` and ``has_preshared_key``.
    No key but the public ones is returned.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.config_peers wg0
    """
    wgf_addr.check_interface_name(interface)
    path, conf, _, error = wgf_networkd.read_config(
        wgf_layout.Layout(_config_dir(config_dir)), interface
    )
    if error:
        raise CommandExecutionError(error)
    if conf is None:
        raise CommandExecutionError(f"{path} does not exist")
    return {
        peer["public_key"]: {k: v for k, v in peer.items() if k != "public_key"}
        for peer in conf["peers"]
        if peer["public_key"]
    }


# Last: every public function above checks its arguments by name first (wgf_args.RULES).
wgf_args.guard(globals())
