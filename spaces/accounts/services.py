"""Account writes: users (sign-up) and API tokens (create, check, revoke).
"""
from __future__ import annotations

import logging
import re
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.dispatch import Signal
from django.http import Http404
from django.utils import timezone

from spaces.accounts.models import ApiToken
from spaces.records.errors import ServiceError
from spaces.records.models import Revision
from spaces.records.status import SpaceStatus

# Sent after a token is revoked; spaces/access/signals.py ends what the proxy cached for it.
api_token_revoked = Signal()

log = logging.getLogger(__name__)
User = get_user_model()
S = SpaceStatus
R = Revision.Status


# ----------------------------------------------------------------------------- accounts
def signup_ensure_open() -> None:
    """Raise the 403 of a closed sign-up (SIGNUP_OPEN=false); views call it before anything else."""
    if not settings.SIGNUP_OPEN:
        raise ServiceError("Sign-up is closed on this hub; ask an administrator for an account.",
                           code="signup_closed", http_status=403)


def user_create(*, username: str, password: str, email: str = "") -> User:
    signup_ensure_open()
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,37}[A-Za-z0-9])?", username or ""):
        raise ValidationError({"username": "Use 1 to 39 letters, digits, '-' or '_', starting and "
                                           "ending with a letter or digit."})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "This username is taken."})
    user = User(username=username, email=email)
    validate_password(password, user)
    user.set_password(password)
    try:
        user.save()
    except IntegrityError as exc:
        raise ValidationError({"username": "This username is taken."}) from exc
    return user


def token_create(*, user: User, name: str = "", scope: str = ApiToken.Scope.WRITE) -> tuple[ApiToken, str]:
    """A new API token; the plain token is returned once and only its hash is stored."""
    if scope not in ApiToken.Scope.values:
        raise ValidationError({"scope": "Use read or write."})
    raw = ApiToken.PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=(name or "token")[:100], scope=scope,
                                    token_hash=ApiToken.hash_token(raw), hint=raw[:7])
    return token, raw


def token_authenticate(raw: str) -> ApiToken | None:
    if not raw.startswith(ApiToken.PREFIX) or len(raw) > 100:
        return None
    token = (ApiToken.objects.select_related("user")
             .filter(token_hash=ApiToken.hash_token(raw), revoked_at__isnull=True).first())
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # Record use at most once a minute: no write on every request.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def token_revoke(*, user: User, token_id: int) -> ApiToken:
    """Revoke one of `user`'s tokens (again: no change). Another user's token is a 404, like a
    missing one. A password change does not revoke tokens (as on GitHub and Hugging Face)."""
    token = ApiToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    # Conditional: a second revoke (or a concurrent one) keeps the first time.
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        # The proxy may hold "allowed" answers for this token: access ends them (issue 15, #10).
        api_token_revoked.send(sender=ApiToken, user_id=user.pk)
    token.refresh_from_db(fields=["revoked_at"])
    return token
