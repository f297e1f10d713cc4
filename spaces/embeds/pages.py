"""GET /spaces/<owner>/<name>/badge.svg: the live status of a public space as an SVG badge.

Anyone may fetch it (README badges are loaded by strangers' browsers and by image proxies);
a private or missing space answers the same 404. Not cached for long: it shows live status.
"""
from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_safe

from spaces.embeds.badge import badge_svg
from spaces.embeds.selectors import embeddable_space
from spaces.web.unavailable import answers_503_when_down


@require_safe
@answers_503_when_down
def badge(request, owner, name):
    space = embeddable_space(owner=owner, name=name)
    resp = HttpResponse(badge_svg(label=space.full_name, status=space.status), content_type="image/svg+xml")
    resp["Cache-Control"] = "no-cache, max-age=0"
    # An SVG opened on its own is a document: no script, no outside resources.
    resp["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    resp["X-Content-Type-Options"] = "nosniff"
    resp["Access-Control-Allow-Origin"] = "*"
    return resp
