"""The one-way pillar pipeline: the ``wireguard`` pillar to this minion's interfaces.

Each stage imports only the ones before it::

    leaf checks (wgf_addr, wgf_keys, wgf_options, wgf_firewall, wgf_clients, wgf_hosts,
    wgf_verify)
      -> wgf_schema   (shape and normalisation of one interface)
      -> wgf_networks (networks compiled into interfaces, their preshared keys checked)
      -> this module: ``compile_pillar`` runs both, ``resolve`` checks the result
         against one ``Facts`` value (mine keys, own keys, routing tables, firewall
         backend, client records)

Nothing here reads the minion: the loader asks ``needs`` which mine entries, key files
and client records the compiled pillar wants, gathers them once into ``Facts``, and
passes them in. ``resolve`` returns ``{"settings": {...}, "interfaces": {...}}``: what
is minion-wide once at the top, each interface under its name. Every problem, from any
stage, ends in one ``SaltInvocationError`` that lists them all.
"""

import copy
import dataclasses
import datetime
import marshal

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_client_record
import wgf_clients
import wgf_confirm
import wgf_firewall
import wgf_hosts
import wgf_keys
import wgf_live
import wgf_metrics
import wgf_networkd
import wgf_networks
import wgf_options
import wgf_quota
import wgf_schema
import wgf_verify
from wgf_addr import shown


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the resolver knows of the minion, gathered once by the loader.

    minion_id
        The minion whose pillar this is (the networks it is a node of).
    published_keys
        The mine's answer for the minions ``needs`` names, ``{minion: {interface:
        public key}}`` (untrusted: checked as keys); None leaves peers named by
        ``minion`` unresolved.
    own_public_keys
        ``{interface: public key of its key file, or None}``; a pillar ``private_key``
        takes precedence.
    known_tables
        Routing table names the minion defines, or None to skip that check.
    firewall
        The minion's firewall backend (``wgf_firewall.backend``): nftables, iptables
        or none.
    client_records
        ``{interface: the JSON text of its clients record, or None}``: the allocations
        kept on the minion (``wgf_clients``).
    confirm
        Pillar's ``wireguard:lookup:confirm`` (unchecked), every interface's default.
    init
        The minion's init (grains ``init``): ``confirm`` needs one that can undo without
        salt-minion (``wgf_confirm.check_init``).
    metrics
        Pillar's ``wireguard:lookup:metrics`` (unchecked): the textfile and its interval.
    backend
        Pillar's ``wireguard:lookup:backend`` (checked by ``wgf_layout.check_map``):
        every interface's default backend, ``wg-quick`` or ``networkd``.
    systemd_version
        The minion's systemd version (``wgf_networkd.systemd_version``), or None.
    now
        The time (aware datetime) at which clients' ``expires`` are judged: an expired
        client is no live peer (``wgf_clients.status``). Default: when the facts are made.
    """

    minion_id: str
    published_keys: dict | None = None
    own_public_keys: dict = dataclasses.field(default_factory=dict)
    known_tables: frozenset | set | None = None
    firewall: str = "none"
    client_records: dict = dataclasses.field(default_factory=dict)
    confirm: object = None
    init: str | None = "systemd"
    metrics: object = None
    backend: str | None = None
    systemd_version: int | None = None
    now: datetime.datetime = dataclasses.field(default_factory=wgf_clients.utc_now)


def compile_pillar(pillar, minion_id):
    """The schema and the networks compiler over the ``wireguard`` pillar, with no
    minion facts: ``{"interfaces": {name: normalised}, "raw": {name: pillar
    interface}, "errors": [...]}``. Raises only when the pillar is no mapping."""
    if not isinstance(pillar, dict):
        raise SaltInvocationError(
            f"pillar 'wireguard' must be a mapping, got {type(pillar).__name__}"
        )
    wgf_addr.no_huge_numbers(pillar, "wireguard")  # before anything shows or compares one
    errors = wgf_schema.unknown_keys(pillar, wgf_schema.TOP_KEYS, "wireguard")
    # the assertions' syntax; their names are the runner's (only it sees every minion)
    wgf_verify.check_expect(pillar.get("expect"), errors)
    try:
        raw_interfaces = wgf_schema.mapping(
            pillar.get("interfaces"),
            "wireguard:interfaces",
            "a mapping of interface name to interface",
        )
    except SaltInvocationError as exc:
        errors.append(str(exc))
        raw_interfaces = {}
    psk_paths, hosts_nodes = {}, {}
    from_networks = wgf_networks.interfaces_for(
        pillar.get("networks"),
        minion_id,
        errors,
        pillar.get("network_psks"),
        psk_paths,
        hosts_nodes,
    )
    for ifname in set(from_networks) & set(raw_interfaces):
        errors.append(f"interface {shown(ifname)}: declared under both interfaces and networks")
    raw = {**from_networks, **raw_interfaces}
    interfaces = {}
    for ifname, iface in raw.items():
        try:
            wgf_addr.check_interface_name(ifname)
        except SaltInvocationError as exc:
            errors.append(str(exc))
            continue
        normalised = wgf_schema.normalise_interface(ifname, iface, errors)
        if normalised is None:
            continue
        for pname, peer in normalised["peers"].items():
            if (ifname, pname) in psk_paths:
                peer["preshared_key_pillar"] = psk_paths[(ifname, pname)]
        interfaces[ifname] = normalised
    return {"interfaces": interfaces, "raw": raw, "errors": errors, "hosts_nodes": hosts_nodes}


def needs(compiled):
    """The facts the compiled pillar wants: ``{"minions"}`` whose mine keys name its
    peers (none while the pillar has problems), the interfaces whose ``key_files`` hold
    their private key (pillar gives none), and those whose ``client_records`` count."""
    interfaces = compiled["interfaces"]
    minions = set()
    if not compiled["errors"]:
        minions = {
            peer["minion"]
            for iface in interfaces.values()
            for peer in iface["peers"].values()
            if peer["minion"] and not peer["public_key"] and not peer["absent"]
        }
    return {
        "minions": sorted(minions),
        "key_files": [name for name, iface in interfaces.items() if not iface["has_private_key"]],
        "client_records": [name for name, iface in interfaces.items() if not iface["absent"]],
    }


def copied(data):
    """A deep copy of plain data (dicts, lists, strings, numbers, None): through
    ``marshal``, several times faster than ``copy.deepcopy`` on a 10,000-peer interface
    (issue 24: every SLS file and state asks for the interfaces). Other mappings and
    lists (Salt's YAML renderer makes every pillar mapping an OrderedDict, which
    ``marshal`` refuses) become dicts and lists; anything else is copied through
    ``copy.deepcopy``."""
    try:
        return marshal.loads(marshal.dumps(data))
    except ValueError:  # a type marshal does not take: Salt's pillar has some
        pass
    try:
        return _copied(data)
    except RecursionError:  # a value that holds itself (YAML anchors)
        return copy.deepcopy(data)


_ATOMS = frozenset((str, int, float, bool, type(None), bytes))


def _copied(value):
    if type(value) in _ATOMS:
        return value
    if isinstance(value, dict):
        return {key: _copied(sub) for key, sub in value.items()}
    if isinstance(value, list):
        return [_copied(sub) for sub in value]
    return copy.deepcopy(value)  # anything else as deepcopy does it


def resolve(compiled, facts):
    """The compiled pillar checked against the minion's ``facts``: peers named by
    ``minion`` get their mine keys, clients their addresses, the firewall its rules'
    names. Returns ``{"settings", "interfaces"}`` without any secret
    (``wgf_schema.secrets_of`` finds those), or raises listing every problem."""
    errors = list(compiled["errors"])
    resolve_mine = not errors and facts.published_keys is not None
    interfaces = copied(compiled["interfaces"])
    for ifname, iface in interfaces.items():
        _check_table(iface, facts.known_tables, errors)
        # names for the firewall's rules from before the mine lookup, which leaves out
        # peers without a published key yet
        names = {
            name: [] if peer["absent"] else peer["allowed_ips"]
            for name, peer in iface["peers"].items()
        }
        named = dict(iface["peers"])  # the hosts file names a peer the mine has no key of yet
        if resolve_mine:
            wgf_networks.resolve_minion_peers(iface, facts.published_keys)
        own = _own_public_key(compiled["raw"][ifname], iface, facts)
        wgf_schema.check_peer_conflicts(iface, own, errors)
        _allocate_clients(iface, own, facts.client_records.get(ifname), errors, facts.now)
        iface["hosts"] = _hosts(
            {**iface, "peers": named}, compiled.get("hosts_nodes", {}).get(ifname), facts, errors
        )
        names.update(
            {
                name: [
                    wgf_addr.network(a.split("/")[0], "client address") for a in client["address"]
                ]
                for name, client in iface["clients"].items()
                if not client["absent"]
            }
        )
        wgf_firewall.check(iface, facts.firewall, errors, names)
        iface["confirm"] = _confirm(compiled["raw"][ifname], iface, facts, errors)
        iface["backend"] = wgf_networkd.effective(facts.backend, iface["backend"])
        errors += wgf_networkd.refusals(iface, facts.init, facts.systemd_version, facts.firewall)
    _clients_named_like_interfaces(interfaces, compiled["raw"], errors)
    try:
        metrics = wgf_metrics.check(facts.metrics)
    except SaltInvocationError as exc:
        errors.append(str(exc))
    if errors:
        raise SaltInvocationError(
            "Invalid wireguard pillar (nothing was changed):\n- " + "\n- ".join(errors)
        )
    found = settings(interfaces, facts.firewall)
    found["metrics"] = metrics
    return {"settings": found, "interfaces": interfaces}


def next_expiry(interfaces, now):
    """The earliest ``wgf_clients.next_expiry`` of the validated ``interfaces`` after
    ``now``, or None: until then a validation at ``now`` holds."""
    found = [wgf_clients.next_expiry(iface, now) for iface in interfaces.values()]
    return min((when for when in found if when is not None), default=None)


#: Where the loader keeps the run's resolution in ``__context__``: ``{(inputs, files):
#: (result, expiry)}``, one entry. ``inputs``: what it was resolved from (layout, firewall
#: backend, pillar); ``files``: ``wgf_client_record.stamp`` of the config directory then;
#: ``expiry``: ``next_expiry``, when a client's expiry makes it stale.
CACHE = "wireguard.validated"


def cached(context, inputs, files, now):
    """The run's resolution of ``inputs`` with the config directory's ``files`` as they
    are, or None (none yet, other inputs or files, or a client has expired since)."""
    found = context.get(CACHE, {}).get((inputs, files))
    if found is None or (found[1] is not None and now >= found[1]):
        return None
    return found[0]


def keep(context, inputs, files, result, now):
    """Keep ``result`` as the run's resolution (the only one) and return it."""
    context[CACHE] = {(inputs, files): (result, next_expiry(result["interfaces"], now))}
    return result


def carry_over(context, interface, clients, made, files):
    """After the clients state of ``interface`` wrote its record from the run's
    resolution (``clients``: that resolution's clients, as the state read them) with the
    public keys ``made`` ({client: key}), that resolution with those keys is what
    resolving again would find; it is kept for ``files``, the config directory as the
    writes left it (resolving 10,000 clients again cost 0.45 s; issue 24). Nothing is
    kept when the resolution is another one, or pillar has no clients left (the record
    then decides ``clients_managed``): the next call resolves again."""
    found = next(iter(context.get(CACHE, {}).items()), None)
    if found is None:
        return
    (inputs, _), (result, expiry) = found
    iface = result["interfaces"].get(interface)
    if iface is None or iface["clients"] is not clients or not clients:
        return
    if made:
        iface = wgf_clients.with_made_keys(iface, made)
        result = {**result, "interfaces": {**result["interfaces"], interface: iface}}
    context[CACHE] = {(inputs, files): (result, expiry)}


def run(pillar, facts):
    """The whole pipeline: ``resolve(compile_pillar(pillar, facts.minion_id), facts)``."""
    return resolve(compile_pillar(pillar, facts.minion_id), facts)


def settings(interfaces, firewall):
    """What is minion-wide, once: the firewall backend, and what the packages must
    bring: ``resolvconf`` (an interface sets ``dns``) and ``firewall_tools`` (an
    interface NATs, opens its port, limits access or a client's rate or quota, or routes
    a default route with ``table: auto``, for which wg-quick sets nft or iptables rules itself)."""
    present = [iface for iface in interfaces.values() if not iface["absent"]]
    return {
        "firewall": firewall,
        "needs": {
            # networkd hands DNS to systemd-resolved: no resolvconf for it
            "resolvconf": any(
                iface["dns"] and iface.get("backend") != wgf_networkd.NETWORKD for iface in present
            ),
            "firewall_tools": any(
                iface["masquerade"]
                or iface["open_port"]
                or iface["access"]
                or wgf_quota.needs_table(iface)
                or _default_route(iface)
                for iface in present
            ),
        },
    }


def _default_route(iface):
    allowed = [
        cidr
        for peer in iface["peers"].values()
        if not peer["absent"]
        for cidr in peer["allowed_ips"]
    ]
    return wgf_live.default_route_mode(iface["table"], allowed)


def _confirm(raw, iface, facts, errors):
    """The interface's effective confirm as plain data, ``{"timeout": s, "probes":
    [str]}`` (each probe as pillar writes it), or None when it is off (or the interface
    is absent: a removal is not confirmed). Refused where the init cannot undo alone."""
    try:
        confirm = wgf_confirm.effective(facts.confirm, raw.get("confirm"), iface["name"])
        if confirm is None or iface["absent"]:
            return None
        wgf_confirm.check_init(facts.init, iface["name"])
    except SaltInvocationError as exc:
        if str(exc) not in errors:  # lookup's is one problem, not one per interface
            errors.append(str(exc))
        return None
    return {"timeout": confirm.timeout, "probes": [str(probe) for probe in confirm.probes]}


def _hosts(iface, nodes, facts, errors):
    """The ``hosts`` option with its names, ``{"domain", "names": [[address, name]]}``,
    or None (off, or the interface is absent: its block goes)."""
    if iface["hosts"] is None or iface["absent"]:
        return None
    names = wgf_hosts.entries(iface, facts.minion_id, nodes, errors)  # warnings: in iface
    return {"domain": iface["hosts"]["domain"], "names": names}


def _check_table(iface, known_tables, errors):
    """A table name must be one the minion defines (numbers, auto and off always are);
    with no rt_tables file, any ASCII name."""
    try:
        wgf_options.table(
            iface["table"], f"interface {shown(iface['name'])}, key 'table'", known_tables
        )
    except SaltInvocationError as exc:
        errors.append(str(exc))


def _own_public_key(raw, iface, facts):
    """The interface's own public key: of pillar's private key, else of its key file."""
    private_key = raw.get("private_key") if iface["has_private_key"] else None
    if private_key:
        return wgf_keys.pubkey_or_none(private_key)
    return facts.own_public_keys.get(iface["name"])


def _clients_named_like_interfaces(result, interfaces, errors):
    """A client's exported ``<client>.conf`` holds its private key: named like an
    interface of this minion, it could replace that interface's config."""
    for ifname, iface in result.items():
        for name in iface["clients"]:
            if name in interfaces:
                errors.append(
                    f"interface {shown(ifname)}, client {shown(name)}, key 'clients': a "
                    f"client may not have the name of an interface of this minion ({name}."
                    "conf is that interface's config)"
                )


def _allocate_clients(iface, own, record_text, errors, now):
    """Addresses and known keys of the interface's clients, from the minion's record."""
    if iface["absent"]:
        return
    try:
        record = wgf_client_record.parse_record(
            record_text, f"interface {shown(iface['name'])}: the clients record"
        )
    except SaltInvocationError as exc:
        errors.append(str(exc))
        return
    iface["clients_managed"] = bool(iface["clients"] or record["clients"])
    iface["client_retired"] = record["retired"]
    wgf_clients.set_status(iface, now)
    if iface["clients_managed"]:
        wgf_clients.allocate(iface, record, own, errors)
