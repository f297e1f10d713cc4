from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import api, api_access, api_accounts, api_discovery, api_social, api_variables, streams
from .webhooks import api as webhook_api

S = "spaces/<str:owner>/<str:name>"
urlpatterns = [
    path("users", api_accounts.UserCreateApi.as_view()),
    path("users/<str:username>", api_discovery.UserDetailApi.as_view()),
    path("token", api_accounts.TokenCreateApi.as_view()),
    path("tokens", api_accounts.TokenListApi.as_view()),
    path("tokens/<int:token_id>", api_accounts.TokenDetailApi.as_view()),
    path("me", api.MeApi.as_view()),
    path("spaces", api.SpaceListCreateApi.as_view()),
    path(S, api.SpaceDetailApi.as_view()),
    path(f"{S}/revisions", api.RevisionListCreateApi.as_view()),
    path(f"{S}/revisions/<int:number>", api.RevisionDetailApi.as_view()),
    path(f"{S}/logs/<str:kind>", streams.space_log_view),
    path(f"{S}/restart", api.SpaceRestartApi.as_view()),
    path(f"{S}/pause", api.SpacePauseApi.as_view()),
    path(f"{S}/variables", api_variables.VariableListApi.as_view()),
    path(f"{S}/variables/<str:key>", api_variables.VariableDetailApi.as_view()),
    path(f"{S}/secrets", api_variables.SecretListApi.as_view()),
    path(f"{S}/secrets/<str:key>", api_variables.SecretDetailApi.as_view()),
    path(f"{S}/comments", api_social.CommentListCreateApi.as_view()),
    path(f"{S}/comments/<int:comment_id>", api_social.CommentDetailApi.as_view()),
    path(f"{S}/like", api_social.LikeApi.as_view()),
    path(f"{S}/collaborators", api_access.CollaboratorListApi.as_view()),
    path(f"{S}/collaborators/<str:username>", api_access.CollaboratorDetailApi.as_view()),
    path(f"{S}/share-links", api_access.ShareLinkListApi.as_view()),
    path(f"{S}/share-links/<int:link_id>", api_access.ShareLinkDetailApi.as_view()),
    path(f"{S}/webhooks", webhook_api.WebhookListApi.as_view()),
    path(f"{S}/webhooks/<int:webhook_id>", webhook_api.WebhookDetailApi.as_view()),
    path(f"{S}/webhooks/<int:webhook_id>/test", webhook_api.WebhookTestApi.as_view()),
    path(f"{S}/webhooks/<int:webhook_id>/deliveries", webhook_api.DeliveryListApi.as_view()),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
]
