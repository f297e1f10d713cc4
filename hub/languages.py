"""The hub's languages, dates and time zone (README "Languages"); hub/settings.py imports them.

Pages follow the browser (Accept-Language) or the choice made with the selector in the page
footer (the django_language cookie, set by Django's set_language view at /i18n/setlang/);
hub.middleware.PageLocaleMiddleware keeps the API in English (clients read `code`). The
catalogs are locale/<lang>/LC_MESSAGES/django.po; the .mo files are compiled at image build and
by `make test` (manage.py compilemessages), never committed. Dates and numbers follow the
active language's formats (Django's, always on since 5.0).
"""
from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

__all__ = ["LANGUAGES", "LANGUAGE_CODE", "LOCALE_PATHS", "USE_I18N", "LANGUAGE_COOKIE_AGE", "LANGUAGE_COOKIE_SAMESITE",
           "TIME_ZONE", "USE_TZ"]

LANGUAGES = [("en", "English"), ("ko", "한국어")]
# The language of a browser that asks for none of these (.env.example).
LANGUAGE_CODE = environ.Env().str("LANGUAGE_CODE", default="en")
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(f"LANGUAGE_CODE={LANGUAGE_CODE!r} is not one of the hub's languages: "
                               f"{', '.join(dict(LANGUAGES))}")
LOCALE_PATHS = [Path(__file__).resolve().parent.parent / "locale"]
USE_I18N = True
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_TZ = True
