"""Server-rendered SVG charts (pygal) for the Analytics tab and the owners' sparklines.

pygal's SVG normally pulls its tooltip script from a CDN: every chart here sets ``js=[]``,
so a page loads nothing from outside the hub (the charts stay static SVG).
"""
from __future__ import annotations

import re
from datetime import timedelta

import pygal
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext
from pygal.style import Style

STYLE = Style(
    background="transparent", plot_background="transparent",
    foreground="#334155", foreground_strong="#0f172a", foreground_subtle="#cbd5e1",
    colors=("#4f46e5", "#0ea5e9", "#94a3b8", "#f59e0b", "#dc2626"),
    font_family="system-ui, sans-serif", label_font_size=11, major_label_font_size=11,
    legend_font_size=12, title_font_size=14,
)
# On a card's coloured gradient (templates/spaces/_card.html): white.
SPARK_STYLE = Style(background="transparent", plot_background="transparent", colors=("#ffffff",),
                    opacity=".35", opacity_hover=".35")
COMMON = dict(style=STYLE, js=[], disable_xml_declaration=True, width=760, height=260,
              explicit_size=False, show_minor_x_labels=False, x_label_rotation=0,
              legend_at_bottom=True, legend_at_bottom_columns=5, margin=8, margin_bottom=28, print_values=False,
              include_x_axis=True, truncate_label=-1)


def _labels(series: list[dict], bucket: str) -> list[str]:
    fmt = {"minute": "%H:%M", "hour": "%d %H:00", "day": "%b %d"}[bucket]
    return [p["start"].strftime(fmt) for p in series]


def _major(labels: list[str], every: int) -> list[str]:
    return labels[::every] if every > 1 else labels


def _every(bucket: str, n: int) -> int:
    return max(1, n // 8)


def _count_axis(chart, top: int) -> None:
    """Whole numbers on the y axis of a count chart (pygal would label 0.2, 0.4, ... up to 3)."""
    if top <= 10:
        chart.y_labels = list(range(0, max(top, 1) + 1))


# pygal always writes an inline <script> with its config for the tooltip script; without that
# script (js=[]) it does nothing, so it is left out.
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)


def _render(chart, **kwargs) -> SafeString:
    # pygal escapes titles, labels and values itself.
    return mark_safe(_SCRIPT.sub("", chart.render(is_unicode=True, **kwargs)))


def traffic_chart(data: dict) -> SafeString:
    series, bucket = data["series"], data["bucket"]
    chart = pygal.StackedBar(title=gettext("Requests"), **COMMON)
    labels = _labels(series, bucket)
    chart.x_labels = labels
    chart.x_labels_major = _major(labels, _every(bucket, len(labels)))
    chart.add(gettext("page views"), [p["page_views"] for p in series])
    chart.add(gettext("API calls"), [p["api_calls"] for p in series])
    chart.add(gettext("other"), [p["requests"] - p["page_views"] - p["api_calls"] for p in series])
    _count_axis(chart, max((p["requests"] for p in series), default=0))
    return _render(chart)


def errors_chart(data: dict) -> SafeString:
    series, bucket = data["series"], data["bucket"]
    style = Style(**{**STYLE.to_dict(), "colors": ("#f59e0b", "#dc2626")})
    chart = pygal.StackedBar(title=gettext("Errors"), **{**COMMON, "style": style})
    labels = _labels(series, bucket)
    chart.x_labels = labels
    chart.x_labels_major = _major(labels, _every(bucket, len(labels)))
    chart.add("4xx", [p["client_errors"] for p in series])
    chart.add("5xx", [p["server_errors"] for p in series])
    _count_axis(chart, max((p["client_errors"] + p["server_errors"] for p in series), default=0))
    return _render(chart)


def latency_chart(data: dict) -> SafeString:
    series, bucket = data["series"], data["bucket"]
    style = Style(**{**STYLE.to_dict(), "colors": ("#4f46e5", "#dc2626")})
    chart = pygal.Line(title=gettext("Latency (ms)"), **{**COMMON, "style": style}, dots_size=3, allow_interruptions=True)
    labels = _labels(series, bucket)
    chart.x_labels = labels
    chart.x_labels_major = _major(labels, _every(bucket, len(labels)))
    chart.add(gettext("median"), [p["latency_median_ms"] for p in series])
    chart.add("p95", [p["latency_p95_ms"] for p in series])
    return _render(chart)


def visitors_chart(data: dict) -> SafeString | None:
    daily = data["daily_unique_visitors"]
    if data["period"] in ("hour", "day") or not daily:
        return None
    chart = pygal.Bar(title=gettext("Unique visitors per day"), **COMMON)
    counts = {d["day"]: d["count"] for d in daily}
    first, last = data["since"].date(), (data["until"] - timedelta(seconds=1)).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    labels = [d.strftime("%b %d") for d in days]
    chart.x_labels = labels
    chart.x_labels_major = _major(labels, max(1, len(labels) // 8))
    chart.add(gettext("unique visitors"), [counts.get(d, 0) for d in days])
    _count_axis(chart, max(counts.values()))
    return _render(chart)


def sparkline(values: list[int]) -> SafeString:
    chart = pygal.Line(style=SPARK_STYLE, js=[], disable_xml_declaration=True, show_dots=False, fill=True,
                       stroke_style={"width": 2})
    chart.add(gettext("visits"), values)
    svg = _SCRIPT.sub("", chart.render_sparkline(width=120, height=24, explicit_size=True, is_unicode=True))
    # pygal names an untitled chart "Pygal" (read out by screen readers): say what it shows.
    title = escape(gettext("Requests per day"))
    return mark_safe(svg.replace("<title>Pygal</title>", f"<title>{title}</title>"))
