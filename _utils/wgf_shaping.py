"""Client ``limits`` enforced in the formula's firewall (issue 23): the rules of ``rate``.

Pure: what ``wgf_firewall``'s table builders add for the clients of an interface whose
``limits`` (``wgf_limits``, inherited from a client group) set a ``rate``. Each such
client gets one token bucket per direction, shared by every path its traffic takes:

- ``in``: what the client sends, arriving on the interface from its tunnel addresses
  (chains input and forward);
- ``out``: what is sent to it, leaving through the interface to its tunnel addresses
  (chains forward and output, the latter for what the minion itself sends).

A packet over the bucket is dropped; the limit rules come first in each chain, before
``open_port``, ``access`` and ``masquerade``, so no accept lets it past.

The bucket: the kernel's byte token buckets (nftables' ``limit``, iptables'
``hashlimit``) always hold one second of the rate, and that is the burst the formula
uses: after an idle second a client may send one second's worth at once; nftables'
bucket holds at least ``MIN_BUCKET`` bytes (two full-size packets), so a packet is
never too big to ever pass even at the lowest rates. Replacing the table refills it.

Quotas (``limits.quota``/``period``) are ``wgf_quota``'s.
"""

import ipaddress
import re

#: The fewest bytes a bucket holds: two packets of a 1500-byte MTU.
MIN_BUCKET = 3000
DIRECTIONS = ("in", "out")
#: Which chains (nftables names) see each direction.
NFT_CHAINS = {"in": ("input", "forward"), "out": ("forward", "output")}
IPT_CHAINS = {"in": ("WIREGUARD-INPUT", "WIREGUARD-FORWARD"), "out": ("WIREGUARD-FORWARD",)}
#: The iptables chain for what the minion itself sends, there only while a rate needs it.
IPT_OUTPUT = ("WIREGUARD-OUTPUT", "OUTPUT")
_SAFE = re.compile(r"[A-Za-z0-9_]")
_FAMILY = {4: "ip", 6: "ip6"}
_LIVE = ("disabled", "expired")


def rated_clients(iface):
    """``[(client name, bytes per second, [addresses])]`` of the interface's present,
    enabled, unexpired clients whose ``limits`` set a ``rate`` (bit/s, rounded up to
    whole bytes), by name."""
    out = []
    for name, client in sorted(iface.get("clients", {}).items()):
        limits = client.get("limits") or {}
        if client.get("absent") or client.get("status") in _LIVE or not limits.get("rate"):
            continue
        if not client.get("address"):
            continue
        out.append((name, -(-limits["rate"] // 8), list(client["address"])))
    return out


def needs_table(iface):
    """Whether a client's ``rate`` needs the formula's firewall on this interface."""
    return bool(rated_clients(iface))


def _ident(text):
    """``text`` as a part of an nftables identifier: letters, digits and ``_`` kept,
    anything else as ``.xx`` (its hex code), so different names stay different."""
    return "".join(c if _SAFE.fullmatch(c) else f".{ord(c):02x}" for c in text)


def nft_limit_name(iface_name, client, direction):
    """The named ``limit`` object of one client and direction."""
    return f"rate_{_ident(iface_name)}_{_ident(client)}_{direction}"


def _version(address):
    return ipaddress.ip_address(address).version


def nft_objects(iface):
    """The table's ``limit`` objects for the rated clients of ``iface`` (lines)."""
    lines = []
    for name, rate, _ in rated_clients(iface):
        burst = max(0, MIN_BUCKET - rate)
        spec = f"rate over {rate} bytes/second" + (f" burst {burst} bytes" if burst else "")
        for direction in DIRECTIONS:
            lines += [
                f"limit {nft_limit_name(iface['name'], name, direction)} {{",
                f"\t{spec}",
                "}",
            ]
    return lines


def nft_rules(iface):
    """``{chain: [rules]}`` (input, forward, output) that hold the rated clients of
    ``iface`` to their rates."""
    chains = {"input": [], "forward": [], "output": []}
    ifname = iface["name"]
    for name, _, addresses in rated_clients(iface):
        comment = f'comment "{ifname} client {name} rate"'
        for direction in DIRECTIONS:
            limit = nft_limit_name(ifname, name, direction)
            for address in addresses:
                family = _FAMILY[_version(address)]
                match = (
                    f'iifname "{ifname}" {family} saddr {address}'
                    if direction == "in"
                    else f'oifname "{ifname}" {family} daddr {address}'
                )
                rule = f'{match} limit name "{limit}" drop {comment}'
                for chain in NFT_CHAINS[direction]:
                    chains[chain].append(rule)
    return chains


def ipt_hashlimit_name(iface_name, client, direction, rate):
    """The ``--hashlimit-name`` of one client and direction (its bucket's name, shared
    by the chains its traffic passes). It holds the rate: the kernel keeps a bucket by
    name while a rule uses it, so a new rate under the old name would keep the old one."""
    return f"wgf_{_ident(iface_name)}_{_ident(client)}_{direction}_{rate}"


def ipt_rules(iface, version):
    """``{chain: [rule arguments]}`` (``WIREGUARD-INPUT``, ``-FORWARD``, ``-OUTPUT``) that
    hold the rated clients of ``iface`` to their rates, for IP ``version``."""
    chains = {"WIREGUARD-INPUT": [], "WIREGUARD-FORWARD": [], IPT_OUTPUT[0]: []}
    ifname = iface["name"]
    prefix = 32 if version == 4 else 128
    for name, rate, addresses in rated_clients(iface):
        comment = f'-m comment --comment "{ifname} client {name} rate"'
        for direction in DIRECTIONS:
            limit = (
                f"-m hashlimit --hashlimit-above {rate}b/s --hashlimit-mode "
                f"{'srcip' if direction == 'in' else 'dstip'} --hashlimit-name "
                f"{ipt_hashlimit_name(ifname, name, direction, rate)}"
            )
            for address in addresses:
                if _version(address) != version:
                    continue
                match = (
                    f"-s {address}/{prefix} -i {ifname}"
                    if direction == "in"
                    else f"-d {address}/{prefix} -o {ifname}"
                )
                rule = f"{match} {limit} {comment} -j DROP"
                for chain in IPT_CHAINS[direction]:
                    chains[chain].append(rule)
                if direction == "out":
                    chains[IPT_OUTPUT[0]].append(rule)
    return chains
