"""Account pages: sign-up, login, the account page and API tokens.

Log out and the password change are Django's own views (spaces/urls.py). Login, sign-up and
token creation are rate limited with the counters the API uses (spaces/accounts/ratelimits.py); a
limited request gets its page back with the message, status 429 and Retry-After.
"""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from spaces.accounts import ratelimits
from spaces.accounts import services as accounts_services
from spaces.accounts.models import ApiToken
from spaces.accounts.selectors import token_list_for_user
from spaces.accounts.services import token_create, user_create
from spaces.records.errors import ServiceError


class SignupForm(forms.Form):
    username = forms.CharField(max_length=39)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. laptop or CI.")
    # Read by default on the page: the least a token can do (the API keeps its write default).
    scope = forms.ChoiceField(choices=[(ApiToken.Scope.READ, "Read: see spaces, logs and revisions"),
                                       (ApiToken.Scope.WRITE, "Write: also create, upload, change and delete")],
                              initial=ApiToken.Scope.READ, widget=forms.RadioSelect)


def _too_many(response, exc: ratelimits.RateLimited):
    response.status_code = 429
    response["Retry-After"] = str(exc.retry_after)
    return response


class LoginView(auth_views.LoginView):
    """Django's login page, with the login rate limits in front of the password check."""

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        try:
            ratelimits.check_login(request, username)
        except ratelimits.RateLimited as exc:
            # An unbound form: validating the posted one would check the password after all.
            form = self.get_form_class()(request, initial={"username": username})
            context = self.get_context_data(form=form, rate_limit_message=str(exc))
            return _too_many(self.render_to_response(context), exc)
        return super().post(request, *args, **kwargs)


def signup(request):
    if not settings.SIGNUP_OPEN:
        # No form at all, and a POST creates nothing (the service checks the setting too).
        return render(request, "registration/signup.html", {"signup_closed": True}, status=403)
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        try:
            ratelimits.check_signup(request)
        except ratelimits.RateLimited as exc:
            form = SignupForm(initial={"username": request.POST.get("username", ""),
                                       "email": request.POST.get("email", "")})
            return _too_many(render(request, "registration/signup.html",
                                    {"form": form, "rate_limit_message": str(exc)}), exc)
        if form.is_valid():
            try:
                user = user_create(**form.cleaned_data)
            except ValidationError as exc:
                if hasattr(exc, "error_dict"):
                    for field, errors in exc.message_dict.items():
                        form.add_error(field if field in form.fields else None, errors)
                else:  # the password validators
                    form.add_error("password", exc.messages)
            except ServiceError as exc:
                form.add_error(None, str(exc))
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect("/")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def account(request):
    active_tokens = token_list_for_user(request.user).filter(revoked_at__isnull=True).count()
    return render(request, "accounts/account.html", {"active_tokens": active_tokens})


@never_cache  # the response to a creation holds the new token: keep it out of every cache
@login_required
def tokens(request):
    """The caller's tokens and the form to make one. A new token is shown in the response to
    its POST only (no redirect, nothing kept in the session): a reload of the page never
    shows it again."""
    form = TokenCreateForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            ratelimits.check_token_create(request, request.user)
        except ratelimits.RateLimited as exc:
            retry = TokenCreateForm(initial=form.cleaned_data)
            return _too_many(render(request, "accounts/tokens.html", {
                "form": retry, "tokens": token_list_for_user(request.user), "rate_limit_message": str(exc)}), exc)
        token, raw = token_create(user=request.user, **form.cleaned_data)
        created = {"token": token, "raw": raw}
        form = TokenCreateForm()
    return render(request, "accounts/tokens.html", {"form": form, "tokens": token_list_for_user(request.user),
                                                    "created": created})


@login_required
@require_POST
def token_revoke(request, token_id: int):
    token = accounts_services.token_revoke(user=request.user, token_id=token_id)  # not theirs: 404
    messages.success(request, f"Token “{token.name}” ({token.hint}…) is revoked; it no longer works.")
    return redirect("tokens")
