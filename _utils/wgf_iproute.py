"""What iproute2 says, as plain data: ``ip -j addr``, ``ip -j route`` and the
routing table names of ``rt_tables``. Parsing only; the loader modules run ``ip``."""

import os

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_options

DEFAULT_ROUTE = {"-4": "0.0.0.0/0", "-6": "::/0"}


def link(links):
    """``{"addresses", "mtu"}`` of ``ip -j addr show dev IF`` (no link-local), or None;
    ``mtu`` and each other option set by ``ip link set`` (``wgf_options``) under its key."""
    if not links:
        return None
    addresses = [
        wgf_addr.interface_address(f"{a['local']}/{a['prefixlen']}", "ip addr")
        for a in links[0].get("addr_info", [])
        if a.get("local") and a.get("scope") != "link"
    ]
    found = {row.key: links[0].get(row.field) for row in wgf_options.rows("link")}
    return {**found, "addresses": addresses}


def unicast_destinations(routes, family):
    """The destination CIDRs of the unicast routes of ``ip -j -4|-6 route show``."""
    found = set()
    for route in routes:
        if route.get("type", "unicast") != "unicast":
            continue
        dst = route.get("dst", "")
        try:
            found.add(wgf_addr.network(DEFAULT_ROUTE[family] if dst == "default" else dst, "route"))
        except SaltInvocationError:
            continue
    return found


def route_mtu(route):
    """The ``mtu`` metric of one route of ``ip -j route get``, or None."""
    for metric in route.get("metrics") or []:
        if isinstance(metric, dict) and "mtu" in metric:
            value = metric["mtu"]
            if isinstance(value, list):  # "mtu lock 1400"
                value = next((v for v in value if isinstance(v, int)), None)
            return value if isinstance(value, int) else None
    return None


def table_names(text):
    """The names an ``rt_tables`` file defines (``number name`` lines)."""
    names = set()
    for line in text.split("\n"):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            names.add(fields[1])
    return names


#: Where iproute2 defines routing table names (older and newer layouts).
RT_TABLES = (
    "/etc/iproute2/rt_tables",
    "/usr/share/iproute2/rt_tables",
    "/usr/lib/iproute2/rt_tables",
)


def known_tables(bases=RT_TABLES):
    """Routing table names the files under ``bases`` (and ``<base>.d/*.conf``) define,
    or None when there is no such file."""
    names, found = set(), False
    for base in bases:
        paths = [base]
        if os.path.isdir(f"{base}.d"):
            paths += sorted(
                os.path.join(f"{base}.d", f) for f in os.listdir(f"{base}.d") if f.endswith(".conf")
            )
        for path in paths:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            except OSError:
                continue
            found = True
            names |= table_names(text)
    return names if found else None
