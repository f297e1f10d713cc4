from django.contrib import admin
from django.urls import include, path

from spaces.lifecycle.readiness import readyz_view

# A lost database or broker connection answers 503 with Retry-After, not 500 (hub/dependencies.py).
handler500 = "hub.dependencies.server_error"

urlpatterns = [
    path("readyz", readyz_view, name="readyz"),  # public readiness probe (spaces/lifecycle/readiness.py)
    path("admin/", admin.site.urls),
    path("api/", include("spaces.api_urls")),
    path("", include("spaces.urls")),
]
