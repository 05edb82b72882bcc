"""The systemd-networkd backend (issue 25): which backend runs an interface, what the
backend refuses, and the ``.netdev``/``.network`` files it is built from.

Pure: normalised interfaces (``wgf_schema``) in, text and plain data out. The files
name the keys by path (``PrivateKeyFile=``, ``PresharedKeyFile=``): no key is ever in
them. The keys are copies of the formula's key files, in a 0750 root:systemd-network
directory per interface with 0640 files (``key_files``), which the state writes through
the host adapter. The running interface is changed live by the same engine as under
wg-quick (``wgf_live``: ``wg set``, ``ip``); these files make ``networkctl reload``,
``networkctl reconfigure <if>`` and a reboot build the same interface.

Routes follow what wg-quick derives from AllowedIPs and ``table``
(``wgf_live.derived_routes``): ``auto`` writes one ``[Route]`` per route wg-quick adds
to ``main`` and, for a /0, wg-quick's default-route machinery (the fwmark, its table, the
two policy rules); a numeric table is ``RouteTable=`` of the ``[WireGuard]`` section
(every AllowedIP there, as wg-quick does); ``off`` none.
"""

import hashlib
import ipaddress
import os
import re

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_conf
import wgf_files
import wgf_live
from wgf_addr import shown

WG_QUICK = "wg-quick"
NETWORKD = "networkd"
BACKENDS = (WG_QUICK, NETWORKD)
DEFAULT_BACKEND = WG_QUICK
#: The oldest systemd whose networkd takes every option written here: ``RouteTable=``
#: in ``[WireGuard]`` came with 250 (``PrivateKeyFile=``/``PresharedKeyFile=`` with 242).
MIN_SYSTEMD = 250
#: The unit that runs every networkd interface.
SERVICE = "systemd-networkd"
#: The group networkd reads its files as.
GROUP = "systemd-network"
HEADER = "# Managed by Salt (wireguard formula): local changes are overwritten."
#: wg-quick's fwmark and table of its default-route machinery when ``fwmark`` is unset.
DEFAULT_ROUTE_MARK = 51820
HOOKS = ("pre_up", "post_up", "pre_down", "post_down")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_=+-][A-Za-z0-9_.=+-]{0,99}")

#: The protocol of the routes networkd adds for a ``[Route]`` (its default): the live
#: engine adds the derived routes of a networkd interface with it, so that a reconfigure
#: finds them as its own.
ROUTE_PROTOCOL = "static"
#: networkd's drop-in while it builds one of the formula's interfaces: at its start,
#: networkd would otherwise remove every route and routing policy rule it did not make,
#: such as those of a wg-quick interface on the same minion (a full tunnel's rules).
FOREIGN = (
    "# Managed by Salt (wireguard formula): systemd-networkd leaves alone the routes and\n"
    "# routing policy rules it did not make (a wg-quick interface's, on this minion).\n"
    "[Network]\n"
    "ManageForeignRoutes=no\n"
    "ManageForeignRoutingPolicyRules=no\n"
)

# ------------------------------------------------------------------ the backend


def check_backend(value, where):
    """A pillar ``backend`` (``wg-quick``, ``networkd`` or null), for the schema."""
    if value is None or (isinstance(value, str) and value in BACKENDS):
        return value
    raise SaltInvocationError(
        f"{where}: {shown(value) if isinstance(value, str) else type(value).__name__} "
        f"is not a backend: {' or '.join(BACKENDS)}"
    )


def effective(lookup_backend, iface_backend):
    """The backend of an interface: its own ``backend``, else the minion's
    (``wireguard:lookup:backend``), else wg-quick."""
    return iface_backend or lookup_backend or DEFAULT_BACKEND


def systemd_version(grains_systemd):
    """The ``version`` of the ``systemd`` grain as an int (``"252"``, ``"252.19-1"``),
    or None when the grain gives none."""
    version = grains_systemd.get("version") if isinstance(grains_systemd, dict) else None
    match = re.match(r"\s*(\d+)", str(version)) if version is not None else None
    return int(match.group(1)) if match else None


def refusals(iface, init, version, firewall="none"):
    """What keeps ``iface`` (normalised, ``backend`` networkd) off networkd on this
    minion: each a message naming the interface and the pillar key, and what to do
    instead. ``init`` is grains ``init``, ``version`` ``systemd_version``'s."""
    if iface.get("backend") != NETWORKD or iface.get("absent"):
        return []
    name = iface["name"]
    where = f"interface {shown(name)}, key 'backend'"
    found = []
    if init != "systemd":
        found.append(
            f"{where}: networkd needs systemd, and this minion's init is "
            f"{shown(str(init)) if init else 'unknown'}; use backend: wg-quick"
        )
    elif version is None or version < MIN_SYSTEMD:
        found.append(
            f"{where}: networkd needs systemd {MIN_SYSTEMD} or newer (RouteTable=, "
            f"PrivateKeyFile=, PresharedKeyFile= of its WireGuard netdev), and this minion "
            f"has {version if version is not None else 'an unknown version'}; "
            "use backend: wg-quick"
        )
    hooks = [key for key in HOOKS if iface.get(key)]
    if hooks:
        found.append(
            f"interface {shown(name)}, key {shown(hooks[0])}: networkd runs no hooks "
            f"({', '.join(hooks)}); put NAT and port rules in the formula's firewall "
            "(masquerade, open_port, access), routes in 'routes', and anything else in a "
            f"systemd unit ordered after systemd-networkd (or use backend: wg-quick)"
        )
    if iface.get("masquerade") and firewall == "none":
        found.append(
            f"interface {shown(name)}, key 'masquerade': with wireguard:lookup:firewall: "
            "none wg-quick NATs with PostUp hooks, which networkd cannot run; choose "
            "lookup:firewall nftables or iptables (the formula's firewall) or backend: wg-quick"
        )
    table = iface.get("table", "auto")
    if table not in ("auto", "off", "main") and not wgf_addr.ASCII_DIGITS.fullmatch(table):
        found.append(
            f"interface {shown(name)}, key 'table': networkd does not read "
            f"/etc/iproute2/rt_tables: write the number of table {shown(table)}"
        )
    return found


# -------------------------------------------------------------------- the keys


def psk_name(peer):
    """The file name of a peer's preshared key: its name when that is a safe file name,
    else a digest of it."""
    if _SAFE_NAME.fullmatch(peer) and peer not in (".", ".."):
        return f"{peer}.psk"
    return f"peer-{hashlib.sha256(peer.encode()).hexdigest()[:16]}.psk"


def _peers(iface):
    return [
        (name, peer)
        for name, peer in iface["peers"].items()
        if not peer["absent"] and peer["public_key"]
    ]


def key_files(iface, layout, private_key, psks):
    """``{path: text}`` of the key copies networkd reads (0640 root:systemd-network,
    in ``layout.networkd_keys(<if>)``): the private key and each preshared key the
    rendered ``.netdev`` names."""
    name = iface["name"]
    files = {layout.networkd_key(name): private_key + "\n"}
    for pname, peer in _peers(iface):
        if peer["has_preshared_key"] and psks.get(pname):
            files[layout.networkd_psk(name, psk_name(pname))] = psks[pname] + "\n"
    return files


# ------------------------------------------------------------------ the routes


def _mark(iface):
    return iface["fwmark"] or DEFAULT_ROUTE_MARK


def _allowed(iface):
    return [c for _, peer in _peers(iface) for c in peer["allowed_ips"]]


def default_route_families(iface):
    """The families (4, 6) of the /0 AllowedIPs wg-quick's default-route machinery
    handles (``table: auto``), sorted."""
    if not wgf_live.default_route_mode(iface["table"], _allowed(iface)):
        return []
    return sorted(
        {
            ipaddress.ip_network(c, strict=False).version
            for c in _allowed(iface)
            if ipaddress.ip_network(c, strict=False).prefixlen == 0
        }
    )


def routes(iface):
    """``[(destination, table)]`` of the ``[Route]`` sections: wg-quick's routes for
    ``table: auto`` and ``main`` (a numeric table is ``RouteTable=``), the /0 in the
    fwmark's table, and the formula's ``routes`` (in main)."""
    found = {}
    if iface["table"] in ("auto", "main"):
        derived = wgf_live.derived_routes(
            "auto" if iface["table"] == "auto" else "main", _allowed(iface), iface["address"]
        )
        found.update(dict.fromkeys(derived))
    for version in default_route_families(iface):
        found[("0.0.0.0/0" if version == 4 else "::/0", str(_mark(iface)))] = None
    for cidr in iface["routes"]:
        found[(cidr, "main")] = None
    return sorted(found, key=lambda r: (wgf_addr.cidr_sort_key(r[0]), r[1]))


# ------------------------------------------------------------------ the files


def _section(title, pairs):
    lines = ["", f"[{title}]"]
    for key, value in pairs:
        if value is None or value == "":
            continue
        if key == "#":
            lines.append(f"# {value}")
        else:
            lines.append(f"{key}={value}")
    return lines


def render_netdev(iface, layout):
    """The ``.netdev`` text of one normalised interface: keys by path only."""
    name = iface["name"]
    table = iface["table"]
    fwmark = iface["fwmark"]
    if fwmark is None and default_route_families(iface):
        fwmark = DEFAULT_ROUTE_MARK  # what wg-quick sets for its default route
    lines = [HEADER]
    lines += _section(
        "NetDev",
        [("Name", name), ("Kind", "wireguard"), ("Description", f"WireGuard {name}")],
    )
    lines += _section(
        "WireGuard",
        [
            ("PrivateKeyFile", layout.networkd_key(name)),
            ("ListenPort", iface["listen_port"]),
            ("FirewallMark", None if fwmark is None else hex(fwmark)),
            ("RouteTable", table if wgf_addr.ASCII_DIGITS.fullmatch(table) else None),
        ],
    )
    for pname, peer in _peers(iface):
        psk = layout.networkd_psk(name, psk_name(pname)) if peer["has_preshared_key"] else None
        lines += _section(
            "WireGuardPeer",
            [
                ("#", pname),
                ("PublicKey", peer["public_key"]),
                ("PresharedKeyFile", psk),
                ("AllowedIPs", ",".join(peer["allowed_ips"])),
                ("Endpoint", peer["endpoint"]),
                ("PersistentKeepalive", peer["persistent_keepalive"]),
            ],
        )
    return "\n".join(lines) + "\n"


def render_network(iface):
    """The ``.network`` text of one normalised interface."""
    name = iface["name"]
    servers = [d for d in iface["dns"] if _is_address(d)]
    domains = [d for d in iface["dns"] if not _is_address(d)]
    network = [("Address", a) for a in iface["address"]]
    network += [("DNS", d) for d in servers]
    # wg-quick hands its servers to resolvconf exclusively (-x): with systemd-resolved,
    # "~." sends every query to this link's servers (no leak past a full tunnel)
    domains += ["~."] if servers else []
    network += [("Domains", " ".join(domains) if domains else None)]
    # wg-quick gives the device no link-local address and takes no router adverts
    network += [("LinkLocalAddressing", "no"), ("IPv6AcceptRA", "no")]
    lines = [HEADER]
    lines += _section("Match", [("Name", name)])
    if iface["mtu"]:
        lines += _section("Link", [("MTUBytes", iface["mtu"])])
    lines += _section("Network", network)
    for destination, table in routes(iface):
        lines += _section(
            "Route",
            [("Destination", destination), ("Table", None if table == "main" else table)],
        )
    mark = _mark(iface)
    for version in default_route_families(iface):
        family = "ipv4" if version == 4 else "ipv6"
        # wg-quick: ip rule add not fwmark <mark> table <mark>;
        #           ip rule add table main suppress_prefixlength 0
        lines += _section(
            "RoutingPolicyRule",
            [
                ("Family", family),
                ("FirewallMark", hex(mark)),
                ("InvertRule", "yes"),
                ("Table", mark),
            ],
        )
        lines += _section(
            "RoutingPolicyRule",
            [("Family", family), ("Table", "main"), ("SuppressPrefixLength", 0)],
        )
    return "\n".join(lines) + "\n"


def _is_address(value):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def files(iface, layout):
    """``{path: text}`` of the two unit files of ``iface`` (no secret in either)."""
    name = iface["name"]
    return {
        layout.netdev(name): render_netdev(iface, layout),
        layout.network(name): (render_network(iface)),
    }


# ------------------------------------------------------------------ reading back


def sections(text):
    """``[(section, [(key, value)])]`` of a systemd unit file's text; a comment line
    right after a section header is kept as the key ``#`` (the formula's peer name)."""
    found = []
    for raw in (text or "").split("\n"):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            found.append((line[1:-1].strip(), []))
        elif found and line.startswith(("#", ";")):
            if not found[-1][1]:
                found[-1][1].append(("#", line.lstrip("#;").strip()))
        elif found and "=" in line:
            key, _, value = line.partition("=")
            found[-1][1].append((key.strip(), value.strip()))
    return found


def as_conf(netdev, network, private_key):
    """The wg-quick config text equivalent to networkd's two files, for the readers of a
    parsed config (``wgf_conf.parse``: ``wireguard.check``, ``config_peers``,
    ``reresolve``). ``private_key``: the text of the file ``PrivateKeyFile=`` names,
    or None. Never shown: it may hold the key; its parse holds none."""
    lines, peers, allowed, addresses, destinations = ["[Interface]"], [], [], [], []
    if private_key:
        lines.append(f"PrivateKey = {private_key.strip()}")
    for section, pairs in sections(netdev):
        if section == "WireGuard":
            names = {"ListenPort": "ListenPort", "FirewallMark": "FwMark", "RouteTable": "Table"}
            lines += [f"{names[k]} = {v}" for k, v in pairs if k in names]
        elif section == "WireGuardPeer":
            names = {
                "PublicKey": "PublicKey",
                "AllowedIPs": "AllowedIPs",
                "Endpoint": "Endpoint",
                "PersistentKeepalive": "PersistentKeepalive",
            }
            peer = ["", "[Peer]"] + [f"# {v}" for k, v in pairs if k == "#"]
            peer += [f"{names[k]} = {v}" for k, v in pairs if k in names]
            peer += ["PresharedKey = (a file)" for k, v in pairs if k == "PresharedKeyFile"]
            peers += peer
            allowed += [a for k, v in pairs if k == "AllowedIPs" for a in v.split(",") if a]
    for section, pairs in sections(network):
        if section == "Network":
            for key, value in pairs:
                if key == "Address":
                    lines.append(f"Address = {value}")
                    addresses.append(value)
                elif key == "DNS":
                    lines.append(f"DNS = {value}")
                elif key == "Domains":
                    lines += [f"DNS = {d}" for d in value.split() if d != "~."]
        elif section == "Link":
            lines += [f"MTU = {v}" for k, v in pairs if k == "MTUBytes"]
        elif section == "Route":
            values = dict(pairs)
            if values.get("Destination") and values.get("Table", "main") == "main":
                destinations.append(values["Destination"])
    # the formula's routes, as wg-quick's PostUp lines: not those derived from AllowedIPs
    try:
        derived = {dst for dst, _ in wgf_live.derived_routes("auto", allowed, addresses)}
    except ValueError:
        derived = set()
    lines += [f"PostUp = {wgf_conf.route_command(d)}" for d in destinations if d not in derived]
    return "\n".join(lines + peers) + "\n"


def read_config(layout, interface):
    """``(path, parsed config or None, text or None, error or None)`` of ``interface``
    as ``wgf_conf.read_file`` gives it: wg-quick's conf, or, where there is none and
    networkd has a ``.netdev`` of it, networkd's files (the path the ``.netdev``, the
    text both files', which name keys by path only)."""
    found = wgf_conf.read_file(layout.conf(interface))
    netdev_path = layout.netdev(interface)
    if found[1] is not None or found[3] or not os.path.exists(netdev_path):
        return found
    try:
        netdev = _read(netdev_path)
        network = _read(layout.network(interface)) or ""
    except OSError as exc:
        return netdev_path, None, None, f"{netdev_path} cannot be read: {exc.strerror}"
    files = dict(p for s, ps in sections(netdev) if s == "WireGuard" for p in ps)
    key = wgf_files.read_key(files["PrivateKeyFile"]) if files.get("PrivateKeyFile") else None
    conf = wgf_conf.parse(as_conf(netdev, network, key))
    return netdev_path, conf, netdev + network, None


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
