"""Ends a user's access to private spaces at once when the hub takes it away (issue 15, #10).

The proxy caches "allowed" answers per credential for AUTH_CACHE_SECONDS (runner/proxy.py),
and nginx keeps open connections until a reload. Each event below either bumps the access
epoch of the spaces concerned (a new cache key, and a reload that ends open connections) or
also marks the credential as ended, so the next check refuses it:

* a hub logout ends the space cookies minted in that browser session (proxy_access.py) and
  bumps the spaces they were minted for;
* a user deactivated, deleted, or whose password changed: every private space they could
  enter by a role (their cookies carry the old password hash, which no longer matches);
* an API token revoked (accounts' `api_token_revoked`): the proxy's cached answers for it.

Signals rather than calls in views, because the admin site (and any `save()`) deactivates and
deletes users too. A queryset `.update()` sends no signal: the hub never uses one on users,
and the cookie and token checks still refuse such a user once the cached answer expires.
"""
from __future__ import annotations

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import transaction
from django.db.models.signals import post_save, pre_delete, pre_save
from django.dispatch import receiver

from spaces.access import proxy_gate as proxy_access
from spaces.access import services as access
from spaces.accounts import ratelimits
from spaces.accounts.services import api_token_revoked


@receiver(user_logged_out, dispatch_uid="demohub-logout-ends-space-cookies")
def _logged_out(sender, request, user, **kwargs):
    # Sent before the session is flushed: its grant id and granted spaces are still there.
    if request is not None and getattr(request, "session", None) is not None:
        proxy_access.session_grants_end(request.session)


@receiver(user_logged_in, dispatch_uid="demohub-login-known-address")
def _logged_in(sender, request, user, **kwargs):
    # Any login by password (the login page, the admin's, sign-up): this address is the
    # owner's, and the per-user-name limit no longer applies to it (ratelimits.check_login).
    if request is not None:
        ratelimits.remember_login_address(request, user.username)


@receiver(pre_save, sender=User, dispatch_uid="demohub-user-before-save")
def _remember_old(sender, instance: User, update_fields=None, **kwargs):
    instance.demohub_access_before = None
    # A save of other fields only (every login saves last_login) cannot take access away.
    if update_fields is not None and not {"is_active", "password"} & set(update_fields):
        return
    if instance.pk:
        instance.demohub_access_before = (User.objects.filter(pk=instance.pk)
                                    .values_list("is_active", "password").first())


@receiver(post_save, sender=User, dispatch_uid="demohub-user-after-save")
def _user_saved(sender, instance: User, created: bool, **kwargs):
    before = getattr(instance, "demohub_access_before", None)
    if created or before is None:
        return
    was_active, old_password = before
    if (was_active and not instance.is_active) or old_password != instance.password:
        user_id = instance.pk
        transaction.on_commit(lambda: access.user_access_ended(user_id))


@receiver(pre_delete, sender=User, dispatch_uid="demohub-user-deleted")
def _user_deleted(sender, instance: User, **kwargs):
    # Before the cascade removes their collaborator rows (no signal bumps those spaces then).
    access.user_access_ended(instance.pk)


@receiver(api_token_revoked, dispatch_uid="demohub-token-revoked-ends-access")
def _token_revoked(sender, user_id, **kwargs):
    access.user_access_ended(user_id)
