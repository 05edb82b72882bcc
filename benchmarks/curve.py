"""Pure helpers of the fleet-scale benchmark: the cost model fit and the SVG picture.

The fit is ``cost(N) = a + b*N + c*N**2`` with a, b, c >= 0, by least squares: a fixed
part, a part per node and a part per pair of nodes. Costs cannot shrink as a fleet
grows, so a coefficient the noise would make negative is held at 0 instead; a term that
the points do not support is left out (information criterion).
"""

from __future__ import annotations

import itertools
import math
from html import escape

TERMS = ("fixed", "per_node", "per_pair")  # a, b, c of a + b*N + c*N**2


def _solve(matrix, vector):
    """Gaussian elimination with partial pivoting; None when singular."""
    size = len(vector)
    rows = [[*row, value] for row, value in zip(matrix, vector, strict=True)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(rows[r][col]))
        if abs(rows[pivot][col]) < 1e-12:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(size):
            if r != col:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [x - factor * y for x, y in zip(rows[r], rows[col], strict=True)]
    return [rows[i][size] / rows[i][i] for i in range(size)]


def _dot(xs, ys):
    return sum(x * y for x, y in zip(xs, ys, strict=True))


def fit_cost(points):
    """Non-negative least squares of ``a + b*N + c*N**2`` through ``[(N, cost), ...]``.

    Returns ``{"fixed": a, "per_node": b, "per_pair": c}``. Every subset of the three
    terms with fewer terms than points is fitted; among those with no negative
    coefficient, the lowest Bayesian information criterion wins, so that a term the
    noise of a few points would invent (an N**2 that is not there) costs more than it
    explains, and a term that is there is kept.
    """
    if not points:
        raise ValueError("no points to fit")
    costs = [cost for _, cost in points]
    floor = 1e-12 * (_dot(costs, costs) + 1e-300)  # an exact fit is not infinitely good
    best, best_score = None, math.inf
    for size in range(1, len(TERMS) + 1):
        for used in itertools.combinations(range(len(TERMS)), size):
            if len(used) >= len(points) and len(points) > 1:
                continue
            columns = [[n**power for n, _ in points] for power in used]
            normal = [[_dot(ci, cj) for cj in columns] for ci in columns]
            rhs = [_dot(ci, costs) for ci in columns]
            solution = _solve(normal, rhs)
            if solution is None or min(solution) < 0:
                continue
            coefs = [0.0] * len(TERMS)
            for power, value in zip(used, solution, strict=True):
                coefs[power] = value
            fit = dict(zip(TERMS, coefs, strict=True))
            error = sum((predict(fit, n) - cost) ** 2 for n, cost in points)
            score = len(points) * math.log(max(error, floor) / len(points)) + len(used) * math.log(
                len(points)
            )
            if score < best_score - 1e-9:
                best, best_score = fit, score
    return best


def predict(fit, nodes):
    return fit["fixed"] + fit["per_node"] * nodes + fit["per_pair"] * nodes**2


# ---------------------------------------------------------------------------- picture
COLOURS = {"mesh": "#1f77b4", "hub": "#d62728"}
PANEL_W, PANEL_H, MARGIN = 420, 260, 55


def nice_ceiling(value):
    """The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is >= value."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _panel(title, unit, series, x_values, left, top):
    """One line chart. series: [(label, colour, dashed, [(N, value), ...])]."""
    width, height = PANEL_W - MARGIN - 15, PANEL_H - 2 * MARGIN + 10
    x0, y0 = left + MARGIN, top + 35
    # head room above the highest point for the legend
    top_value = max([v for *_, pts in series for _, v in pts] or [1])
    y_max = 4 * nice_ceiling(top_value * (1 + 0.1 * len(series)) / 4)
    x_max = max(x_values)

    def xy(n, v):
        return x0 + width * n / x_max, y0 + height * (1 - v / y_max)

    out = [
        f'<text x="{left + PANEL_W / 2}" y="{top + 18}" text-anchor="middle" '
        f'font-weight="bold">{escape(title)}</text>',
        f'<rect x="{x0}" y="{y0}" width="{width}" height="{height}" fill="none" stroke="#999"/>',
    ]
    for i in range(5):
        value = y_max * i / 4
        _, y = xy(0, value)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + width}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{x0 - 5}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    for n in x_values:
        x, _ = xy(n, 0)
        out.append(f'<text x="{x:.1f}" y="{y0 + height + 15}" text-anchor="middle">{n}</text>')
    out.append(
        f'<text x="{x0 + width / 2}" y="{y0 + height + 32}" text-anchor="middle">minions (N)</text>'
    )
    out.append(
        f'<text x="{left + 12}" y="{y0 + height / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {left + 12} {y0 + height / 2})">{escape(unit)}</text>'
    )
    for row, (label, colour, dashed, pts) in enumerate(series):
        pts = sorted(pts)
        if not pts:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(n, v) for n, v in pts))
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        for n, v in pts:
            x, y = xy(n, v)
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        ly = y0 + 12 + 15 * row
        out.append(
            f'<line x1="{x0 + 8}" y1="{ly - 4}" x2="{x0 + 30}" y2="{ly - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{x0 + 35}" y="{ly}">{escape(label)}</text>')
    return out


def svg_curves(runs, title):
    """An SVG (text) with four panels: converge, join, audit time and peak memory
    against N, one line per topology (memory: master solid, minion dashed)."""
    topologies = sorted({r["topology"] for r in runs})
    x_values = sorted({r["nodes"] for r in runs})

    def points(topo, key):
        return [
            (r["nodes"], r[key]) for r in runs if r["topology"] == topo and r.get(key) is not None
        ]

    def series(key, label=""):
        return [
            (f"{topo}{label}", COLOURS.get(topo, "#555"), False, points(topo, key))
            for topo in topologies
        ]

    memory = [
        (f"{topo}: {who}", COLOURS.get(topo, "#555"), dashed, points(topo, key))
        for topo in topologies
        for key, who, dashed in (
            ("master_peak_mib", "master", False),
            ("minion_peak_mib", "minion", True),
        )
    ]
    panels = [
        ("Converge (orchestrate + every pair pings)", "seconds", series("converge_s")),
        ("One more node joins (live)", "seconds", series("join_s")),
        ("salt-run wireguard.audit", "seconds", series("audit_s")),
        ("Peak memory (sum of VmHWM)", "MiB", memory),
    ]
    body = []
    for i, (name, unit, data) in enumerate(panels):
        body += _panel(name, unit, data, x_values, (i % 2) * PANEL_W, 30 + (i // 2) * PANEL_H)
    total_w, total_h = 2 * PANEL_W, 30 + 2 * PANEL_H
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
            f'viewBox="0 0 {total_w} {total_h}" font-family="sans-serif" font-size="11">',
            f'<rect width="{total_w}" height="{total_h}" fill="white"/>',
            f'<text x="{total_w / 2}" y="20" text-anchor="middle" font-size="14" '
            f'font-weight="bold">{escape(title)}</text>',
            *body,
            "</svg>",
            "",
        ]
    )
