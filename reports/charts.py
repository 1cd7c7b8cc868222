"""Charts drawn on the server as inline SVG: no JavaScript, no library, nothing fetched.

Each chart is an `<svg role="img">` with a `<title>` and `<desc>` (what a screen reader announces),
a `<title>` on every bar (its figure, shown on hover), and the page offers the same figures as a
table beside it. Colours are CSS classes styled by templates/reports/dashboard.html from the
admin's own variables, so the charts follow its light and dark themes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


@dataclass(frozen=True)
class Series:
    key: str  # CSS class suffix: chart-<key>
    label: str
    values: Sequence[int]


def _n(value: float) -> str:
    """A coordinate, to a tenth of a pixel."""
    return f"{value:.1f}"


def _nice_max(value: int) -> int:
    """The axis maximum: `value` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if value <= step * factor:
                return step * factor
        step *= 10


def _joined(parts: Sequence[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((part,) for part in parts))


def _svg(chart_id: str, *, title: str, description: str, width: int, height: int, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="chart" id="{id}" role="img" aria-labelledby="{id}-title {id}-desc" viewBox="0 0 {w} {h}" '
        'width="100%" preserveAspectRatio="xMinYMin meet">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>{body}</svg>',
        id=chart_id,
        title=title,
        desc=description,
        w=width,
        h=height,
        body=body,
    )


def grouped_bars(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series]) -> SafeString:
    """Vertical bars, one group per label (a week), one bar per series, with a legend and a y axis."""
    width, height, left, bottom, top = 720, 240, 40, 36, 28
    plot_w, plot_h = width - left - 8, height - bottom - top
    top_value = _nice_max(max((v for s in series for v in s.values), default=0))
    group_w = plot_w / max(len(labels), 1)
    bar_w = (group_w - 6) / max(len(series), 1)
    parts = []
    for tick in sorted({0, top_value // 2, top_value}):
        y = top + plot_h - plot_h * tick / top_value
        parts.append(
            format_html(
                '<line class="chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                left,
                width - 8,
                _n(y),
                _n(y),
                left - 4,
                _n(y + 4),
                tick,
            )
        )
    for i, label in enumerate(labels):
        x0 = left + i * group_w + 3
        for j, one in enumerate(series):
            value = one.values[i]
            bar_h = plot_h * value / top_value
            parts.append(
                format_html(
                    '<rect class="chart-{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}</title></rect>',
                    one.key,
                    _n(x0 + j * bar_w),
                    _n(top + plot_h - bar_h),
                    _n(max(bar_w - 1, 1)),
                    _n(bar_h),
                    label,
                    value,
                    one.label,
                )
            )
        parts.append(
            format_html(
                '<text class="chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                _n(x0 + (group_w - 6) / 2),
                height - bottom + 16,
                label,
            )
        )
    parts.append(_legend(series, left, 14))
    description = "; ".join(f"{one.label}: {sum(one.values)} in all" for one in series)
    body = _joined(parts)
    return _svg(chart_id, title=title, description=description, width=width, height=height, body=body)


def _legend(series: Sequence[Series], x: int, y: int) -> SafeString:
    items = []
    for one in series:
        items.append(
            format_html(
                '<rect class="chart-{}" x="{}" y="{}" width="10" height="10"/>'
                '<text class="chart-label" x="{}" y="{}">{}</text>',
                one.key,
                x,
                y - 9,
                x + 14,
                y,
                one.label,
            )
        )
        x += 24 + 7 * len(one.label)
    return _joined(items)


@dataclass(frozen=True)
class Bar:
    label: str
    parts: Sequence[tuple[str, str, int]]  # (css key, what it counts, value), stacked left to right
    note: str = ""  # shown after the bar, e.g. "80 / 100"


def stacked_rows(
    chart_id: str,
    title: str,
    bars: Sequence[Bar],
    *,
    scale: int | None = None,
    marker: int | None = None,
    marker_label: str = "",
) -> SafeString:
    """One horizontal bar per row, its parts stacked; `scale` is the full width (default: the largest row),
    `marker` an optional vertical line (a limit) at that value."""
    width, row_h, left, right = 720, 26, 170, 120
    height = row_h * max(len(bars), 1) + 24
    plot_w = width - left - right
    full = scale or max((sum(v for _, _, v in bar.parts) for bar in bars), default=0) or 1
    rows = []
    for i, bar in enumerate(bars):
        y, x = 8 + i * row_h, float(left)
        rows.append(
            format_html(
                '<text class="chart-label" x="{}" y="{}" text-anchor="end">{}</text>', left - 6, y + 15, bar.label
            )
        )
        for key, what, value in bar.parts:
            w = plot_w * min(value, full) / full
            rows.append(
                format_html(
                    '<rect class="chart-{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}</title></rect>',
                    key,
                    _n(x),
                    y,
                    _n(w),
                    row_h - 8,
                    bar.label,
                    value,
                    what,
                )
            )
            x += w
        rows.append(format_html('<text class="chart-axis" x="{}" y="{}">{}</text>', _n(x + 6), y + 15, bar.note))
    if marker is not None:
        x = left + plot_w * min(marker, full) / full
        rows.append(
            format_html(
                '<line class="chart-limit" x1="{}" x2="{}" y1="2" y2="{}"/>'
                '<text class="chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                _n(x),
                _n(x),
                height - 18,
                _n(x),
                height - 4,
                marker_label,
            )
        )
    description = "; ".join(f"{bar.label}: {bar.note}" for bar in bars) or "No data."
    return _svg(chart_id, title=title, description=description, width=width, height=height, body=_joined(rows))
