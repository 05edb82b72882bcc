"""Names and addresses as WireGuard and wg-quick read them: interface names,
endpoints, CIDRs, and the characters no value written into a config may hold.

Plain Python, no Salt loader dunders: imported by the formula's loader modules and
by the other ``wgf_*`` modules. Problems raise ``SaltInvocationError`` with the
place (``where``) in front, never the whole value a key could be part of.
"""

import functools
import ipaddress
import re
import socket

from salt.exceptions import SaltInvocationError

#: wg-quick's rule for an interface name (``fullmatch``: a trailing newline is no match),
#: without ``+``: iptables reads a name with ``+`` as a wildcard (``wg+`` is every wg*
#: interface, ``+`` every interface), so a masquerade or firewall rule would match more.
INTERFACE_NAME = re.compile(r"[a-zA-Z0-9_=.-]{1,15}")
INTERFACE_RULE = "an interface name is 1-15 characters of a-z A-Z 0-9 _ = . - (and not '.' or '..')"
PLUS = (
    "'+' is refused although wg-quick allows it: iptables reads a name with '+' as a "
    "wildcard ('wg+' is every wg* interface, '+' every interface)"
)
HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?"
)
#: Characters that split or end a line for some reader of the file: C0 and C1
#: controls (``\x85`` is NEL), DEL, and the Unicode line and paragraph separators.
LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: What an address or CIDR may be written with: no scope id (``%``), no list separator.
ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f:./]+")
ASCII_DIGITS = re.compile(r"[0-9]+")
#: Anything shaped like a WireGuard key (32 bytes) in base64: 43 characters and ``=``, the
#: last one before the padding carrying 4 bits of the key and 2 zero bits.
KEY_SHAPED = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=(?![A-Za-z0-9+/=])")
HIDDEN = "<hidden>"
#: Integers longer than this cannot be written, shown or compared as text: Python
#: refuses to turn an int of more than 4300 digits into a string (about 14,300 bits).
MOST_BITS = 4096


def is_huge(value):
    """An int (not a bool) too long for any value the formula takes."""
    return isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MOST_BITS


def no_huge_numbers(value, where):
    """``value`` itself, once no int in it (values and mapping keys, nested) is huge;
    raise naming the place otherwise: ``str()`` or ``repr()`` of one raises ValueError."""
    stack, seen = [(value, where)], set()
    while stack:
        item, place = stack.pop()
        if isinstance(item, (dict, list)):  # YAML anchors can make a value hold itself
            if id(item) in seen:
                continue
            seen.add(id(item))
        if is_huge(item):
            raise SaltInvocationError(f"{place}: a number of more than {MOST_BITS} bits is refused")
        if isinstance(item, dict):
            for key, sub in item.items():
                if is_huge(key):
                    raise SaltInvocationError(
                        f"{place}: a key that is a number of more than {MOST_BITS} bits is refused"
                    )
                named = isinstance(key, str) and len(key) < 64 and not LINE_BREAKING.search(key)
                stack.append((sub, f"{place}:{key}" if named else place))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((sub, place) for sub in item)
    return value


def checked_repr(value, where):
    """``repr(value)``, or raise naming the place of a number too long to show (a
    cache key: as fast as ``repr`` when there is none)."""
    try:
        return repr(value)
    except ValueError:
        no_huge_numbers(value, where)
        raise


def hide_keys(text, public=()):
    """``text`` with every key-shaped value but those in ``public`` hidden (the part of
    ``wgf_conf.mask`` that needs no config syntax, here so ``shown`` can use it)."""
    public = set(public or ())
    return KEY_SHAPED.sub(lambda m: m.group(0) if m.group(0) in public else HIDDEN, text)


def shown(value):
    """A value as a message shows it: quoted, with line breaks and controls escaped,
    and anything shaped like a key hidden (a key typed where a name or an address goes
    must not reach the output or the job cache)."""
    if is_huge(value):
        return f"<a number of more than {MOST_BITS} bits>"
    return repr(hide_keys(str(value)))


def is_interface_name(name):
    return (
        isinstance(name, str)
        and INTERFACE_NAME.fullmatch(name) is not None
        and name not in (".", "..")
    )


def interface_name_problem(name):
    """Why ``name`` is no interface name for the formula, or None."""
    if is_interface_name(name):
        return None
    return PLUS if isinstance(name, str) and "+" in name else INTERFACE_RULE


def check_interface_name(name, where="interface"):
    """Return ``name`` or raise: 1-15 characters of ``a-z A-Z 0-9 _ = . -``."""
    problem = interface_name_problem(name)
    if problem:
        raise SaltInvocationError(f"{where} {shown(name)}: {problem}")
    return name


def as_list(value):
    """A list from a list, a comma-separated string, None or one item."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [value]


def text(value, where):
    """A string (or number) that may go into a config line: no line breaks."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise SaltInvocationError(f"{where}: expected a string, got {type(value).__name__}")
    if is_huge(value):
        raise SaltInvocationError(f"{where}: a number of more than {MOST_BITS} bits is refused")
    value = str(value)
    if LINE_BREAKING.search(value):
        raise SaltInvocationError(
            f"{where}: {shown(value)}: newlines and control characters are refused "
            "(they could inject lines into the config file)"
        )
    return value


def _address_text(value, where, what):
    value = text(value, where)
    if not ADDRESS_CHARS.fullmatch(value):
        raise SaltInvocationError(f"{where}: {shown(value)} is not {what}")
    return value


def _canonical_quad(value):
    """The 4 bytes of the IPv4 address ``value`` spells in its canonical form (the C
    parser reads it), else None."""
    try:
        packed = socket.inet_pton(socket.AF_INET, value)
    except (OSError, TypeError, ValueError):
        return None
    return packed if socket.inet_ntop(socket.AF_INET, packed) == value else None


def _dotted_quad(value):
    """The IPv4 address ``value`` spells in its canonical form, else None."""
    packed = _canonical_quad(value)
    return None if packed is None else ipaddress.IPv4Address(packed)


def ip(value):
    """``ipaddress.ip_address(value)``, the same answer and the same errors, several
    times faster for a dotted quad (a 10,000-client hub parses tens of thousands a run;
    issue 24)."""
    if type(value) is str and 6 < len(value) < 16:
        found = _dotted_quad(value)
        if found is not None:
            return found
    return ipaddress.ip_address(value)


def ip_text(value):
    """``str(ip(value))``, the same errors; a dotted quad already canonical is its own
    answer (a clients record holds 10,000 of them; issue 24)."""
    if type(value) is str and 6 < len(value) < 16 and _canonical_quad(value) is not None:
        return value
    return str(ip(value))


def network(value, where):
    """A normalised CIDR (host bits cleared); a bare address becomes /32 or /128."""
    value = _address_text(value, where, "a valid CIDR")
    head, _, bits = value.partition("/")
    if bits in ("", "32") and _dotted_quad(head) is not None:
        return f"{head}/32"  # the common case, without the slower parse below
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise SaltInvocationError(f"{where}: {shown(value)} is not a valid CIDR") from None


def interface_address(value, where):
    """An ``address/prefix`` of an interface, host bits kept."""
    value = _address_text(value, where, "a valid address/prefix")
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError:
        raise SaltInvocationError(
            f"{where}: {shown(value)} is not a valid address/prefix"
        ) from None


def ip_address(value, where):
    value = _address_text(value, where, "an IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise SaltInvocationError(f"{where}: {shown(value)} is not an IP address") from None


def is_address(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def cidr_sort_key(cidr):
    """``(version, network as an int, prefix length)`` of a CIDR, host bits cleared: a
    sort key, and the numbers a containment test needs; the C parser reads the
    common spellings, each text once a process (a 10,000-client hub has 10,000
    AllowedIPs, each sorted and checked for a route by several states; issue 24)."""
    return _text_cidr_key(cidr) if type(cidr) is str else _network_key(cidr)


def _network_key(cidr):
    """``cidr_sort_key`` through ``ipaddress`` (any spelling it reads, or its error)."""
    net = ipaddress.ip_network(cidr, strict=False)
    return (net.version, int(net.network_address), net.prefixlen)


@functools.lru_cache(maxsize=1 << 14)
def _text_cidr_key(cidr):
    """``cidr_sort_key`` of a text (an error is raised again each time, not kept)."""
    head, slash, bits = cidr.partition("/")
    family, width = (socket.AF_INET6, 128) if ":" in head else (socket.AF_INET, 32)
    length = int(bits) if bits.isascii() and bits.isdigit() and len(bits) < 4 else None
    if not slash:
        length = width
    try:
        packed = socket.inet_pton(family, head)
    except (OSError, ValueError):
        packed = None
    if packed is not None and length is not None and length <= width:
        value = int.from_bytes(packed, "big")
        return (4 if width == 32 else 6, value >> (width - length) << (width - length), length)
    return _network_key(cidr)


def has_default_route(cidrs):
    """Whether a CIDR of ``cidrs`` is a /0: with ``table auto`` wg-quick then sets up its
    default-route machinery (fwmark, policy rules) and routes nothing else itself."""
    # only a CIDR ending in /0 can be one (10,000 AllowedIPs are not parsed for it)
    return any(str(c).endswith("/0") and cidr_sort_key(c)[2] == 0 for c in cidrs)


def off_link(cidrs, addresses, link_local=False):
    """The CIDRs of ``cidrs`` that no network of an interface address holds (each
    ``address/prefix``; a /32 or /128 address holds none), nor fe80::/64 with
    ``link_local``: those wg-quick routes with ``table auto``. /0 ones are left out
    (its default-route setup, not a route)."""
    connected = [cidr_sort_key(a) for a in addresses]
    connected = [c for c in connected if c[2] < (32 if c[0] == 4 else 128)]
    if link_local:
        connected.append(cidr_sort_key("fe80::/64"))
    found = []
    for cidr in cidrs:
        net = cidr_sort_key(cidr)
        if net[2] and not any(covers(c, net) for c in connected):
            found.append(cidr)
    return found


def covers(outer, inner):
    """Whether the network ``outer`` holds ``inner``, both as ``cidr_sort_key`` gives."""
    width = 32 if outer[0] == 4 else 128
    shift = width - outer[2]
    return outer[0] == inner[0] and inner[2] >= outer[2] and inner[1] >> shift == outer[1] >> shift


def integer(value, where, low, high, what):
    """A whole number from ``low`` to ``high``; strings in ASCII decimal or 0x hex."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SaltInvocationError(f"{where}: {what} must be a number from {low} to {high}")
    if isinstance(value, str):
        digits = value.strip()
        if not digits.isascii():
            raise SaltInvocationError(
                f"{where}: {shown(value)} is not a number; {what} is {low}-{high}"
            )
        try:
            value = int(digits, 0)
        except ValueError:
            raise SaltInvocationError(
                f"{where}: {shown(digits)} is not a number; {what} is {low}-{high}"
            ) from None
    if not low <= value <= high:
        raise SaltInvocationError(
            f"{where}: {value if not is_huge(value) else shown(value)} "
            f"is out of range; {what} is {low}-{high}"
        )
    return value


def seconds(value, what, most):
    """A number of seconds from 0 to ``most`` (fractions allowed)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past a float
        number = -1.0
    if isinstance(value, bool) or not 0 <= number <= most:
        raise SaltInvocationError(f"{what} is a number of seconds from 0 to {most}")
    return number


def port(value, where):
    return integer(value, where, 1, 65535, "a port")


def split_endpoint(endpoint):
    """``(host, port)`` of a valid ``host:port``, ``a.b.c.d:port`` or ``[v6]:port``."""
    host, _, number = endpoint.rpartition(":")
    return host[1:-1] if host.startswith("[") else host, int(number)


def endpoint(value, where):
    """``host:port``, ``a.b.c.d:port`` or ``[v6]:port``, checked and returned as written."""
    value = text(value, where)
    host, sep, number = value.rpartition(":")
    if not sep or not host or not number:
        raise SaltInvocationError(
            f"{where}: {shown(value)} has no port; write host:port, a.b.c.d:port or [v6]:port"
        )
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(_address_text(host[1:-1], where, "an IPv6 address"))
        except ValueError:
            raise SaltInvocationError(
                f"{where}: {shown(host[1:-1])} is not an IPv6 address"
            ) from None
    elif ":" in host:
        raise SaltInvocationError(
            f"{where}: {shown(value)} looks like an IPv6 address without brackets; "
            "write it as [address]:port"
        )
    elif not HOSTNAME.fullmatch(host):
        raise SaltInvocationError(f"{where}: {shown(host)} is not a valid host name or address")
    if not ASCII_DIGITS.fullmatch(number):
        raise SaltInvocationError(f"{where}: port {shown(number)} is not a number")
    port(number, where)
    return value


def endpoint_with_port(host, default_port, where):
    """``host`` or ``host:port`` (``[v6]`` or a bare IPv6 address too) as an endpoint."""
    host = text(host, where)
    try:
        if ADDRESS_CHARS.fullmatch(host.strip("[]")):  # no scope id: ``endpoint`` refuses it
            return f"[{ipaddress.IPv6Address(host.strip('[]'))}]:{default_port}"
    except ValueError:
        pass
    if re.search(r":[0-9]+\Z", host):
        return endpoint(host, where)
    return endpoint(f"{host}:{default_port}", where)


def endpoint_ip(value):
    """``(ip address, port)`` of a live endpoint (``1.2.3.4:5``, ``[v6]:5``), or
    ``(None, None)`` when it is no address (a host name, nothing, garbage)."""
    if not value or not isinstance(value, str):
        return None, None
    host, _, number = value.rpartition(":")
    try:
        return (
            ipaddress.ip_address(host.strip("[]").split("%")[0]),
            int(number) if ASCII_DIGITS.fullmatch(number) else None,
        )
    except ValueError:
        return None, None
