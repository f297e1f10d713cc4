"""A space's webhooks and the log of what was sent to them."""
from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models


class WebhookEvent(models.TextChoices):
    REVISION_BUILT = "revision.built", "Revision built"
    REVISION_FAILED = "revision.failed", "Revision failed"
    SPACE_STATUS = "space.status_changed", "Space status changed"
    COMMENT_POSTED = "comment.posted", "Comment posted"


# Sent only by "Send a test" (the API's /test): every webhook receives it whatever its events.
PING = "ping"


class Webhook(models.Model):
    space = models.ForeignKey("spaces.Space", on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2000)
    # Encrypted at rest like secrets (spaces/lifecycle/crypto.py): "fernet:..."; read with services.webhook_secret.
    secret = models.TextField()
    events = ArrayField(models.CharField(max_length=32, choices=WebhookEvent.choices))
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "spaces"
        ordering = ["pk"]
        indexes = [models.Index(fields=["space", "active"], name="webhook_space_active_idx")]

    def __str__(self) -> str:
        return f"webhook {self.pk} -> {self.url}"


class DeliveryOutcome(models.TextChoices):
    PENDING = "pending"        # queued, not tried yet
    DELIVERED = "delivered"    # the receiver answered 2xx
    RETRYING = "retrying"      # failed; the next attempt is a newer row with the same delivery_id
    FAILED = "failed"          # failed for good (refused address, a 4xx, or out of attempts)


class WebhookDelivery(models.Model):
    """One attempt to send one event to one webhook. Retries are new rows with the same
    `delivery_id` (the X-Demohub-Delivery header) and the same body, byte for byte; the log
    keeps the newest WEBHOOK_DELIVERY_LOG_SIZE rows per webhook."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(default=uuid.uuid4)
    event = models.CharField(max_length=32)
    body = models.TextField()
    attempt = models.PositiveSmallIntegerField(default=1)
    outcome = models.CharField(max_length=12, choices=DeliveryOutcome.choices, default=DeliveryOutcome.PENDING)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    address = models.CharField(max_length=64, blank=True)   # where it connected (the one resolved address)
    created_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField()
    attempted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "spaces"
        ordering = ["-pk"]
        indexes = [models.Index(fields=["webhook", "-id"], name="delivery_webhook_idx"),
                   models.Index(fields=["outcome", "due_at"], name="delivery_due_idx")]
