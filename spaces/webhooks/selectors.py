"""Reads of the webhooks room. The caller has already passed the access check for the space."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from spaces.webhooks.models import Webhook, WebhookDelivery


def webhook_list(*, space) -> QuerySet[Webhook]:
    return Webhook.objects.filter(space=space)


def webhook_get(*, space, webhook_id: int) -> Webhook:
    """A webhook of `space`; another space's id answers like a missing one."""
    hook = Webhook.objects.filter(space=space, pk=webhook_id).first()
    if hook is None:
        raise Http404("No such webhook.")
    return hook


def delivery_list(*, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(webhook=webhook).order_by("-pk")
