"""A flat status badge as SVG (the shields.io look): the space's name on the left, its live
status on the right. Text is XML-escaped and width is estimated from the characters."""
from __future__ import annotations

from xml.sax.saxutils import escape

# status -> (badge text, colour): the words of the space page, the colours of its badge.
BADGE_LOOK = {
    "RUNNING": ("running", "#10b981"),
    "RUNNING_BUILDING": ("running", "#10b981"),
    "RUNNING_APP_STARTING": ("running", "#10b981"),
    "SLEEPING": ("sleeping", "#6b7280"),
    "PAUSED": ("paused", "#6b7280"),
    "BUILDING": ("building", "#f59e0b"),
    "APP_STARTING": ("starting", "#f59e0b"),
    "BUILD_ERROR": ("build error", "#dc2626"),
    "RUNTIME_ERROR": ("runtime error", "#dc2626"),
    "CONFIG_ERROR": ("config error", "#dc2626"),
    "NO_APP_FILE": ("no app yet", "#6b7280"),
    "DELETING": ("deleting", "#6b7280"),
}

FONT = "Verdana,Geneva,DejaVu Sans,sans-serif"
MAX_LABEL = 48


def _width(text: str) -> int:
    # Verdana 11px is about 7 px a character (wide ones more); padding 10 px on each side.
    wide = sum(1 for ch in text if ch.isupper() or ch in "mwMW@%")
    return int(len(text) * 6.6 + wide * 1.5) + 12


def badge_svg(*, label: str, status: str) -> str:
    if len(label) > MAX_LABEL:
        label = label[:MAX_LABEL - 1] + "…"
    text, colour = BADGE_LOOK.get(status, (status.lower(), "#6b7280"))
    lw, rw = _width(label), _width(text)
    total = lw + rw
    lab, val = escape(label), escape(text)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{escape(label, {chr(34): "&quot;"})}: {val}">'
        f"<title>{lab}: {val}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{rw}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="{FONT}" font-size="11">'
        f'<text x="{lw / 2:.1f}" y="14" fill="#010101" fill-opacity=".3">{lab}</text>'
        f'<text x="{lw / 2:.1f}" y="13">{lab}</text>'
        f'<text x="{lw + rw / 2:.1f}" y="14" fill="#010101" fill-opacity=".3">{val}</text>'
        f'<text x="{lw + rw / 2:.1f}" y="13" class="status">{val}</text></g></svg>'
    )
