#!/usr/bin/env python3
"""One-more-port latency against total ports, Weft and OVN (issue 17).

Reads a CSV with the columns
    system,hosts,ports_per_host,total_ports,median_ms,p99_ms,date
(one row per `weft-bench compare` run and system, as in docs/one-more-port.csv) and writes an
SVG line plot (log-scaled axes, median solid with p99 dashed, one colour per system and host
count). Standard library only.

    python3 bench/plot_one_more_port.py docs/one-more-port.csv docs/one-more-port.svg
"""

import csv
import math
import sys

W, H = 900, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 300, 40, 60
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def load(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("system")]
    for r in rows:
        r["total_ports"] = int(r["total_ports"])
        r["median_ms"] = float(r["median_ms"])
        r["p99_ms"] = float(r["p99_ms"])
    return rows


def nice_max(v):
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def render(rows, title):
    xs = [r["total_ports"] for r in rows]
    x0, x1 = math.log10(min(xs) / 1.3), math.log10(max(xs) * 1.3)
    ys = [v for r in rows for v in (r["p99_ms"], r["median_ms"]) if v > 0]
    y0 = math.floor(math.log10(min(ys)))
    y1 = math.ceil(math.log10(max(ys)))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x):
        return LEFT + (math.log10(x) - x0) / (x1 - x0) * pw

    def py(y):
        return TOP + ph - (math.log10(max(y, 10 ** y0)) - y0) / (y1 - y0) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14">{title}</text>',
        f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="black"/>',
    ]
    yticks = [m * 10 ** e for e in range(y0, y1 + 1) for m in (1, 2, 5) if m * 10 ** e <= 10 ** y1]
    for y in yticks:
        out.append(f'<line x1="{LEFT}" y1="{py(y):.1f}" x2="{LEFT + pw}" y2="{py(y):.1f}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    last = None
    for t in sorted(set(xs)):
        if last is not None and px(t) - px(last) < 30:
            continue
        last = t
        out.append(f'<line x1="{px(t):.1f}" y1="{TOP + ph}" x2="{px(t):.1f}" y2="{TOP + ph + 5}" '
                   f'stroke="black"/>')
        out.append(f'<text x="{px(t):.1f}" y="{TOP + ph + 18}" text-anchor="middle">{t:,}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 15}" text-anchor="middle">'
               f'total ports (log scale)</text>')
    out.append(f'<text x="16" y="{TOP + ph / 2}" transform="rotate(-90 16 {TOP + ph / 2})" '
               f'text-anchor="middle">one more port, --wait=hv (ms, log scale)</text>')
    series = {}
    for r in rows:
        series.setdefault((r["system"], r["hosts"]), []).append(r)
    ly = TOP + 10
    for i, ((system, hosts), pts) in enumerate(sorted(series.items())):
        c = COLOURS[i % len(COLOURS)]
        pts.sort(key=lambda r: r["total_ports"])
        for key, dash in (("median_ms", ""), ("p99_ms", ' stroke-dasharray="5,4"')):
            path = " ".join(f"{px(p['total_ports']):.1f},{py(p[key]):.1f}" for p in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
            for p in pts:
                out.append(f'<circle cx="{px(p["total_ports"]):.1f}" cy="{py(p[key]):.1f}" r="3" '
                           f'fill="{c}"/>')
        out.append(f'<line x1="{LEFT + pw + 15}" y1="{ly}" x2="{LEFT + pw + 40}" y2="{ly}" '
                   f'stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{LEFT + pw + 45}" y="{ly + 4}">{system}, {hosts} hosts, median</text>')
        ly += 18
        out.append(f'<line x1="{LEFT + pw + 15}" y1="{ly}" x2="{LEFT + pw + 40}" y2="{ly}" '
                   f'stroke="{c}" stroke-width="2" stroke-dasharray="5,4"/>')
        out.append(f'<text x="{LEFT + pw + 45}" y="{ly + 4}">{system}, {hosts} hosts, p99</text>')
        ly += 24
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_one_more_port.py DATA.csv OUT.svg")
    rows = load(sys.argv[1])
    if not rows:
        sys.exit(f"{sys.argv[1]}: no rows")
    with open(sys.argv[2], "w") as f:
        f.write(render(rows, "One more port vs deployment size (weft-bench compare)"))


if __name__ == "__main__":
    main()
