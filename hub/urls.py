from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language

from spaces.lifecycle.readiness import readyz_view

urlpatterns = [
    path("readyz", readyz_view, name="readyz"),  # public readiness probe (spaces/lifecycle/readiness.py)
    path("admin/", admin.site.urls),
    # The language selector (templates/base.html) posts here; the choice is a cookie, no URL prefix.
    path("i18n/setlang/", set_language, name="set_language"),
    path("api/", include("spaces.api_urls")),
    path("", include("spaces.urls")),
]
