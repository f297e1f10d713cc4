"""Template context shared by every page."""
from __future__ import annotations

from django.conf import settings


def hub_context(request):
    return {"SIGNUP_OPEN": settings.SIGNUP_OPEN, "SPACES_DOMAIN": settings.SPACES_DOMAIN}
