from django.contrib import admin
from django.urls import include, path

from spaces.operations.api import HealthzView, MetricsView, ReadyzView

# A lost database or broker connection answers 503 with Retry-After, not 500 (hub/dependencies.py).
handler500 = "hub.dependencies.server_error"

urlpatterns = [
    # Probes and the scrape endpoint (spaces/operations/api.py).
    path("healthz", HealthzView.as_view(), name="healthz"),
    path("readyz", ReadyzView.as_view(), name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("spaces.api_urls")),
    path("", include("spaces.urls")),
]
