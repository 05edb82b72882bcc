"""wg-quick config files: rendering from a normalised interface, parsing back into
plain data without secrets, and masking the secrets of a config text.

wg-quick reads a config line by line (``\\n`` only), drops everything after ``#``
and matches keys case-insensitively; ``wg``, which gets the lines wg-quick does not
know (``PrivateKey``, ``PresharedKey``...), also drops every space inside a line. So
do the parser and the masking here.
"""

import difflib
import re

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_firewall
import wgf_keys
import wgf_options
import wgf_tc

MASK = wgf_addr.HIDDEN
HEADER = "# Managed by Salt (wireguard formula): local changes are overwritten."
#: What ``wg`` drops from a config line (its ``char_is_space``) besides the line break.
SPACE = " \t\v\f\r"


def _spaced(word):
    """A pattern of ``word`` with any of wg's spaces between its letters."""
    return f"[{SPACE}]*".join(word)


#: A line that sets a secret, in any case and spacing wg-quick and ``wg`` accept, and
#: the same line commented out (``#PrivateKey = ...``): its key is as secret.
SECRET_LINE = re.compile(
    rf"^([{SPACE}]*(?:[#;][#;{SPACE}]*)?(?:{_spaced('privatekey')}|{_spaced('presharedkey')})"
    rf"[{SPACE}]*=[{SPACE}]*)[^\n]*$",
    re.MULTILINE | re.IGNORECASE,
)
KEY_SHAPED = wgf_addr.KEY_SHAPED
ROUTE_COMMAND = re.compile(r"ip route replace (\S+) dev %i proto static")
#: Past this many peers, with ``table: auto`` and every AllowedIP on-link (none outside
#: the interface's networks, no /0), the file says ``Table = off`` under this line:
#: wg-quick would add no route, but it asks ``ip route show ... match`` once per
#: AllowedIP at start (10,000 clients: 35 s; issue 24). The restart rules read such a
#: file as ``table: auto`` (``wgf_live``).
ON_LINK_PEERS = 200
ON_LINK_NOTE = "# every AllowedIP is on-link: wg-quick has no route to add (wireguard formula)"


def mask(text, public=()):
    """``text`` (a config, a diff, a message) with the value of every PrivateKey and
    PresharedKey line hidden, commented out or not, and every other key-shaped value
    too, except the keys in ``public`` (those the formula knows to be public: see
    ``known_public``). The one masking rule of the formula: whatever it shows of a
    file or a command's output goes through here."""
    return wgf_addr.hide_keys(SECRET_LINE.sub(r"\g<1>" + MASK, str(text or "")), public)


#: Lines of context around each change of a ``masked_diff`` (difflib's default).
DIFF_CONTEXT = 3
#: Lines more around a changed block: repeated lines (a blank one, ``[Peer]``) let a
#: change be aligned a few lines earlier, as difflib aligns it in the whole file.
_SLACK = 8
_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@$")


def masked_diff(path, old, new, public=()):
    """The unified diff of two texts of the file ``path`` (None: no file), both masked
    (``mask``, ``public`` its known public keys). Only the blocks that changed (a file's
    sections, blank-line separated) and their context are masked and compared: a
    10,000-peer file with a peer more, or the first and the last gone, is compared in
    milliseconds, not 0.1-0.2 s (issue 24)."""
    a, b = str(old or "").splitlines(True), str(new or "").splitlines(True)
    hunks = []
    for a_lo, a_hi, b_lo, b_hi in _windows(a, b):
        lines = difflib.unified_diff(
            mask("".join(a[a_lo:a_hi]), public).splitlines(True),
            mask("".join(b[b_lo:b_hi]), public).splitlines(True),
            n=DIFF_CONTEXT,
        )
        hunks += [_shifted(line, a_lo, b_lo) for line in list(lines)[2:]]
    return f"--- {path}\n+++ {path}\n{''.join(hunks)}" if hunks else ""


def _windows(a, b):
    """``(a_lo, a_hi, b_lo, b_hi)`` of each stretch of the line lists ``a`` and ``b``
    that differs, with lines around it for the context, in order and apart: the head
    and tail the texts share are skipped line by line, what is between is matched block
    by block."""
    head, most = 0, min(len(a), len(b))
    while head < most and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < most - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    a_blocks, b_blocks = _blocks(a, head, len(a) - tail), _blocks(b, head, len(b) - tail)
    matcher = difflib.SequenceMatcher(
        None, [text for _, _, text in a_blocks], [text for _, _, text in b_blocks], False
    )
    windows = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        window = [
            *_around(a, _span(a_blocks, i1, i2, len(a) - tail)),
            *_around(b, _span(b_blocks, j1, j2, len(b) - tail)),
        ]
        if windows and (window[0] <= windows[-1][1] or window[2] <= windows[-1][3]):
            windows[-1][1], windows[-1][3] = window[1], window[3]
        else:
            windows.append(window)
    return windows


def _span(blocks, lo, hi, end):
    """``(first, end)`` lines of ``blocks[lo:hi]``; none of them: an empty span where the
    next block starts (or at ``end``)."""
    at = blocks[lo][0] if lo < len(blocks) else end
    return at, blocks[hi - 1][1] if hi > lo else at


def _around(lines, span):
    """``span`` of ``lines`` with the context and ``_SLACK`` around it."""
    more = DIFF_CONTEXT + _SLACK
    return max(0, span[0] - more), min(len(lines), span[1] + more)


def _blocks(lines, start, stop):
    """``(first, end, text)`` of each block of ``lines[start:stop]``: lines up to and
    including a blank one."""
    blocks, first = [], start
    for at in range(start, stop):
        if lines[at].strip() == "" or at == stop - 1:
            blocks.append((first, at + 1, "".join(lines[first : at + 1])))
            first = at + 1
    return blocks


def _shifted(line, a_offset, b_offset):
    """A hunk header of a diff of lines ``a_offset`` (old) and ``b_offset`` (new) on,
    numbered from the file's start."""
    found = _HUNK.match(line.rstrip("\n")) if line.startswith("@@") else None
    if found is None:
        return line
    old_at, old_len, new_at, new_len = found.groups()
    return (
        f"@@ -{int(old_at) + a_offset}{old_len or ''} +{int(new_at) + b_offset}{new_len or ''} @@\n"
    )


def has_key_material(text):
    """Whether ``mask`` would hide anything of ``text``."""
    return mask(text) != str(text or "")


def known_public(configs=(), rendered=(), pillar=None, live=None, own=()):
    """The public keys the formula knows to be public, for ``mask``: the interface's
    own (``own``, and from the PrivateKey of each parsed config in ``configs``), its
    peers' in pillar (a normalised interface ``pillar``, or the parsed configs the
    formula ``rendered`` from pillar) and its live peers' (a ``show`` entry ``live``).
    Not the peers a hand-written file names: those may be anything."""
    keys = set(own)
    for conf in configs:
        keys.add(conf.get("public_key"))
    for conf in rendered:
        keys.add(conf.get("public_key"))
        keys.update(peer.get("public_key") for peer in conf.get("peers", []))
    if pillar:
        keys.update(peer.get("public_key") for peer in pillar.get("peers", {}).values())
    if live:
        keys.add(live.get("public_key"))
        keys.update(live.get("peers") or {})
    return {key for key in keys if isinstance(key, str) and key}


def route_command(cidr):
    """The command that routes ``cidr`` into the interface (``%i``), as written into
    PostUp and run live."""
    return f"ip route replace {wgf_addr.network(cidr, 'route')} dev %i proto static"


def masquerade_lines(iface):
    """PostUp/PostDown lines that forward and NAT traffic from the tunnel (its networks
    as the formula's firewall sees them)."""
    networks = wgf_firewall.tunnel_networks(iface)
    up, down = [], []
    for version, tool in ((4, "iptables"), (6, "ip6tables")):
        nets = networks[version]
        if not nets:
            continue
        rules = [
            ("", "FORWARD -i %i -j ACCEPT"),
            ("", "FORWARD -o %i -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        ]
        rules += [
            ("-t nat ", f"POSTROUTING -s {net} -o {out} -j MASQUERADE")
            for out in iface["masquerade"]
            for net in nets
        ]
        for table, chain in rules:
            up.append(f"{tool} -w {table}-A {chain}")
            down.append(f"{tool} -w {table}-D {chain}")
    return up, down


def render(iface, private_key=MASK, psks=None):
    """The wg-quick config text of one normalised interface (see ``wgf_schema``).
    Keys show as ``<hidden>`` unless given."""
    psks = psks or {}
    lines = [HEADER, "[Interface]"]
    if private_key:
        lines.append(f"PrivateKey = {private_key}")
    lines += wgf_options.conf_lines(iface)
    if _on_link_only(iface):
        lines += [ON_LINK_NOTE, "Table = off"]
    # With a firewall backend the formula's own table NATs (wgf_firewall), live.
    nat_up, nat_down = (
        masquerade_lines(iface)
        if iface["masquerade"] and iface.get("firewall", "none") == "none"
        else ([], [])
    )
    # Client rates (wgf_tc): one fixed line each way while a client is rated; the
    # script it runs is rewritten live, so a change of rates leaves this file alone.
    rates = wgf_tc.hook_lines(iface["name"]) if wgf_tc.rated_clients(iface) else {}
    hooks = {
        "PreUp": iface["pre_up"],
        "PostUp": iface["post_up"] + nat_up + [rates[k] for k in ("PostUp",) if rates],
        "PreDown": [rates[k] for k in ("PreDown",) if rates] + iface["pre_down"],
        "PostDown": iface["post_down"] + nat_down,
    }
    for key, commands in hooks.items():
        lines += [f"{key} = {command}" for command in commands]
    lines += [f"PostUp = {route_command(cidr)}" for cidr in iface["routes"]]
    for name, peer in iface["peers"].items():
        if peer["absent"] or not peer["public_key"]:
            continue
        lines += ["", "[Peer]", f"# {name}", f"PublicKey = {peer['public_key']}"]
        if peer["has_preshared_key"]:
            lines.append(f"PresharedKey = {psks.get(name) or MASK}")
        if peer["allowed_ips"]:
            lines.append(f"AllowedIPs = {', '.join(peer['allowed_ips'])}")
        if peer["endpoint"]:
            lines.append(f"Endpoint = {peer['endpoint']}")
        if peer["persistent_keepalive"]:
            lines.append(f"PersistentKeepalive = {peer['persistent_keepalive']}")
    return "\n".join(lines) + "\n"


def _on_link_only(iface):
    """Whether the file of ``iface`` says ``Table = off`` (see ``ON_LINK_PEERS``)."""
    if iface["table"] != "auto":
        return False
    peers = [p for p in iface["peers"].values() if not p["absent"] and p["public_key"]]
    if len(peers) <= ON_LINK_PEERS:
        return False
    allowed = [cidr for peer in peers for cidr in peer["allowed_ips"]]
    return not wgf_addr.has_default_route(allowed) and not wgf_addr.off_link(
        allowed, iface["address"]
    )


def private_key(text):
    """The PrivateKey of a config text, or None: for the key state to keep the key of
    a hand-written config it takes over; never for showing."""
    for line in (text or "").split("\n"):
        key, sep, value = re.sub(f"[{SPACE}]", "", line.split("#", 1)[0]).partition("=")
        if sep and key.lower() == "privatekey":
            return value or None
    return None


# ------------------------------------------------------------------ parsing


def parse(text):
    """Parse a wg-quick config into plain data without any secret.

    The private key is replaced by its public key (``public_key``), a preshared key by
    ``has_preshared_key``. A peer's name is the first comment after its ``[Peer]`` line
    (the formula writes ``# <name>`` there), unless that comment holds anything shaped
    like a key (a commented-out key line is no name to show). The formula's route lines become
    ``routes``. Values that cannot be read are described in ``errors``, never quoting
    a key.
    """
    conf = {
        "address": [],
        "listen_port": None,
        "mtu": None,
        "table": None,
        "dns": [],
        "fwmark": None,
        "public_key": None,
        "has_private_key": False,
        "routes": [],
        "peers": [],
        "errors": [],
    }
    section, peer, named = None, None, False
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if line.startswith("#"):
            if section == "peer" and not named and not has_key_material(line):
                peer["name"], named = line.lstrip("#").strip() or None, True
            continue
        line = line.split("#", 1)[0].strip()  # wg-quick drops everything after '#'
        if not line:
            continue
        if line.startswith("["):
            header = line.strip("[]").strip().lower()
            section = header if header in ("interface", "peer") else None
            if section is None:
                conf["errors"].append(f"line {number}: unknown section (not [Interface] or [Peer])")
            if section == "peer":
                peer, named = (
                    {
                        "name": None,
                        "public_key": None,
                        "allowed_ips": [],
                        "endpoint": None,
                        "persistent_keepalive": None,
                        "has_preshared_key": False,
                    },
                    False,
                )
                conf["peers"].append(peer)
            continue
        key, sep, value = line.partition("=")
        key, value = re.sub(f"[{SPACE}]", "", key).lower(), value.strip()
        if not sep or section is None:
            conf["errors"].append(f"line {number}: not a 'Key = value' line of a section")
            continue
        try:
            if section == "interface":
                _interface_value(conf, key, value)
            else:
                named = True
                _peer_value(peer, key, value)
        except (ValueError, SaltInvocationError) as exc:
            conf["errors"].append(mask(f"line {number}: {exc}"))
    return conf


def _number(value, what):
    if value.lower() == "off":
        return None
    try:
        return wgf_addr.integer(value, what, 0, 2**32 - 1, what)
    except SaltInvocationError:
        raise ValueError(f"{what} {value[:20]!r} is not a number") from None


def _interface_value(conf, key, value):
    if key == "address":
        for item in wgf_addr.as_list(value):
            conf["address"].append(wgf_addr.interface_address(item, "Address"))
    elif key == "listenport":
        conf["listen_port"] = _number(value, "ListenPort")
    elif key == "mtu":
        conf["mtu"] = _number(value, "MTU")
    elif key == "table":
        conf["table"] = value
    elif key == "dns":
        conf["dns"] += wgf_addr.as_list(value)
    elif key == "fwmark":
        conf["fwmark"] = _number(value, "FwMark") or None
    elif key == "privatekey":
        conf["has_private_key"] = True
        try:
            conf["public_key"] = wgf_keys.pubkey(value)
        except SaltInvocationError:
            raise ValueError("PrivateKey is not a valid key") from None
    elif key == "postup":
        match = ROUTE_COMMAND.fullmatch(value)
        if match:
            conf["routes"].append(wgf_addr.network(match.group(1), "PostUp route"))


def _peer_value(peer, key, value):
    if key == "publickey":
        wgf_keys.decode(value, "PublicKey")
        peer["public_key"] = value
    elif key == "presharedkey":
        peer["has_preshared_key"] = bool(value)
    elif key == "allowedips":
        peer["allowed_ips"] += [
            wgf_addr.network(item, "AllowedIPs") for item in wgf_addr.as_list(value)
        ]
    elif key == "endpoint":
        peer["endpoint"] = value
    elif key == "persistentkeepalive":
        peer["persistent_keepalive"] = _number(value, "PersistentKeepalive") or None


# ------------------------------------------------------------------ reading


def read_file(path):
    """``(path, parsed conf or None, raw text or None, error or None)`` of the conf at
    ``path``: no file is no error, a file that cannot be read is (its text says why,
    never what it holds)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return path, None, None, None
    except OSError as exc:
        return path, None, None, f"{path} cannot be read: {exc.strerror}"
    return path, parse(text), text, None
