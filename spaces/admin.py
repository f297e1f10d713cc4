from django.contrib import admin, messages
from django.db.models import Count

from spaces.access import services as access
from spaces.access.models import Collaborator, ShareLink
from spaces.accounts import ratelimits
from spaces.accounts.models import ApiToken
from spaces.catalog import services
from spaces.community.models import Comment
from spaces.nodes import services as node_services
from spaces.nodes.models import Node
from spaces.nodes.selectors import node_usage
from spaces.records.models import Revision, Space


# ----------------------------------------------------------------------------- issue 9, item 3
# Changes made here go through the same services as the hub's own pages and API, so the proxy
# closes a space made private (or a removed collaborator's, a revoked link's access) at once,
# not at the next reconciliation. Fields only the hub may write are read-only.
SPACE_SERVICE_FIELDS = {"visibility", "title", "short_description", "tags", "sleep_after", "emoji"}


@admin.register(Space)
class SpaceAdmin(admin.ModelAdmin):
    list_display = ("label", "owner", "name", "sdk", "visibility", "status", "tier", "node", "updated_at")
    list_filter = ("sdk", "visibility", "status", "node")
    search_fields = ("name", "owner__username", "label")
    # status moves only through the state machine, label names the route and containers, and
    # access_epoch is the proxy's cache key: the hub's to write.
    readonly_fields = ("status", "label", "access_epoch", "tier", "node", "node_a", "node_b", "placement")

    def has_add_permission(self, request):
        return False   # a space is created by the hub (its label, route and slots)

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        changed = list(form.changed_data)
        through_services = {f: getattr(obj, f) for f in changed if f in SPACE_SERVICE_FIELDS}
        others = [f for f in changed if f not in SPACE_SERVICE_FIELDS]
        if others:   # only what changed: counters and the epoch are written concurrently
            obj.save(update_fields=[*others, "updated_at"])
        if through_services:
            services.space_update(space=obj, **through_services)


class _AccessChangesAdmin(admin.ModelAdmin):
    """Collaborators and share links: every change or deletion here changes who may enter the
    space, so it bumps the access epoch and republishes the route (access.space_access_changed)."""

    def get_readonly_fields(self, request, obj=None):
        return ("space",) if obj is not None else ()

    def save_model(self, request, obj, form, change):
        if change:   # only what changed: a link's use count is written by every redemption
            obj.save(update_fields=list(form.changed_data))
        else:
            obj.save()
        access.space_access_changed(obj.space_id)

    def delete_model(self, request, obj):
        space_id = obj.space_id
        super().delete_model(request, obj)
        access.space_access_changed(space_id)

    def delete_queryset(self, request, queryset):
        space_ids = set(queryset.values_list("space_id", flat=True))
        super().delete_queryset(request, queryset)
        for space_id in space_ids:
            access.space_access_changed(space_id)


@admin.register(Collaborator)
class CollaboratorAdmin(_AccessChangesAdmin):
    list_display = ("space", "user", "role")


@admin.register(ShareLink)
class ShareLinkAdmin(_AccessChangesAdmin):
    list_display = ("space", "note", "created_by", "expires_at", "revoked_at")
    def has_add_permission(self, request):
        return False   # its token is shown once, to whoever creates it: create links in the hub

    def get_readonly_fields(self, request, obj=None):
        return ("token_hash", "created_by", "use_count", "last_used_at",
                *super().get_readonly_fields(request, obj))


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ("space", "number", "status", "created_at", "finished_at")
    list_filter = ("status",)


admin.site.register([ApiToken, Comment])


# ----------------------------------------------------------------------------- nodes (issue 12)
@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    """The nodes with capacity, load and spaces; cordon, uncordon, drain and remove go through
    spaces/nodes/services.py, as the operator API's do. Rows are made by the nodes' workers."""

    list_display = ("name", "address", "state", "cordoned", "cpus_load", "memory_load", "gpu_count", "space_count",
                    "heartbeat_at", "epoch")
    list_filter = ("state", "cordoned")
    actions = ("cordon", "uncordon", "drain", "remove")
    readonly_fields = [f.name for f in Node._meta.fields]

    def has_add_permission(self, request):
        return False   # a node registers itself (its worker): `make node`

    def get_queryset(self, request):
        self._usage = node_usage()
        return super().get_queryset(request).annotate(placed=Count("spaces"))

    @admin.display(description="CPUs used / allocatable")
    def cpus_load(self, obj):
        return f"{self._usage.get(obj.pk, {}).get('cpus', 0):g} / {obj.cpus:g}"

    @admin.display(description="memory used / allocatable (GiB)")
    def memory_load(self, obj):
        used = self._usage.get(obj.pk, {}).get("memory_bytes", 0)
        return f"{used / 2**30:.1f} / {obj.memory_bytes / 2**30:.1f}"

    @admin.display(description="spaces", ordering="placed")
    def space_count(self, obj):
        return obj.placed

    @admin.action(description="Cordon: take no new space")
    def cordon(self, request, queryset):
        for node in queryset:
            node_services.node_cordon(node)

    @admin.action(description="Uncordon")
    def uncordon(self, request, queryset):
        for node in queryset:
            node_services.node_cordon(node, cordoned=False)

    @admin.action(description="Drain: move its spaces to other nodes without downtime")
    def drain(self, request, queryset):
        moved = sum(len(node_services.node_drain(node)) for node in queryset)
        self.message_user(request, f"{moved} spaces are moving.")

    @admin.action(description="Remove: its spaces start elsewhere, its containers go")
    def remove(self, request, queryset):
        moved = sum(len(node_services.node_remove(node)) for node in queryset)
        self.message_user(request, f"{moved} spaces are starting elsewhere.")


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
