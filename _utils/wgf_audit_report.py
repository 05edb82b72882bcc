"""What the fleet audit shows: the network drawn as Graphviz DOT or Mermaid (each link
coloured by its state), and the readable report of ``salt-run wireguard.audit``. Plain
data in (``wgf_audit.cross_check``'s result and the fleet), text out.
"""

import wgf_findings
import wgf_keys
import wgf_verify_report

SEVERITIES = wgf_findings.SEVERITIES
COLORS = {
    "up": "forestgreen",
    "idle": "gray40",
    "never": "orange",
    "one-sided": "orange",
    "stale": "red",
    "broken": "red",
    "one-way": "red",
    "down": "gray60",
    "external": "gray60",
}


# ------------------------------------------------------------------ pictures


def _nodes(fleet, unknown):
    nodes = {}
    for minion, entry in sorted(fleet.items()):
        parts = [minion]
        for ifname, iface in sorted(entry["interfaces"].items()):
            port = f" :{iface['listen_port']}" if iface["listen_port"] else ""
            parts.append(f"{ifname} {' '.join(iface['addresses'])}{port}".strip())
        nodes[minion] = {"label": parts, "external": False}
    for item in unknown:
        nodes[f"peer:{item['peer']}"] = {
            "label": [
                f"client {item['client']}"
                if item.get("client")
                else f"{item['name'] or 'peer'} (no minion)",
                wgf_keys.short(item["peer"]),
            ],
            "external": True,
        }
    return nodes


def _edges(links, unknown):
    edges = []
    for link in links:
        age = f" {link['age']} s" if link["age"] is not None else ""
        text = f"{link['a_interface']}-{link['b_interface']}: {link['state']}{age}"
        if link["problems"]:
            text += f" ({', '.join(link['problems'])})"
        edges.append((link["a"], link["b"], text, link["state"]))
    for item in unknown:
        edges.append((item["minion"], f"peer:{item['peer']}", item["interface"], "external"))
    return edges


def _dot_escape(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _dot_quote(*lines):
    """A DOT string of one or more lines (DOT writes a line break as \\n)."""
    return '"' + "\\n".join(_dot_escape(line) for line in lines) + '"'


def dot(fleet, links, unknown, title="WireGuard"):
    """Graphviz DOT text: minions as boxes, links labelled with their handshake state."""
    lines = [
        "graph wireguard {",
        f"  graph [label={_dot_quote(title)}, labelloc=t, overlap=false];",
        '  node [shape=box, style="rounded", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for node, info in _nodes(fleet, unknown).items():
        style = ', style="rounded,dashed", color=gray60' if info["external"] else ""
        lines.append(f"  {_dot_quote(node)} [label={_dot_quote(*info['label'])}{style}];")
    for a, b, text, state in _edges(links, unknown):
        style = {
            "one-way": ", style=dashed",
            "external": ", style=dotted",
            "broken": ", penwidth=2",
        }.get(state, "")
        lines.append(
            f"  {_dot_quote(a)} -- {_dot_quote(b)} [label={_dot_quote(text)}, "
            f"color={COLORS.get(state, 'black')}, "
            f"fontcolor={COLORS.get(state, 'black')}{style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text):
    return str(text).replace('"', "#quot;")


def mermaid(fleet, links, unknown):
    """Mermaid flowchart text, one edge per link, coloured by handshake state."""
    nodes = _nodes(fleet, unknown)
    ids = {node: f"n{number}" for number, node in enumerate(nodes)}
    lines = ["graph LR"]
    for node, info in nodes.items():
        lines.append(f'  {ids[node]}["{"<br/>".join(map(_mermaid_text, info["label"]))}"]')
    styles = []
    for number, (a, b, text, state) in enumerate(_edges(links, unknown)):
        arrow = "-.-" if state in ("one-way", "external") else "---"
        lines.append(f'  {ids[a]} {arrow}|"{_mermaid_text(text)}"| {ids[b]}')
        styles.append(f"  linkStyle {number} stroke:{COLORS.get(state, 'black')}")
    return "\n".join(lines + styles) + "\n"


# ------------------------------------------------------------------ reports


def text_report(result):
    counts = {s: 0 for s in SEVERITIES}
    for p in result["problems"]:
        counts[p["severity"]] += 1
    local = [
        (m, p)
        for m, items in sorted(result["local"].items())
        for p in items
        if p["severity"] in ("error", "warning")
    ]
    status = "OK" if result["ok"] else "PROBLEMS"
    lines = [
        f"WireGuard audit: {status}: {len(result['minions'])} minion(s), "
        f"{len(result['links'])} link(s); {counts['error']} error(s), "
        f"{counts['warning']} warning(s) between minions, {len(local)} on single "
        "minions"
    ]
    if result["unreachable"]:
        lines.append(f"Did not answer: {', '.join(result['unreachable'])}")
    for minion, info in sorted(result["minions"].items()):
        if info["error"]:
            lines.append(f"{minion}: could not be audited fully: {info['error']}")
    if result["problems"]:
        lines.append("")
        lines.append("Between minions:")
    for p in result["problems"]:
        lines.append(
            f"  [{p['severity']}] {p['check']}: {p['minion']} ({p['interface']})"
            f" <-> {p['peer_minion']} ({p['peer_interface']}): {p['message']}."
        )
        lines.append(f"      fix: {p['fix']}")
    if local:
        lines.append("")
        lines.append("On single minions (salt <minion> wireguard.check for details):")
    for minion, p in local:
        lines.append(
            f"  [{p['severity']}] {minion} ({p['interface'] or '-'}) {p['check']}: {p['message']}."
        )
        lines.append(f"      fix: {p['fix']}")
    if result["links"]:
        lines.append("")
        lines.append("Links:")
    for link in result["links"]:
        age = f", last handshake {link['age']} s ago" if link["age"] is not None else ""
        lines.append(
            f"  {link['a']} ({link['a_interface']}) <-> {link['b']} "
            f"({link['b_interface']}): {link['state']}{age}"
        )
    ages = [
        f"{minion} {ifname} {age:g}"
        for minion, info in sorted(result["minions"].items())
        for ifname, age in sorted((info.get("key_age_days") or {}).items())
        if age is not None
    ]
    if ages:
        lines.append("")
        lines.append("Key age (days): " + ", ".join(ages))
    if result["unknown_peers"]:
        lines.append("")
        lines.append("Peers that belong to no minion (fine, listed for the record):")
    for item in result["unknown_peers"]:
        name = f"'{item['name']}' " if item["name"] else ""
        name = f"client '{item['client']}' " if item.get("client") else name
        lines.append(
            f"  {item['minion']} ({item['interface']}): {name}{item['peer']}"
            + (f" at {item['endpoint']}" if item["endpoint"] else "")
        )
    verified = result.get("verify")
    if verified:
        lines.append("")
        lines.append("Reachability, static (salt-run wireguard.verify probes live too):")
        if verified.get("error"):
            lines.append(f"  {verified['error']}")
        else:
            lines += ["  " + line for line in wgf_verify_report.text_table(verified).splitlines()]
    if result.get("svg"):
        lines.append(f"\nPicture: {result['svg']}")
    if result.get("graph_error"):
        lines.append(f"\n{result['graph_error']}")
    return "\n".join(lines)
