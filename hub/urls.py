from django.contrib import admin
from django.urls import include, path

from spaces.operations.api import HealthzView, MetricsView, ReadyzView

urlpatterns = [
    # Probes and the scrape endpoint (spaces/operations/api.py).
    path("healthz", HealthzView.as_view(), name="healthz"),
    path("readyz", ReadyzView.as_view(), name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("spaces.api_urls")),
    path("", include("spaces.urls")),
]
