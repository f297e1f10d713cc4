"""The page URLs: each room's pages, and the proxy's internal calls (design.md §3)."""
from django.contrib.auth import views as auth_views
from django.urls import path

from spaces.access import pages as access_pages
from spaces.accounts import pages as accounts_pages
from spaces.analytics import pages as analytics_pages
from spaces.catalog import pages as catalog_pages
from spaces.catalog import pages_browse as browse_pages
from spaces.catalog import pages_history as history_pages
from spaces.community import pages as community_pages
from spaces.lifecycle import pages_variables as variable_pages
from spaces.lifecycle import proxy_pages
from spaces.repos import git_http
from spaces.embeds import pages as embed_pages
from spaces.repos import pages_files as file_pages
from spaces.webhooks import pages as webhook_pages

urlpatterns = [
    path("", catalog_pages.browse, name="browse"),
    path("new", catalog_pages.new_space, name="new"),
    path("accounts/signup/", accounts_pages.signup, name="signup"),
    path("accounts/login/", accounts_pages.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),  # POST only (Django 5)
    # Django's views keep this session logged in (update_session_auth_hash) and log out the
    # user's other sessions; API tokens stay valid, as on GitHub and Hugging Face.
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("settings/", accounts_pages.account, name="account"),
    path("settings/tokens", accounts_pages.tokens, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke", accounts_pages.token_revoke, name="token-revoke"),
    path("go/<str:label>", access_pages.go_to_space, name="go"),
    path("s/<str:token>", access_pages.share_redeem, name="share"),
    path("spaces/<str:owner>/<str:name>/access", access_pages.space_access_page, name="space-access"),
    path("users/<str:username>", browse_pages.user_profile, name="user-profile"),
    path("spaces/<str:owner>/<str:name>", catalog_pages.space_page, name="space"),
    # Git's smart HTTP protocol at the space's own URL (with or without .git), spaces/repos/git_http.py.
    path("spaces/<str:owner>/<str:name>/info/refs", git_http.git_http, name="git-info-refs"),
    path("spaces/<str:owner>/<str:name>/git-upload-pack", git_http.git_http, {"service": "git-upload-pack"},
         name="git-upload-pack"),
    path("spaces/<str:owner>/<str:name>/git-receive-pack", git_http.git_http, {"service": "git-receive-pack"},
         name="git-receive-pack"),
    path("spaces/<str:owner>/<str:name>/logs", catalog_pages.space_logs_page, name="space-logs"),
    path("spaces/<str:owner>/<str:name>/analytics", analytics_pages.space_analytics_page, name="space-analytics"),
    path("spaces/<str:owner>/<str:name>/settings", catalog_pages.space_settings, name="space-settings"),
    path("spaces/<str:owner>/<str:name>/settings/variables", variable_pages.space_variable_set,
         name="space-variable-set"),
    path("spaces/<str:owner>/<str:name>/settings/variables/delete", variable_pages.space_variable_delete,
         name="space-variable-delete"),
    path("spaces/<str:owner>/<str:name>/actions/<str:action>", catalog_pages.space_action, name="space-action"),
    path("spaces/<str:owner>/<str:name>/comments", community_pages.comment_create, name="space-comment-create"),
    path("spaces/<str:owner>/<str:name>/comments/<int:comment_id>/<str:action>", community_pages.comment_action,
         name="space-comment-action"),
    path("spaces/<str:owner>/<str:name>/like", community_pages.like, name="space-like"),
    path("spaces/<str:owner>/<str:name>/webhooks", webhook_pages.webhooks_page, name="space-webhooks"),
    path("spaces/<str:owner>/<str:name>/webhooks/<int:webhook_id>/<str:action>", webhook_pages.webhook_action,
         name="space-webhook-action"),
    # Files and History, in Hugging Face's layout (spaces/repos/pages_files.py); <rest> is
    # "<rev>/<path>", split there (a revision may hold "/": refs%2Fpr%2F1).
    path("spaces/<str:owner>/<str:name>/tree/<path:rest>", file_pages.tree_page, name="space-tree"),
    path("spaces/<str:owner>/<str:name>/blob/<path:rest>", file_pages.blob_page, name="space-blob"),
    path("spaces/<str:owner>/<str:name>/resolve/<path:rest>", file_pages.resolve_file, name="space-resolve"),
    path("spaces/<str:owner>/<str:name>/edit/<path:rest>", file_pages.edit_page, name="space-edit"),
    path("spaces/<str:owner>/<str:name>/commits/<path:rev>", file_pages.commits_page, name="space-commits"),
    path("spaces/<str:owner>/<str:name>/commit/<str:sha>", file_pages.commit_page, name="space-commit"),
    path("spaces/<str:owner>/<str:name>/revisions/<int:number>/rollback", history_pages.rollback,
         name="space-rollback"),
    path("spaces/<str:owner>/<str:name>/duplicate", history_pages.duplicate, name="space-duplicate"),
    path("spaces/<str:owner>/<str:name>/badge.svg", embed_pages.badge, name="space-badge"),
    path("internal/proxy/fallback", proxy_pages.proxy_fallback, name="proxy-fallback"),
    path("internal/proxy/auth", proxy_pages.proxy_auth_view, name="proxy-auth"),
    path("internal/proxy/session", proxy_pages.proxy_session_view, name="proxy-session"),
    path("internal/proxy/wake", proxy_pages.proxy_wake_view, name="proxy-wake"),
]
