"""Charts as server-rendered inline SVG: no JavaScript library, no style attributes.

The page's CSP forbids inline styles, so every colour and stroke comes from
classes in static/app.css ("Reports" section): chart-s0, chart-s1, ... per
series. Each SVG is role="img" with a <title> and a <desc> that says what it
shows in words; the templates put the same numbers in a table next to it
for screen readers and for anyone who wants the exact values.
"""
import itertools

from markupsafe import Markup
from markupsafe import escape

WIDTH = 640
HEIGHT = 220
LEFT = 44  # room for the y-axis labels
BOTTOM = 24  # room for the x-axis labels
TOP = 10
RIGHT = 10

_ids = itertools.count(1)


def _nice_max(value):
    """A round number at or above `value` for the top of the y axis (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _number(value):
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def _frame(title, description, top_value, labels, body):
    uid = next(_ids)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-labelledby="chart-{uid}-title chart-{uid}-desc" focusable="false">',
             f'<title id="chart-{uid}-title">{escape(title)}</title>',
             f'<desc id="chart-{uid}-desc">{escape(description)}</desc>']
    for i in range(5):  # gridlines at 0, 25, 50, 75, 100 % of the axis
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="chart-grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="chart-axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{_number(top_value * i / 4)}</text>')
    if labels:
        shown = sorted({0, len(labels) // 2, len(labels) - 1})
        for index in shown:
            x = LEFT + (plot_w * (index + 0.5) / len(labels))
            anchor = "start" if index == 0 and len(labels) > 1 else ("end" if index == len(labels) - 1
                                                                       and len(labels) > 1 else "middle")
            parts.append(f'<text class="chart-axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
                         f'{escape(labels[index])}</text>')
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))


def _describe(labels, series):
    if not labels:
        return "No data yet."
    bits = [f"{name}: {sum(values):,} in total, at most {max(values):,} in one period"
            for name, values in series]
    return f"From {labels[0]} to {labels[-1]}. " + "; ".join(bits) + "."


def line_chart(title, labels, series, description=None):
    """A line per series [(name, values)], one point per label, sharing a y axis from 0. `description`
    replaces the generated one (totals and peaks per period), which running totals would misstate."""
    top_value = _nice_max(max((max(values) for _, values in series if values), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = []
    count = len(labels)
    for index, (name, values) in enumerate(series):
        points = " ".join(f"{LEFT + plot_w * (i + 0.5) / count:.1f},{TOP + plot_h - plot_h * v / top_value:.1f}"
                          for i, v in enumerate(values))
        if count == 1:  # one point: draw a dot, a line needs two
            x, y = points.split(",")
            body.append(f'<circle class="chart-dot chart-s{index}" cx="{x}" cy="{y}" r="4"/>')
        elif points:
            body.append(f'<polyline class="chart-line chart-s{index}" points="{points}"/>')
    return _frame(title, description or _describe(labels, series), top_value, labels, body)


def bar_chart(title, labels, series, description=None):
    """Grouped bars: for each label, one bar per series [(name, values)]. `description` replaces the generated
    one, for values the plain totals would misstate (money, with its unit)."""
    top_value = _nice_max(max((max(values) for _, values in series if values), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = []
    count = max(len(labels), 1)
    slot = plot_w / count
    width = max(1.0, slot * 0.8 / max(len(series), 1))
    for index, (name, values) in enumerate(series):
        for i, value in enumerate(values):
            if not value:
                continue
            height = plot_h * value / top_value
            x = LEFT + slot * i + slot * 0.1 + width * index
            body.append(f'<rect class="chart-bar chart-s{index}" x="{x:.1f}" y="{TOP + plot_h - height:.1f}" '
                        f'width="{width:.1f}" height="{height:.1f}"><title>{escape(name)}, '
                        f'{escape(labels[i])}: {value:,}</title></rect>')
    return _frame(title, description or _describe(labels, series), top_value, labels, body)
