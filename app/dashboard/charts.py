"""Charts as inline SVG text, drawn on the server: numbers in, markup out (no Flask, no SQL).

The dashboard needs no JavaScript and no CDN: each chart is an <svg> element in the page. Every
mark carries a <title> (the browser shows it on hover) and data-* attributes with its values,
so a test can read what was drawn. Colours and fonts come from the CSS classes (dashboard.css);
the markup uses presentation attributes only, never style="", which the pages' Content
Security Policy forbids. Every text is escaped here, so callers may pass any label.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 640, 220
MARGIN = {"left": 56, "right": 16, "top": 16, "bottom": 40}


@dataclass
class Series:
    """One line of a line chart: (x, y) points in order; y None leaves a gap."""
    name: str
    points: Sequence[tuple[float, float | None]]
    css: str = "s0"                      # the CSS class of its colour: s0 .. s5
    labels: Sequence[str] = field(default_factory=list)   # per point, for its tooltip (else x)


def _fmt(v: float) -> str:
    """A number for a label: short, no float noise."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """About `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = [round(first, 10)]
    while ticks[-1] < hi - step * 1e-9:      # up to the first tick at or above hi
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


class _Frame:
    """Maps data to pixels inside the margins."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float, width: int, height: int):
        self.x0, self.x1 = x0, (x1 if x1 > x0 else x0 + 1)
        self.y0, self.y1 = y0, (y1 if y1 > y0 else y0 + 1)
        self.left, self.right = MARGIN["left"], width - MARGIN["right"]
        self.top, self.bottom = MARGIN["top"], height - MARGIN["bottom"]

    def x(self, v: float) -> float:
        return round(self.left + (v - self.x0) / (self.x1 - self.x0) * (self.right - self.left), 1)

    def y(self, v: float) -> float:
        return round(self.bottom - (v - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top), 1)


def _open(kind: str, label: str, width: int, height: int) -> list[str]:
    return [f'<svg class="chart {kind}" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
            f"<title>{escape(label)}</title>"]


def _y_axis(frame: _Frame, ticks: list[float], label: str, fmt=_fmt) -> list[str]:
    out = []
    for t in ticks:
        y = frame.y(t)
        out.append(f'<line class="grid" x1="{frame.left}" x2="{frame.right}" y1="{y}" y2="{y}"/>')
        out.append(f'<text class="tick" x="{frame.left - 6}" y="{y + 4}" text-anchor="end">{escape(fmt(t))}</text>')
    if label:
        mid = (frame.top + frame.bottom) / 2
        out.append(f'<text class="axis-label" x="12" y="{mid}" text-anchor="middle" '
                   f'transform="rotate(-90 12 {mid})">{escape(label)}</text>')
    out.append(f'<line class="axis" x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" y2="{frame.bottom}"/>')
    out.append(f'<line class="axis" x1="{frame.left}" x2="{frame.right}" y1="{frame.bottom}" y2="{frame.bottom}"/>')
    return out


def _empty(kind: str, label: str, width: int, height: int, message: str) -> str:
    return "".join(_open(kind, label, width, height) + [
        f'<text class="empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">{escape(message)}</text>',
        "</svg>"])


def line_chart(series: Sequence[Series], *, label: str, y_label: str = "", x_ticks: Sequence[tuple[float, str]] = (),
               y_range: tuple[float, float] | None = None, width: int = WIDTH, height: int = HEIGHT,
               empty: str = "no data yet") -> str:
    """Lines with a dot per point. x_ticks: (x, text) pairs to label the x axis."""
    pts = [(x, y) for s in series for x, y in s.points if y is not None]
    if not pts:
        return _empty("line-chart", label, width, height, empty)
    xs = [x for s in series for x, _ in s.points]      # the whole x range, gaps included
    ys = [p[1] for p in pts]
    lo, hi = y_range if y_range else (min(0.0, min(ys)), max(ys))
    ticks = nice_ticks(lo, hi)
    x0, x1 = min(xs), max(xs)
    if x0 == x1:        # one point: in the middle, not on the axis
        x0, x1 = x0 - 1, x1 + 1
    frame = _Frame(x0, x1, min(ticks[0], lo), max(ticks[-1], hi), width, height)
    out = _open("line-chart", label, width, height) + _y_axis(frame, ticks, y_label)
    for x, text in x_ticks:
        px = frame.x(x)
        out.append(f'<text class="tick" x="{px}" y="{frame.bottom + 16}" text-anchor="middle">{escape(text)}</text>')
    for s in series:
        out.append(f'<g class="series {escape(s.css)}" data-name="{escape(s.name)}">')
        run: list[str] = []
        for x, y in s.points:
            if y is None:
                if len(run) > 1:
                    out.append(f'<polyline fill="none" points="{" ".join(run)}"/>')
                run = []
                continue
            run.append(f"{frame.x(x)},{frame.y(y)}")
        if len(run) > 1:
            out.append(f'<polyline fill="none" points="{" ".join(run)}"/>')
        for k, (x, y) in enumerate(s.points):
            if y is None:
                continue
            where = s.labels[k] if k < len(s.labels) else _fmt(x)
            out.append(f'<circle class="point" cx="{frame.x(x)}" cy="{frame.y(y)}" r="3" data-x="{x}" data-y="{y}">'
                       f"<title>{escape(s.name)} · {escape(where)}: {escape(_fmt(y))}</title></circle>")
        out.append("</g>")
    if len(series) > 1:
        out += _legend([(s.name, s.css) for s in series], frame)
    out.append("</svg>")
    return "".join(out)


def _legend(entries: list[tuple[str, str]], frame: _Frame) -> list[str]:
    out, x = [], frame.left + 8
    for name, css in entries:
        out.append(f'<g class="legend {escape(css)}"><rect x="{x}" y="{frame.top}" width="10" height="10"/>'
                   f'<text class="tick" x="{x + 14}" y="{frame.top + 9}">{escape(name)}</text></g>')
        x += 24 + 7 * len(name)
    return out


def bar_chart(bars: Sequence[tuple[str, float]], *, label: str, y_label: str = "", every: int = 1,
              width: int = WIDTH, height: int = HEIGHT, css: str = "s0", empty: str = "no data yet") -> str:
    """One bar per (label, value), labels under every `every`-th bar."""
    if not bars:
        return _empty("bar-chart", label, width, height, empty)
    ticks = nice_ticks(0.0, max(max(v for _, v in bars), 0.0) or 1.0)
    frame = _Frame(0, len(bars), 0, ticks[-1], width, height)
    out = _open("bar-chart", label, width, height) + _y_axis(frame, ticks, y_label)
    step = (frame.right - frame.left) / len(bars)
    out.append(f'<g class="bars {escape(css)}">')
    for k, (name, value) in enumerate(bars):
        x, top = frame.left + k * step, frame.y(value)
        out.append(f'<rect class="bar" x="{round(x + step * 0.1, 1)}" y="{top}" width="{round(step * 0.8, 1)}" '
                   f'height="{round(frame.bottom - top, 1)}" data-label="{escape(name)}" data-value="{value}">'
                   f"<title>{escape(name)}: {escape(_fmt(value))}</title></rect>")
        if k % every == 0:
            out.append(f'<text class="tick" x="{round(x + step / 2, 1)}" y="{frame.bottom + 16}" '
                       f'text-anchor="middle">{escape(name)}</text>')
    out.append("</g></svg>")
    return "".join(out)


def reliability_diagram(buckets: Sequence[dict], *, label: str, size: int = 320) -> str:
    """Predicted (bucket mean) against observed success rate per bucket, the diagonal of perfect
    calibration, and each bucket's count as a bar along the bottom. buckets: the rows of
    calibration_reports.buckets: {lower, upper, n, predicted, observed}."""
    filled = [b for b in buckets if b.get("n")]
    if not filled:
        return _empty("reliability", label, size, size, "no attempts in this window")
    frame = _Frame(0.0, 1.0, 0.0, 1.0, size, size)
    out = _open("reliability", label, size, size) + _y_axis(frame, [0, 0.25, 0.5, 0.75, 1.0], "observed")
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<text class="tick" x="{frame.x(t)}" y="{frame.bottom + 16}" text-anchor="middle">{t:g}</text>')
    out.append(f'<text class="axis-label" x="{(frame.left + frame.right) / 2}" y="{size - 6}" '
               f'text-anchor="middle">predicted p(correct)</text>')
    most = max(b["n"] for b in filled)
    for b in filled:   # counts: bars up to a fifth of the height
        x0, x1 = frame.x(b["lower"]), frame.x(b["upper"])
        h = round((frame.bottom - frame.top) * 0.2 * b["n"] / most, 1)
        out.append(f'<rect class="count" x="{x0 + 1}" y="{round(frame.bottom - h, 1)}" width="{round(x1 - x0 - 2, 1)}" '
                   f'height="{h}" data-n="{b["n"]}"><title>{b["lower"]:g}–{b["upper"]:g}: {b["n"]} attempts'
                   f"</title></rect>")
    out.append(f'<line class="diagonal" x1="{frame.x(0)}" y1="{frame.y(0)}" x2="{frame.x(1)}" y2="{frame.y(1)}"/>')
    path = " ".join(f"{frame.x(b['predicted'])},{frame.y(b['observed'])}" for b in filled)
    out.append(f'<g class="series s0"><polyline fill="none" points="{path}"/>')
    for b in filled:
        out.append(f'<circle class="point" cx="{frame.x(b["predicted"])}" cy="{frame.y(b["observed"])}" r="4" '
                   f'data-x="{b["predicted"]}" data-y="{b["observed"]}" data-n="{b["n"]}">'
                   f"<title>predicted {b['predicted']:.3f}, observed {b['observed']:.3f}, n = {b['n']}</title>"
                   f"</circle>")
    out.append("</g></svg>")
    return "".join(out)


def interval_chart(rows: Sequence[tuple[str, float, float, float]], *, label: str, x_label: str = "",
                   width: int = WIDTH, row_height: int = 36, proportions: bool = True, level: str = "95 %",
                   marks: Sequence[tuple[float, str]] = (), row_css: Sequence[str] | None = None,
                   empty: str = "no outcomes yet") -> str:
    """One row per (name, value, low, high): a dot at the value and a whisker over its interval
    (a `level` interval), on a shared axis: 0..1 for proportions, else the rows' own range (and 0,
    for differences). `marks`: (value, name) vertical reference lines (a threshold); `row_css`: each
    row's colour class (default s0..s5 in turn)."""
    if not rows:
        return _empty("interval-chart", label, width, 80, empty)
    height = MARGIN["top"] + MARGIN["bottom"] + row_height * len(rows)
    left, right = 140, width - MARGIN["right"]
    if proportions:
        lo = max(0.0, min(r[2] for r in rows) - 0.05)
        hi = min(1.0, max(r[3] for r in rows) + 0.05)
        ticks = [t for t in nice_ticks(lo, hi) if 0 <= t <= 1] or [lo, hi]
    else:
        lo, hi = min(0.0, *(r[2] for r in rows)), max(0.0, *(r[3] for r in rows))
        pad = 0.05 * ((hi - lo) or 1.0)
        lo, hi = lo - pad, hi + pad
        ticks = nice_ticks(lo, hi) or [lo, hi]
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])

    def x(v: float) -> float:
        return round(left + (v - lo) / ((hi - lo) or 1) * (right - left), 1)

    bottom = height - MARGIN["bottom"]
    out = _open("interval-chart", label, width, height)
    for t in ticks:
        out.append(f'<line class="grid" x1="{x(t)}" x2="{x(t)}" y1="{MARGIN["top"]}" y2="{bottom}"/>')
        out.append(f'<text class="tick" x="{x(t)}" y="{bottom + 16}" text-anchor="middle">{escape(_fmt(t))}</text>')
    if x_label:
        out.append(f'<text class="axis-label" x="{(left + right) / 2}" y="{height - 6}" '
                   f'text-anchor="middle">{escape(x_label)}</text>')
    for value, name in marks:
        if lo <= value <= hi:
            out.append(f'<line class="mark" x1="{x(value)}" x2="{x(value)}" y1="{MARGIN["top"]}" y2="{bottom}" '
                       f'data-x="{value}"><title>{escape(name)}: {value:.3f}</title></line>')
    for k, (name, value, low, high) in enumerate(rows):
        y = MARGIN["top"] + row_height * k + row_height / 2
        css = row_css[k] if row_css is not None else f"s{k % 6}"
        out.append(f'<g class="series {escape(css)}" data-name="{escape(name)}">'
                   f'<text class="tick" x="{left - 8}" y="{y + 4}" text-anchor="end">{escape(name)}</text>'
                   f'<line class="whisker" x1="{x(low)}" x2="{x(high)}" y1="{y}" y2="{y}"/>'
                   f'<circle class="point" cx="{x(value)}" cy="{y}" r="5" data-x="{value}" data-low="{low}" '
                   f'data-high="{high}"><title>{escape(name)}: {value:.3f} ({escape(level)} interval {low:.3f} to '
                   f'{high:.3f})</title></circle></g>')
    out.append("</svg>")
    return "".join(out)
