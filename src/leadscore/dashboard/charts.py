"""Charts as small inline SVG, drawn on the server: no JavaScript library, no network.

Every chart carries `role="img"` and an `aria-label` that says what it shows; the numbers are
also in the page as text or a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def sparkline(values: Sequence[float], *, width: int = 96, height: int = 24,
              label: str = "score over the last 30 days") -> Markup:
    """A line of `values` (oldest first), the last point marked."""
    if not values:
        return Markup("")
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / max(len(values) - 1, 1)
    points = [(i * step, height - 2 - (v - low) / span * (height - 4))
              for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    x, y = points[-1]
    text = f"{label}: from {values[0]:.0f} to {values[-1]:.0f} (low {low:.0f}, high {high:.0f})"
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(text)}"><polyline points="{path}" fill="none" '
        f'stroke="currentColor" stroke-width="1.5"/><circle cx="{x:.1f}" cy="{y:.1f}" r="2" '
        f'fill="currentColor"/></svg>')


def columns(data: Sequence[tuple[str, float]], *, label: str, height: int = 140,
            bar: int = 14, gap: int = 4, css: str = "bars") -> Markup:
    """Vertical bars, one per (label, value), each with a tooltip title."""
    if not data:
        return Markup('<p class="muted">No data yet.</p>')
    top = max((v for _, v in data), default=0) or 1
    width = len(data) * (bar + gap)
    rects = []
    for i, (name, value) in enumerate(data):
        h = max(value / top * (height - 16), 1 if value else 0)
        rects.append(f'<rect x="{i * (bar + gap)}" y="{height - h:.1f}" width="{bar}" '
                     f'height="{h:.1f}"><title>{escape(name)}: {value:,.0f}</title></rect>')
    return Markup(
        f'<svg class="{css}" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(label)}">' + "".join(rects) + "</svg>")


def heat(value: float, top: float) -> str:
    """A background for a heat-map cell: deeper blue for more (text stays readable)."""
    share = value / top if top else 0.0
    lightness = 97 - share * 55
    return f"background:hsl(212 70% {lightness:.0f}%);color:{'#fff' if share > 0.55 else '#111'}"
