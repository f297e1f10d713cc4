from django.contrib.auth import views as auth_views
from django.urls import path

from . import proxy_views, views, views_access, views_accounts, views_discovery, views_social, views_variables
from .embeds import pages as embed_pages
from .webhooks import pages as webhook_pages

urlpatterns = [
    path("", views.browse, name="browse"),
    path("new", views.new_space, name="new"),
    path("accounts/signup/", views_accounts.signup, name="signup"),
    path("accounts/login/", views_accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),  # POST only (Django 5)
    # Django's views keep this session logged in (update_session_auth_hash) and log out the
    # user's other sessions; API tokens stay valid, as on GitHub and Hugging Face.
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("settings/", views_accounts.account, name="account"),
    path("settings/tokens", views_accounts.tokens, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke", views_accounts.token_revoke, name="token-revoke"),
    path("go/<str:label>", views_access.go_to_space, name="go"),
    path("s/<str:token>", views_access.share_redeem, name="share"),
    path("spaces/<str:owner>/<str:name>/access", views_access.space_access_page, name="space-access"),
    path("users/<str:username>", views_discovery.user_profile, name="user-profile"),
    path("spaces/<str:owner>/<str:name>", views.space_page, name="space"),
    path("spaces/<str:owner>/<str:name>/logs", views.space_logs_page, name="space-logs"),
    path("spaces/<str:owner>/<str:name>/settings", views.space_settings, name="space-settings"),
    path("spaces/<str:owner>/<str:name>/settings/variables", views_variables.space_variable_set,
         name="space-variable-set"),
    path("spaces/<str:owner>/<str:name>/settings/variables/delete", views_variables.space_variable_delete,
         name="space-variable-delete"),
    path("spaces/<str:owner>/<str:name>/actions/<str:action>", views.space_action, name="space-action"),
    path("spaces/<str:owner>/<str:name>/comments", views_social.comment_create, name="space-comment-create"),
    path("spaces/<str:owner>/<str:name>/comments/<int:comment_id>/<str:action>", views_social.comment_action,
         name="space-comment-action"),
    path("spaces/<str:owner>/<str:name>/like", views_social.like, name="space-like"),
    path("spaces/<str:owner>/<str:name>/webhooks", webhook_pages.webhooks_page, name="space-webhooks"),
    path("spaces/<str:owner>/<str:name>/webhooks/<int:webhook_id>/<str:action>", webhook_pages.webhook_action,
         name="space-webhook-action"),
    path("spaces/<str:owner>/<str:name>/badge.svg", embed_pages.badge, name="space-badge"),
    path("internal/proxy/fallback", proxy_views.proxy_fallback, name="proxy-fallback"),
    path("internal/proxy/auth", proxy_views.proxy_auth_view, name="proxy-auth"),
    path("internal/proxy/session", proxy_views.proxy_session_view, name="proxy-session"),
    path("internal/proxy/wake", proxy_views.proxy_wake_view, name="proxy-wake"),
]
