from django.contrib import admin

from .models import ApiToken, Collaborator, Comment, Revision, ShareLink, Space


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
