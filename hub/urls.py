from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language

from spaces.operations.api import HealthzView, MetricsView, ReadyzView

# A lost database or broker connection answers 503 with Retry-After, not 500 (hub/dependencies.py).
handler500 = "hub.dependencies.server_error"

urlpatterns = [
    # Probes and the scrape endpoint (spaces/operations/api.py).
    path("healthz", HealthzView.as_view(), name="healthz"),
    path("readyz", ReadyzView.as_view(), name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("admin/", admin.site.urls),
    # The language selector (templates/base.html) posts here; the choice is a cookie, no URL prefix.
    path("i18n/setlang/", set_language, name="set_language"),
    path("api/", include("spaces.api_urls")),
    # The Hugging Face Hub face: HF_ENDPOINT=http://<hub>/hf (spaces/hfapi, issue 11).
    path("hf/", include("spaces.hf_urls")),
    path("", include("spaces.urls")),
]
