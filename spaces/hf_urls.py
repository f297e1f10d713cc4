"""The Hugging Face Hub face's URLs under /hf (issue 11, spaces/hfapi): few patterns, each a
family routed by one view, so the persona matrix covers every one of them."""
from django.urls import path

from spaces.hfapi import api, api_files, api_space

S = "spaces/<str:owner>/<str:name>"
urlpatterns = [
    path("api/whoami-v2", api.WhoAmIApi.as_view()),
    path("api/repos/<str:action>", api.ReposApi.as_view()),
    path("api/validate-yaml", api.ValidateYamlApi.as_view()),
    path("api/spaces", api.SpaceListApi.as_view()),
    path(f"api/{S}", api.SpaceInfoApi.as_view()),
    path(f"api/{S}/<path:rest>", api_space.SpaceCallApi.as_view()),
    path(f"{S}/resolve/<path:rest>", api_files.ResolveApi.as_view()),
    # Anything else (models, datasets, calls this hub does not have): a JSON 404 the clients parse.
    path("<path:rest>", api.not_here),
]
