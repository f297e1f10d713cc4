"""The JSON API's URLs under /api/ (design.md §4): each room's API views."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from spaces.access import api as access_api
from spaces.accounts import api as accounts_api
from spaces.analytics import api as analytics_api
from spaces.catalog import api as catalog_api
from spaces.catalog import api_browse as browse_api
from spaces.catalog import api_history as history_api
from spaces.community import api as community_api
from spaces.lifecycle import api_variables as variables_api
from spaces.lifecycle import streams
from spaces.nodes import api as nodes_api
from spaces.previews import api as previews_api
from spaces.repos import api_files as files_api
from spaces.webhooks import api as webhook_api

S = "spaces/<str:owner>/<str:name>"
urlpatterns = [
    path("users", accounts_api.UserCreateApi.as_view()),
    path("users/<str:username>", browse_api.UserDetailApi.as_view()),
    path("token", accounts_api.TokenCreateApi.as_view()),
    path("tokens", accounts_api.TokenListApi.as_view()),
    path("tokens/<int:token_id>", accounts_api.TokenDetailApi.as_view()),
    path("me", accounts_api.MeApi.as_view()),
    path("hardware", nodes_api.HardwareApi.as_view()),
    path("nodes", nodes_api.NodeListApi.as_view()),
    path("nodes/<str:name>", nodes_api.NodeDetailApi.as_view()),
    path("nodes/<str:name>/<str:action>", nodes_api.NodeActionApi.as_view()),
    path("spaces", catalog_api.SpaceListCreateApi.as_view()),
    path(S, catalog_api.SpaceDetailApi.as_view()),
    path(f"{S}/revisions", catalog_api.RevisionListCreateApi.as_view()),
    path(f"{S}/revisions/<int:number>", catalog_api.RevisionDetailApi.as_view()),
    path(f"{S}/revisions/<int:number>/rollback", history_api.RevisionRollbackApi.as_view()),
    path(f"{S}/duplicate", history_api.SpaceDuplicateApi.as_view()),
    path(f"{S}/logs/<str:kind>", streams.space_log_view),
    path(f"{S}/analytics", analytics_api.SpaceAnalyticsApi.as_view()),
    path(f"{S}/restart", catalog_api.SpaceRestartApi.as_view()),
    path(f"{S}/pause", catalog_api.SpacePauseApi.as_view()),
    path(f"{S}/variables", variables_api.VariableListApi.as_view()),
    path(f"{S}/variables/<str:key>", variables_api.VariableDetailApi.as_view()),
    path(f"{S}/secrets", variables_api.SecretListApi.as_view()),
    path(f"{S}/secrets/<str:key>", variables_api.SecretDetailApi.as_view()),
    path(f"{S}/comments", community_api.CommentListCreateApi.as_view()),
    path(f"{S}/comments/<int:comment_id>", community_api.CommentDetailApi.as_view()),
    path(f"{S}/like", community_api.LikeApi.as_view()),
    path(f"{S}/collaborators", access_api.CollaboratorListApi.as_view()),
    path(f"{S}/collaborators/<str:username>", access_api.CollaboratorDetailApi.as_view()),
    path(f"{S}/share-links", access_api.ShareLinkListApi.as_view()),
    path(f"{S}/share-links/<int:link_id>", access_api.ShareLinkDetailApi.as_view()),
    path(f"{S}/previews", previews_api.PreviewListApi.as_view()),
    path(f"{S}/webhooks", webhook_api.WebhookListApi.as_view()),
    path(f"{S}/webhooks/<int:webhook_id>", webhook_api.WebhookDetailApi.as_view()),
    path(f"{S}/webhooks/<int:webhook_id>/test", webhook_api.WebhookTestApi.as_view()),
    path(f"{S}/webhooks/<int:webhook_id>/deliveries", webhook_api.DeliveryListApi.as_view()),
    path(f"{S}/tree", files_api.TreeApi.as_view()),
    path(f"{S}/tree/<path:path>", files_api.TreePathApi.as_view()),
    path(f"{S}/files/<path:path>", files_api.FileApi.as_view()),
    path(f"{S}/raw/<path:path>", files_api.RawApi.as_view()),
    path(f"{S}/commits", files_api.CommitListApi.as_view()),
    path(f"{S}/commits/<str:sha>", files_api.CommitDetailApi.as_view()),
    # The log streams are a plain async view: described by a hook (spaces/lifecycle/streams_schema.py).
    path("schema", SpectacularAPIView.as_view(custom_settings={"POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums", "spaces.lifecycle.streams_schema.add_log_streams"]}),
        name="schema"),
]
