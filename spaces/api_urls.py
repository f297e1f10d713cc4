from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import api, streams

S = "spaces/<str:owner>/<str:name>"
urlpatterns = [
    path("users", api.UserCreateApi.as_view()),
    path("token", api.TokenCreateApi.as_view()),
    path("me", api.MeApi.as_view()),
    path("spaces", api.SpaceListCreateApi.as_view()),
    path(S, api.SpaceDetailApi.as_view()),
    path(f"{S}/revisions", api.RevisionListCreateApi.as_view()),
    path(f"{S}/revisions/<int:number>", api.RevisionDetailApi.as_view()),
    path(f"{S}/logs/<str:kind>", streams.space_log_view),
    path(f"{S}/restart", api.SpaceRestartApi.as_view()),
    path(f"{S}/pause", api.SpacePauseApi.as_view()),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
]
