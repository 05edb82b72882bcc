"""Client ``rate`` limits (issue 23, pillar ``limits.rate``) as tc shaping on the
WireGuard interface, the same whatever the firewall backend.

Pure: the tc commands, the interface's rates script and the reading of what tc shows;
the host adapter (``wgf_host.Host.tc_live``/``tc_apply``) runs them, the state
``wireguard.client_rates`` decides.

- **To the client** (egress of the interface): an HTB qdisc ``1:`` at the root, one
  class ``1:<minor>`` per rated client (rate = ceil = its rate), u32 filters on each of
  its addresses (destination, IPv4 and IPv6) leading there, and a default class ``1:1``
  that is not shaped (10 gbit/s) for everything else.
- **From the client** (ingress of the interface): the ingress qdisc redirects every
  packet (``mirred``) to an IFB device (``ifb_name``), which has the same HTB classes
  with u32 filters on the source addresses.
- **Burst**: each class may send ``burst(rate)`` bytes at once after an idle spell:
  50 ms of its rate, at least ``MIN_BURST`` (ten full-size packets). At 2 mbit/s that is
  15,000 bytes, so 1 MB takes at least (1,000,000 - 15,000) / 250,000 = 3.94 s.

Kept across restarts and reboots: wg-quick deletes the device and its qdiscs, so the
interface's config runs the script at up (``hook_lines``: ``PostUp``) and removes the
IFB at down (``PreDown``). The script is written for the rated clients of the moment;
the hook line never changes, so a change of rates never changes the config.
"""

import hashlib
import ipaddress
import re

#: Where the interfaces' rates scripts are kept (root-only), ``<interface>.sh``.
STATE_ROOT = "/var/lib/wireguard-formula/rates"
#: The burst: this many seconds of the rate, and never less than MIN_BURST bytes.
BURST_SECONDS = 0.05
MIN_BURST = 15000
#: The class of everything no rated client sends or receives: in effect unshaped.
DEFAULT_MINOR = 1
DEFAULT_RATE = "10gbit"
DEFAULT_BURST = 1250000
#: The first class of a rated client; they follow in the order of the clients' names.
FIRST_MINOR = 0x10
#: HTB's quantum of every class (only used to share spare rate, which no class borrows):
#: above any MTU, and set so that the kernel does not warn about computed ones.
QUANTUM = 65536
IFB_QUEUE = 1000
_LIVE = ("disabled", "expired")
_IFNAMSIZ = 15
_CLASS = re.compile(r"^class htb 1:([0-9a-f]+) ", re.M)


def burst(rate):
    """The burst in bytes of a class of ``rate`` bit/s."""
    return max(MIN_BURST, int(rate / 8 * BURST_SECONDS))


def rated_clients(iface):
    """``[(client name, rate in bit/s, [addresses])]`` of the interface's present,
    enabled, unexpired clients whose ``limits`` set a ``rate``, by name."""
    out = []
    for name, client in sorted(iface.get("clients", {}).items()):
        limits = client.get("limits") or {}
        if client.get("absent") or client.get("status") in _LIVE or not limits.get("rate"):
            continue
        if client.get("address"):
            out.append((name, limits["rate"], list(client["address"])))
    return out


def classes(iface):
    """``[{"minor", "client", "rate", "burst", "addresses"}]`` of the rated clients."""
    return [
        {
            "minor": FIRST_MINOR + n,
            "client": name,
            "rate": rate,
            "burst": burst(rate),
            "addresses": addresses,
        }
        for n, (name, rate, addresses) in enumerate(rated_clients(iface))
    ]


def ifb_name(interface):
    """The IFB device of ``interface``'s ingress: ``<interface>-ifb`` when that fits an
    interface name (15 characters), else ``ifb-`` and a digest of the name."""
    name = f"{interface}-ifb"
    if len(name) <= _IFNAMSIZ:
        return name
    return "ifb-" + hashlib.sha256(interface.encode()).hexdigest()[: _IFNAMSIZ - 4]


def script_path(interface, root=None):
    return f"{root or STATE_ROOT}/{interface}.sh"


def hook_lines(interface, root=None):
    """``{hook: command}`` the interface's config carries while it has rated clients:
    the script applies the rates at up and removes the IFB at down; a missing script
    (not written yet, or removed) is skipped."""
    path = script_path(interface, root)
    return {
        "PostUp": f"test ! -f {path} || sh {path} up",
        "PreDown": f"test ! -f {path} || sh {path} down",
    }


def is_hook(command, root=None):
    """Whether ``command`` (a hook line's value) is one of ``hook_lines``: these are
    applied live, and their coming or going needs no restart."""
    path = re.escape(root or STATE_ROOT) + r"/[^/\s]+\.sh"
    return bool(re.fullmatch(rf"test ! -f ({path}) \|\| sh \1 (up|down)", command))


def _rate(bits):
    return f"{bits}bit"


def _classes(dev, wanted):
    lines = [
        f"class replace dev {dev} parent 1: classid 1:{DEFAULT_MINOR:x} htb rate "
        f"{DEFAULT_RATE} burst {DEFAULT_BURST}b cburst {DEFAULT_BURST}b quantum {QUANTUM}"
    ]
    for c in wanted:
        lines.append(
            f"class replace dev {dev} parent 1: classid 1:{c['minor']:x} htb rate "
            f"{_rate(c['rate'])} ceil {_rate(c['rate'])} burst {c['burst']}b "
            f"cburst {c['burst']}b quantum {QUANTUM}"
        )
    return lines


def _filters(dev, wanted, side):
    lines = []
    for c in wanted:
        for address in c["addresses"]:
            ip = ipaddress.ip_address(address)
            match = (
                f"protocol ip prio 1 u32 match ip {side} {ip}/32"
                if ip.version == 4
                else f"protocol ipv6 prio 2 u32 match ip6 {side} {ip}/128"
            )
            lines.append(f"filter add dev {dev} parent 1: {match} flowid 1:{c['minor']:x}")
    return lines


def _side(dev, wanted, live, side):
    """The batch lines of one device (``side``: ``dst`` on the interface, ``src`` on the
    IFB) from its ``live`` state (``parse_live``; None: nothing there)."""
    live = live or {"root": False, "classes": set()}
    lines = []
    if live["root"]:
        lines.append(f"filter del dev {dev} parent 1:")  # all of them; re-added below
    else:
        lines.append(f"qdisc replace dev {dev} root handle 1: htb default {DEFAULT_MINOR:x}")
    lines += _classes(dev, wanted)
    keep = {DEFAULT_MINOR} | {c["minor"] for c in wanted}
    lines += [f"class del dev {dev} classid 1:{m:x}" for m in sorted(live["classes"] - keep)]
    return lines + _filters(dev, wanted, side)


def batch(interface, wanted, live=None):
    """``(ip commands before, tc batch lines, ip commands after)`` that make the shaping
    of ``interface`` ``wanted`` (``classes``) from its ``live`` state (``parse_live``;
    None: a new device): classes of rated clients are changed in place (their queues
    kept), the filters replaced, classes of clients no longer rated removed. With
    nothing wanted: everything goes (the ingress before the IFB)."""
    ifb = ifb_name(interface)
    live = live or {"dev": None, "ingress": False, "ifb": None}
    if not wanted:
        after = [["ip", "link", "del", ifb]] if live["ifb"] is not None else []
        lines = [f"qdisc del dev {interface} root"] if (live["dev"] or {}).get("root") else []
        if live["ingress"]:  # before the IFB goes: nothing is redirected to it then
            lines.append(f"qdisc del dev {interface} ingress")
        return [], lines, after
    argv = []
    if live["ifb"] is None:
        argv = [
            ["ip", "link", "add", ifb, "txqueuelen", str(IFB_QUEUE), "type", "ifb"],
            ["ip", "link", "set", ifb, "up"],
        ]
    lines = _side(ifb, wanted, live["ifb"], "src")
    lines += _side(interface, wanted, live["dev"], "dst")
    if live["ingress"]:
        lines.append(f"filter del dev {interface} parent ffff:")
    else:
        lines.append(f"qdisc add dev {interface} handle ffff: ingress")
    lines.append(
        f"filter add dev {interface} parent ffff: protocol all prio 1 u32 match u32 0 0 "
        f"action mirred egress redirect dev {ifb}"
    )
    return argv, lines, []


def _device(qdiscs, class_text):
    return {
        "root": bool(re.search(r"^qdisc htb 1: root ", qdiscs, re.M)),
        "classes": {int(m, 16) for m in _CLASS.findall(class_text)},
    }


def parse_live(shown):
    """The live state from what ``Host.tc_live`` read: ``{"dev": {"root", "classes"},
    "ingress": bool, "ifb": {"root", "classes"} or None (no IFB device)}``."""
    return {
        "dev": _device(shown["qdisc"], shown["class"]),
        "ingress": bool(re.search(r"^qdisc ingress ffff: ", shown["qdisc"], re.M)),
        "ifb": None
        if shown.get("ifb_qdisc") is None
        else _device(shown["ifb_qdisc"], shown["ifb_class"]),
    }


def live_matches(live, wanted):
    """Whether the live state has exactly the classes ``wanted`` needs (or nothing at
    all when none is wanted)."""
    if not wanted:
        return not (live["dev"]["root"] or live["ingress"] or live["ifb"] is not None)
    minors = {DEFAULT_MINOR} | {c["minor"] for c in wanted}
    return (
        live["ingress"]
        and live["ifb"] is not None
        and all(d["root"] and d["classes"] == minors for d in (live["dev"], live["ifb"]))
    )


def script(interface, wanted):
    """The interface's rates script (``sh SCRIPT up|down``): at up, a fresh IFB and the
    whole shaping of ``wanted``; at down, the IFB goes (the device's own qdiscs go with
    it). Its comment lines name each class (``rates_of`` reads them back). A failure is
    printed, never returned: wg-quick would take the interface down."""
    ifb = ifb_name(interface)
    argv, lines, _ = batch(interface, wanted)
    head = [
        "#!/bin/sh",
        f"# The client rates of {interface} (wireguard formula, wireguard.client_rates):",
        "# run by wg-quick at PostUp (up) and PreDown (down). Rewritten at every change.",
    ]
    head += [
        f"# client {c['client']} rate {c['rate']} burst {c['burst']} class 1:{c['minor']:x}"
        for c in wanted
    ]
    # a failure must not stop wg-quick (the tunnel would not come up): it says so, and
    # the next apply finds the shaping missing and puts it back
    body = [
        f'if [ "$1" = down ]; then ip link del {ifb} 2>/dev/null; exit 0; fi',
        f"ip link del {ifb} 2>/dev/null",
        f"tc qdisc del dev {interface} root 2>/dev/null",
        f"tc qdisc del dev {interface} ingress 2>/dev/null",
        "if ! {",
        *[" ".join(a) + " &&" for a in argv],
        "tc -batch - <<'EOF'",
        *lines,
        "EOF",
        "}; then",
        f'    echo "wireguard formula: the client rates of {interface} are not applied" >&2',
        "fi",
        "exit 0",
    ]
    return "\n".join(head + body) + "\n"


def rates_of(text):
    """``{client: {"rate", "burst"}}`` named in a rates script (None: no script)."""
    found = re.findall(r"^# client (\S+) rate (\d+) burst (\d+) ", text or "", re.M)
    return {name: {"rate": int(rate), "burst": int(b)} for name, rate, b in found}


def changes(old_text, wanted):
    """``{client: {"old", "new"}}``: each client whose rate or burst comes, goes or
    changes, between the script ``old_text`` and ``wanted``."""
    old = rates_of(old_text)
    new = {c["client"]: {"rate": c["rate"], "burst": c["burst"]} for c in wanted}
    return {
        name: {"old": old.get(name), "new": new.get(name)}
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    }
