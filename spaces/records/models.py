"""The Space and Revision rows (design.md §2): data and rules about a row's own fields only.

Anything that writes several rows, sends work or talks to the runner is in a room's services.
"""
from __future__ import annotations

import ipaddress

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import pgettext_lazy

from spaces.records.status import SpaceStatus

NAME_RE = r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$"
name_validator = RegexValidator(
    NAME_RE, "A name may hold letters, digits, '.', '_' and '-', 1 to 96 characters, "
    "starting and ending with a letter or digit.", code="invalid_name")


class ServedOnItsHost:
    """A row whose app the proxy serves on a host name of its own, `<label>.<apps domain>`:
    a space, or a branch preview."""

    label: str

    @property
    def host(self) -> str:
        return f"{self.label}.{settings.SPACES_DOMAIN}"

    @property
    def url(self) -> str:
        default_port = {"http": 80, "https": 443}.get(settings.SPACES_SCHEME)
        port = "" if settings.SPACES_PORT == default_port else f":{settings.SPACES_PORT}"
        return f"{settings.SPACES_SCHEME}://{self.host}{port}/"


class Sdk(models.TextChoices):
    GRADIO = "gradio"
    STREAMLIT = "streamlit"
    STATIC = "static"
    DOCKER = "docker"


class Visibility(models.TextChoices):
    PUBLIC = "public"
    PRIVATE = "private"


class Space(ServedOnItsHost, models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="spaces")
    name = models.CharField(max_length=96, validators=[name_validator])
    sdk = models.CharField(max_length=16, choices=Sdk.choices)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PUBLIC)
    title = models.CharField(max_length=96, blank=True)
    emoji = models.CharField(max_length=16, blank=True, default="🚀")
    color_from = models.CharField(max_length=16, blank=True, default="blue")
    color_to = models.CharField(max_length=16, blank=True, default="indigo")
    short_description = models.CharField(max_length=200, blank=True)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    readme = models.TextField(blank=True, help_text="README body (front matter removed)")
    status = models.CharField(max_length=24, choices=SpaceStatus.choices, default=SpaceStatus.NO_APP_FILE)
    error = models.TextField(blank=True)
    latest_revision = models.ForeignKey("Revision", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    running_revision = models.ForeignKey("Revision", null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+")
    # The host label: stored, unique and never reused (design.md §3).
    label = models.CharField(max_length=63, unique=True)
    # Two fixed addresses on the spaces network (blue/green): the active slot serves; a new
    # revision starts on the other one and the route switches once it is healthy. A deleted
    # space's index is given to the next new space (the lowest free one, catalog.services.space_create).
    address_index = models.PositiveIntegerField(unique=True)
    active_slot = models.CharField(max_length=1, default="a")
    sleep_after = models.IntegerField(default=-1, help_text="seconds idle before sleeping; -1 never")
    # The owner may allow force pushes to main (editors only; each is recorded on its revision).
    allow_force_push = models.BooleanField(default=False)
    # How a SLEEPING space sleeps: "frozen" (the engine suspended its processes, memory kept,
    # wakes in a blink) or "stopped" (container gone, memory freed, wakes by starting).
    sleep_mode = models.CharField(max_length=8, blank=True, default="")
    # The last time the proxy saw a visitor (spaces/lifecycle/sleep.py), or the space started serving.
    last_active_at = models.DateTimeField(null=True, blank=True)
    memory_limit = models.CharField(max_length=16, blank=True, help_text="e.g. 2g; blank: hub default")
    # Nodes and hardware tiers (spaces/nodes): the tier the owner chose (blank: the README's
    # `suggested_hardware` within the owner's quota, else HARDWARE_DEFAULT), the tier it was last
    # placed with, the node it runs on (null: none, or the hub's implicit local engine when the
    # installation has no nodes) and why it went there.
    hardware = models.CharField(max_length=63, blank=True)
    tier = models.CharField(max_length=63, blank=True)
    node = models.ForeignKey("spaces.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="spaces")
    # The node each blue/green slot's container was started on (a move starts the other slot on
    # the new node while the old one still serves): the proxy routes each slot to its own node.
    node_a = models.ForeignKey("spaces.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    node_b = models.ForeignKey("spaces.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    placement = models.CharField(max_length=300, blank=True)
    # Bumped whenever who may reach the app changes (visibility, collaborators, share links):
    # it is part of the proxy's access-cache key, so a change takes effect at once.
    access_epoch = models.PositiveIntegerField(default=0)
    # Counters kept in step by the services that add likes and comments, so browse pages sort
    # and show them without counting rows (design: constant query count per page).
    like_count = models.PositiveIntegerField(default=0)
    comment_count = models.PositiveIntegerField(default=0)
    trending_score = models.FloatField(default=0.0)
    # PostgreSQL full-text document over title, description, tags and README (weighted A-D),
    # refreshed by services whenever one of those changes.
    search_vector = SearchVectorField(null=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), "owner", name="space_name_unique_per_owner"),
        ]
        indexes = [
            models.Index(fields=["visibility", "-updated_at"]),
            models.Index(fields=["-like_count"], name="space_likes_idx"),
            models.Index(fields=["-trending_score"], name="space_trending_idx"),
            GinIndex(fields=["search_vector"], name="space_search_idx"),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.name}"

    def slot_address(self, slot: str) -> str:
        """The fixed IP of slot 'a' or 'b' on the spaces network."""
        net = ipaddress.ip_network(settings.SPACES_SUBNET)
        # Skip the first 16 addresses (gateway, reserved) of the subnet.
        offset = 16 + 2 * self.address_index + (0 if slot == "a" else 1)
        # The top of the subnet is kept for branch previews (Preview.address).
        if offset >= net.num_addresses - 1 - preview_address_reserve(net):
            raise ValueError("the spaces subnet is full; widen SPACES_SUBNET")
        return str(net.network_address + offset)

    @property
    def is_private(self) -> bool:
        return self.visibility == Visibility.PRIVATE


class Revision(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        BUILDING = "building"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINAL_STATES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)
    # The commit on main this revision is (spaces/repos): full SHA, and its message.
    commit = models.CharField(max_length=40, blank=True)
    message = models.TextField(blank=True)
    snapshot_path = models.CharField(max_length=500)
    # Uncompressed size of the snapshot, counted against the owner's storage quota
    # (spaces/lifecycle/quotas.py); 0 once housekeeping pruned the snapshot (snapshot_path is then "").
    snapshot_bytes = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    image = models.CharField(max_length=300, blank=True)
    build_log = models.TextField(blank=True)
    factory = models.BooleanField(default=False, help_text="build without cache")
    task_id = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "number"], name="revision_number_unique")]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.space_id}#{self.number}"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATES


class HostLabel(models.Model):
    """Every host label ever issued: a label is never reused, even after its space is deleted."""

    label = models.CharField(max_length=63, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


class Preview(ServedOnItsHost, models.Model):
    """A branch other than `main`, built and run on a host of its own for the space's editors
    (issue 10 item 8). The rules are in spaces/records/previews.py (what a push may add) and
    the previews room (build, run, sleep, removal); the row is here, low, so that the proxy's
    gate, the sleep check, reconciliation and the push hook can read it."""

    class Status(models.TextChoices):
        BUILDING = "building", pgettext_lazy("preview status", "building")
        STARTING = "starting", pgettext_lazy("preview status", "starting")
        RUNNING = "running", pgettext_lazy("preview status", "running")
        # Idle: its container is stopped; the next editor's request wakes it.
        SLEEPING = "sleeping", pgettext_lazy("preview status", "sleeping")
        FAILED = "failed", pgettext_lazy("preview status", "failed")

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="previews")
    branch = models.CharField(max_length=255)
    commit = models.CharField(max_length=40)
    # A host label of its own (kept in HostLabel, never reused): <label[:40]>--<branch slug>-<hash6>.
    label = models.CharField(max_length=63, unique=True)
    # A fixed address counted from the top of the spaces subnet (Preview.address).
    address_index = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    error = models.TextField(blank=True)
    snapshot_path = models.CharField(max_length=500, blank=True)
    # Uncompressed size of its commit's files: a preview's snapshot counts against the owner's
    # storage quota as a revision's does (spaces/lifecycle/quotas.py).
    snapshot_bytes = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    image = models.CharField(max_length=300, blank=True)
    build_log = models.TextField(blank=True)
    pushed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    last_active_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "branch"], name="preview_branch_unique")]
        ordering = ["branch"]

    def __str__(self) -> str:
        return f"{self.space_id}:{self.branch}"

    @property
    def address(self) -> str:
        """Its fixed IP: counted down from the top of the spaces subnet, in the range that
        Space.slot_address leaves free (preview_address_reserve)."""
        net = ipaddress.ip_network(settings.SPACES_SUBNET)
        if self.address_index >= preview_address_reserve(net):
            raise ValueError("no free preview address; widen SPACES_SUBNET")
        return str(net.network_address + net.num_addresses - 2 - self.address_index)


def preview_address_reserve(net) -> int:
    """How many addresses at the top of the spaces subnet belong to branch previews."""
    return max(net.num_addresses // 32, 1)
