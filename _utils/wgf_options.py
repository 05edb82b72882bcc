"""The plain options of a wg-quick ``[Interface]``: one row each, read by the schema
(default, check), the renderer (``wgf_conf``: the line it writes) and the live planner
(``wgf_live``: how a running interface gets the value, or that only a restart does).

A new plain option is one row of ``OPTIONS`` and its test. Each row says:

key
    The pillar key (and the key of the normalised interface).
default
    Its value when pillar gives none.
check
    ``(value, where) -> normalised value``; raises ``SaltInvocationError`` naming
    ``where``. No minion facts here: the resolver (``wgf_pipeline``) checks those.
conf
    The wg-quick key written for it.
render
    ``normalised value -> text``; the line is left out when it gives None or "".
live
    How the planner applies a change to a running interface: ``"link"`` (``ip link set
    <set_word> <value>``, read back from the ``<field>`` of ``ip -j addr show``),
    ``"wg"`` (``wg set``, read back from ``wg show dump``; the state's ``wg set``
    knows the words of listen_port and fwmark, the only such options WireGuard has),
    ``"restart"`` (only a restart applies it), or None (the planner handles it by
    name: address, DNS, table).
set_word, field
    For ``"link"``: the word of ``ip link set`` and the field of ``ip -j``.
none_keeps_live
    A value of None leaves the running value alone (wg-quick sets nothing then).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from salt.exceptions import SaltInvocationError

import wgf_addr
from wgf_addr import shown

#: Table names wg-quick takes without /etc/iproute2/rt_tables.
SPECIAL_TABLES = ("auto", "off")


class Option(NamedTuple):
    key: str
    default: Any
    check: Callable
    conf: str
    render: Callable = lambda value: value
    live: str | None = None
    set_word: str | None = None
    field: str | None = None
    none_keeps_live: bool = True


# ------------------------------------------------------------------ checks


def strings(value, where, check=None):
    items = []
    for item in [value] if isinstance(value, str) else wgf_addr.as_list(value):
        item = wgf_addr.text(item, where)
        items.append(check(item, where) if check else item)
    return items


def dns_entry(value, where):
    try:
        return wgf_addr.ip_address(value, where)
    except SaltInvocationError:
        if "%" not in value and wgf_addr.HOSTNAME.fullmatch(value):
            return value  # wg-quick takes a non-address as a search domain
    raise SaltInvocationError(f"{where}: {shown(value)} is neither an address nor a search domain")


def fwmark(value, where):
    if value is None or value in ("off", 0):
        return None
    return wgf_addr.integer(value, where, 0, 2**32 - 1, "fwmark") or None


def table_shape(value, where):
    """``auto``, ``off``, a number (as text), or a table name, unchecked: whether the
    minion defines the name is the resolver's (``table``)."""
    if isinstance(value, bool):
        raise SaltInvocationError(f"{where}: table is auto, off, a number or a table name")
    if isinstance(value, int):
        return str(wgf_addr.integer(value, where, 0, 2**32 - 1, "a table number"))
    value = wgf_addr.text(value, where)
    if wgf_addr.ASCII_DIGITS.fullmatch(value):
        return str(wgf_addr.integer(value, where, 0, 2**32 - 1, "a table number"))
    return value


def table(value, where, known_tables=None):
    """``auto``, ``off``, a number, or a name the minion's rt_tables define
    (``known_tables``; None: any ASCII name)."""
    value = table_shape(value, where)
    if value in SPECIAL_TABLES or wgf_addr.ASCII_DIGITS.fullmatch(value):
        return value
    if known_tables is not None and value not in known_tables:
        raise SaltInvocationError(
            f"{where}: table {shown(value)} is not defined on this minion (not in "
            "/etc/iproute2/rt_tables or rt_tables.d); use auto, off, a number, or "
            "define the name there first"
        )
    if known_tables is None and not value.isascii():
        raise SaltInvocationError(f"{where}: {shown(value)} is not a table name")
    return value


# ------------------------------------------------------------------- table

#: The rows, in the order the renderer writes their lines.
OPTIONS = (
    Option(
        "address",
        [],
        lambda v, w: strings(v, w, wgf_addr.interface_address),
        "Address",
        ", ".join,
    ),
    Option(
        "listen_port",
        None,
        lambda v, w: wgf_addr.port(v, w) if v is not None else None,
        "ListenPort",
        live="wg",
    ),
    Option("dns", [], lambda v, w: strings(v, w, dns_entry), "DNS", ", ".join),
    Option(
        "mtu",
        None,
        lambda v, w: wgf_addr.integer(v, w, 576, 65535, "mtu") if v is not None else None,
        "MTU",
        live="link",
        set_word="mtu",
        field="mtu",
    ),
    Option("table", "auto", table_shape, "Table", lambda v: None if v == "auto" else v),
    Option(
        "fwmark",
        None,
        fwmark,
        "FwMark",
        lambda v: None if v is None else hex(v),
        live="wg",
        none_keeps_live=False,
    ),
)


def rows(live=None):
    """The rows (those applied live as ``live`` says, when given), read at call time
    so a test can add one."""
    return [row for row in OPTIONS if live is None or row.live == live]


def conf_lines(iface):
    """The ``Key = value`` lines of the rows for one normalised interface."""
    lines = []
    for row in OPTIONS:
        value = row.render(iface[row.key])
        if value not in (None, ""):
            lines.append(f"{row.conf} = {value}")
    return lines
