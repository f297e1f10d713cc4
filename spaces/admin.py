from django.contrib import admin, messages

from spaces.access.models import Collaborator, ShareLink
from spaces.accounts import ratelimits
from spaces.accounts.models import ApiToken
from spaces.community.models import Comment
from spaces.records.models import Revision, Space


@admin.register(Space)
class SpaceAdmin(admin.ModelAdmin):
    list_display = ("label", "owner", "name", "sdk", "visibility", "status", "updated_at")
    list_filter = ("sdk", "visibility", "status")
    search_fields = ("name", "owner__username", "label")


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ("space", "number", "status", "created_at", "finished_at")
    list_filter = ("status",)


admin.site.register([ApiToken, Collaborator, Comment, ShareLink])


# The admin's login page checks passwords too: it counts against the same login rate limits as
# the hub's login page and /api/token (spaces/accounts/ratelimits.py), or it would be a way around them.
_admin_login = admin.site.login


def _rate_limited_admin_login(request, extra_context=None):
    if request.method == "POST":
        try:
            ratelimits.check_login(request, request.POST.get("username", ""))
        except ratelimits.RateLimited as exc:
            # The form again, unbound (binding it would check the password after all), with
            # the reason above it, as a 429 with Retry-After.
            messages.error(request, str(exc))
            request.method = "GET"
            response = _admin_login(request, extra_context)
            response.status_code = 429
            response["Retry-After"] = str(exc.retry_after)
            return response
    return _admin_login(request, extra_context)


admin.site.login = _rate_limited_admin_login
