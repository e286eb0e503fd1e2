"""Draw a dashboard's panels from a real Prometheus into one PNG (Grafana stand-in).

Grafana's frontend needs a full Node build, so the docs' dashboard pictures are made
here instead: every panel's queries run as range queries against Prometheus and are
drawn as line charts in the dashboard's grid order, with the panel title, the y
range in the panel's unit and a legend. Pillow does the drawing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

PANEL_W, PANEL_H, MARGIN = 780, 300, 20
PLOT_LEFT, PLOT_TOP, PLOT_BOTTOM = 70, 36, 70
BACKGROUND, PANEL, GRID, TEXT = "#111217", "#181b1f", "#2c3036", "#d8d9da"
COLOURS = ("#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a")
MAX_LEGEND = 8

RangeQuery = Callable[[str, float, float, float], list[dict[str, Any]]]


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: `{{label}}` replaced by the series' label value."""
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def fmt(value: float, unit: str) -> str:
    """A y-axis label in the panel's Grafana unit."""
    if math.isnan(value):
        return "-"
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    suffix = {"reqps": " req/s", "ops": " /s"}.get(unit, "")
    return f"{value:.3g}{suffix}"


def _series(query: RangeQuery, panel: dict[str, Any], span: tuple[float, float, float]) -> list:
    found = []
    for target in panel["targets"]:
        for result in query(target["expr"], *span):
            points = [(float(t), float(v)) for t, v in result["values"]]
            points = [(t, v) for t, v in points if math.isfinite(v)]
            if points:
                found.append((legend(target["legendFormat"], result["metric"]), points))
    return found


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    panel: dict[str, Any],
    series: list,
    *,
    span: tuple[float, float, float],
    fonts: tuple[Any, Any],
) -> None:
    title_font, small = fonts
    x0, y0 = origin
    draw.rectangle([x0, y0, x0 + PANEL_W, y0 + PANEL_H], fill=PANEL, outline=GRID)
    draw.text((x0 + 10, y0 + 8), panel["title"], fill=TEXT, font=title_font)
    left, top = x0 + PLOT_LEFT, y0 + PLOT_TOP
    right, bottom = x0 + PANEL_W - 15, y0 + PANEL_H - PLOT_BOTTOM
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    values = [v for _, points in series for _, v in points]
    low, high = (min(0.0, *values), max(values)) if values else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    for step in range(5):
        y = bottom - (bottom - top) * step / 4
        draw.line([left, y, right, y], fill=GRID)
        label = fmt(low + (high - low) * step / 4, unit)
        draw.text((x0 + 6, y - 7), label, fill=TEXT, font=small)
    start, end, _ = span
    for fraction in (0.0, 0.5, 1.0):
        stamp = datetime.fromtimestamp(start + (end - start) * fraction, UTC).strftime("%H:%M:%S")
        x = left + (right - left) * fraction
        draw.text((x - 24, bottom + 4), stamp, fill=TEXT, font=small)
    if not series:
        draw.text((left + 10, top + 10), "no data", fill=TEXT, font=small)
    for n, (name, points) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        xy = [
            (
                left + (right - left) * (t - start) / max(end - start, 1e-9),
                bottom - (bottom - top) * (v - low) / (high - low),
            )
            for t, v in points
        ]
        if len(xy) == 1:
            draw.ellipse([xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2], fill=colour)
        else:
            draw.line(xy, fill=colour, width=2)
        if n < MAX_LEGEND:
            lx = left + (n % 4) * 170
            ly = bottom + 22 + (n // 4) * 16
            draw.rectangle([lx, ly + 4, lx + 10, ly + 10], fill=colour)
            draw.text((lx + 14, ly), name[:24], fill=TEXT, font=small)


def render(document: dict[str, Any], query: RangeQuery, start: float, end: float, out: Path) -> int:
    """Draw every panel of a Grafana dashboard model into `out`; returns panels with data."""
    panels = document["panels"]
    rows = math.ceil(len(panels) / 2)
    width = 2 * PANEL_W + 3 * MARGIN
    height = 50 + rows * (PANEL_H + MARGIN) + MARGIN
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    fonts = (ImageFont.load_default(size=16), ImageFont.load_default(size=12))
    draw.text((MARGIN, 14), document["title"], fill=TEXT, font=ImageFont.load_default(size=20))
    span = (start, end, max(1.0, (end - start) / 240))
    with_data = 0
    for index, panel in enumerate(panels):
        origin = (MARGIN + (index % 2) * (PANEL_W + MARGIN), 50 + (index // 2) * (PANEL_H + MARGIN))
        series = _series(query, panel, span)
        with_data += bool(series)
        _draw_panel(draw, origin, panel, series, span=span, fonts=fonts)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    return with_data
