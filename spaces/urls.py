from django.contrib.auth import views as auth_views
from django.urls import path

from . import proxy_views, views

urlpatterns = [
    path("", views.browse, name="browse"),
    path("new", views.new_space, name="new"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("go/<str:label>", views.go_to_space, name="go"),
    path("spaces/<str:owner>/<str:name>", views.space_page, name="space"),
    path("spaces/<str:owner>/<str:name>/logs", views.space_logs_page, name="space-logs"),
    path("spaces/<str:owner>/<str:name>/settings", views.space_settings, name="space-settings"),
    path("spaces/<str:owner>/<str:name>/actions/<str:action>", views.space_action, name="space-action"),
    path("internal/proxy/fallback", proxy_views.proxy_fallback, name="proxy-fallback"),
]
