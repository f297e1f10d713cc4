from django.contrib import admin
from django.urls import include, path

from spaces.lifecycle.readiness import readyz_view

urlpatterns = [
    path("readyz", readyz_view, name="readyz"),  # public readiness probe (spaces/lifecycle/readiness.py)
    path("admin/", admin.site.urls),
    path("api/", include("spaces.api_urls")),
    path("", include("spaces.urls")),
]
