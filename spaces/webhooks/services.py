"""Writes of the webhooks room: register and remove webhooks, record events, deliver them.

An event becomes one WebhookDelivery row per active webhook of the space that asked for it,
in the transaction that made the event happen, and is queued on the `webhooks` queue once
that commits (a rolled-back change sends nothing). An attempt claims its row with a
conditional UPDATE (two workers never both send it), sends the stored body byte for byte,
records the answer, and on a failure worth retrying (no answer, 408, 429, 5xx) adds the next
attempt's row due after WEBHOOK_RETRY_BASE_SECONDS * 2**(attempt-1).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import uuid
from datetime import timedelta
from typing import Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from spaces.lifecycle import crypto
from spaces.records import jobs
from spaces.records.errors import ServiceError
from spaces.records.models import Space
from spaces.webhooks import conf, targets
from spaces.webhooks.models import PING, DeliveryOutcome, Webhook, WebhookDelivery, WebhookEvent

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Demohub-Signature"
EVENT_HEADER = "X-Demohub-Event"
DELIVERY_HEADER = "X-Demohub-Delivery"
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
RETRY_STATUSES = frozenset({408, 429})
# A row claimed this long ago and still pending belongs to a worker that died mid-attempt.
CLAIM_EXPIRES = timedelta(minutes=5)
# Sent by name (spaces/records/jobs.py): services never import the room's tasks.
DELIVER_TASK = "spaces.tasks.webhook_deliver"


# ----------------------------------------------------------------------------- signing
def sign(secret: str, body: bytes) -> str:
    """The X-Demohub-Signature value: "sha256=" and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (README "Webhooks"): compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header or "")


# ----------------------------------------------------------------------------- registering
def _events(events: Iterable[str] | None) -> list[str]:
    if events is None:
        return list(WebhookEvent.values)
    chosen = list(dict.fromkeys(events))
    unknown = [e for e in chosen if e not in WebhookEvent.values]
    if unknown or not chosen:
        raise ServiceError(f"Unknown webhook event {unknown[0]!r}; choose from {', '.join(WebhookEvent.values)}."
                           if unknown else "Choose at least one event.", code="invalid_events", http_status=400)
    return chosen


def _check_url(url: str) -> str:
    try:
        targets.check_url(url)
    except targets.TargetRefused as exc:
        raise ServiceError(str(exc), code=exc.code, http_status=400) from None
    return url.strip()


def _secret(secret: str | None) -> str:
    if secret is None or secret == "":
        return secrets.token_urlsafe(32)
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise ServiceError(f"A webhook secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters long.",
                           code="invalid_secret", http_status=400)
    return secret


def webhook_create(*, space, url: str, events: Iterable[str] | None = None, secret: str | None = None,
                   by) -> tuple[Webhook, str]:
    """A new active webhook and its secret in clear (shown once; stored encrypted)."""
    url = _check_url(url)
    chosen = _events(events)
    secret = _secret(secret)
    with transaction.atomic():
        most = conf.setting("WEBHOOK_MAX_PER_SPACE")
        if Webhook.objects.select_for_update().filter(space=space).count() >= most:
            raise ServiceError(f"A space has at most {most} webhooks "
                               "(WEBHOOK_MAX_PER_SPACE); remove one first.", code="too_many_webhooks", http_status=403)
        hook = Webhook.objects.create(space=space, url=url, secret=crypto.encrypt(secret), events=chosen,
                                      created_by=by)
    return hook, secret


def webhook_update(*, webhook: Webhook, url: str | None = None, events: Iterable[str] | None = None,
                   active: bool | None = None, secret: str | None = None) -> Webhook:
    """Change what is given; a new `secret` (16 to 256 characters) signs the next attempts."""
    fields = []
    if secret is not None:
        if secret == "":
            raise ServiceError("A webhook secret may not be empty.", code="invalid_secret", http_status=400)
        webhook.secret, fields = crypto.encrypt(_secret(secret)), fields + ["secret"]
    if url is not None:
        webhook.url, fields = _check_url(url), fields + ["url"]
    if events is not None:
        webhook.events, fields = _events(events), fields + ["events"]
    if active is not None:
        webhook.active, fields = bool(active), fields + ["active"]
    if fields:
        webhook.save(update_fields=fields)
    return webhook


def webhook_delete(*, webhook: Webhook) -> None:
    webhook.delete()  # its delivery rows go with it; a queued attempt then finds nothing


def webhook_secret(webhook: Webhook) -> str:
    return crypto.decrypt(webhook.secret)


# ----------------------------------------------------------------------------- events
def event_record(*, space_id: int, event: str, payload: Callable[[], dict]) -> list[int]:
    """Queue `event` for every active webhook of the space that asked for it; `payload` (only
    called when one did) builds the body's event-specific part. Returns the delivery row ids."""
    hooks = list(Webhook.objects.filter(space_id=space_id, active=True, events__contains=[event])
                 .values_list("pk", flat=True))
    if not hooks:
        return []
    return _deliveries_create(hooks, event, _body(event, payload()))


def webhook_ping(*, webhook: Webhook) -> WebhookDelivery:
    """Send a `ping` event to this one webhook now (the page's and the API's "test")."""
    space = Space.objects.select_related("owner").get(pk=webhook.space_id)
    body = _body(PING, {"space": space_summary(space), "webhook": {"id": webhook.pk, "events": webhook.events}})
    (row_id,) = _deliveries_create([webhook.pk], PING, body)
    return WebhookDelivery.objects.get(pk=row_id)


def _body(event: str, data: dict) -> str:
    return json.dumps({"event": event, "created_at": timezone.now().isoformat(), **data},
                      ensure_ascii=False, separators=(",", ":"), default=str)


def _deliveries_create(hook_ids: list[int], event: str, body: str) -> list[int]:
    now = timezone.now()
    rows = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook_id=pk, delivery_id=uuid.uuid4(), event=event, body=body, due_at=now) for pk in hook_ids)
    ids = [row.pk for row in rows]
    for pk in hook_ids:
        _log_trim(pk)
    _enqueue_on_commit(ids)
    return ids


def _log_trim(webhook_id: int) -> None:
    """Keep the newest WEBHOOK_DELIVERY_LOG_SIZE rows of a webhook (pending ones always)."""
    size = conf.setting("WEBHOOK_DELIVERY_LOG_SIZE")
    keep = (WebhookDelivery.objects.filter(webhook_id=webhook_id).order_by("-pk")
            .values_list("pk", flat=True)[size:size + 1])
    oldest_kept = list(keep)
    if oldest_kept:
        (WebhookDelivery.objects.filter(webhook_id=webhook_id, pk__lte=oldest_kept[0])
         .exclude(outcome=DeliveryOutcome.PENDING).delete())


def _enqueue_on_commit(ids: list[int], countdown: float = 0) -> None:
    def send():
        for pk in ids:
            try:
                jobs.send(DELIVER_TASK, pk, countdown=countdown)
            except Exception:  # the broker is down: the sweep (beat) sends it once it is back
                log.warning("webhooks: could not queue delivery %s; the sweep will", pk, exc_info=True)

    transaction.on_commit(send, robust=True)


def space_summary(space) -> dict:
    return {"owner": space.owner.username, "name": space.name, "visibility": space.visibility,
            "status": space.status, "url": space.url,
            "page": f"{settings.HUB_URL}/spaces/{space.owner.username}/{space.name}"}


# ----------------------------------------------------------------------------- delivering
def delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Make the attempt of row `delivery_id` if it is still pending and nobody else has it."""
    now = timezone.now()
    claimed = (WebhookDelivery.objects.filter(pk=delivery_id, outcome=DeliveryOutcome.PENDING)
               .filter(Q(attempted_at__isnull=True) | Q(attempted_at__lt=now - CLAIM_EXPIRES))
               .update(attempted_at=now))
    if not claimed:
        return None
    row = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if row is None:
        return None
    hook = row.webhook
    body = row.body.encode("utf-8")
    if not hook.active and row.event != PING:
        return _finish(row, targets.Answer(None, 0, "", "the webhook was turned off"), retry=False)
    try:
        secret = webhook_secret(hook)
    except crypto.SecretUnreadable:
        return _finish(row, targets.Answer(None, 0, "", "the webhook's secret cannot be decrypted with "
                                                        "SECRETS_ENCRYPTION_KEY; set a new secret"), retry=False)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
               EVENT_HEADER: row.event, DELIVERY_HEADER: str(row.delivery_id)}
    try:
        answer = targets.post(hook.url, body, headers)
    except targets.TargetRefused as exc:
        # Refused now (the name resolves elsewhere than at registration, the operator narrowed
        # WEBHOOK_ALLOW_CIDRS): final, and recorded; an unresolvable name may come back.
        return _finish(row, targets.Answer(None, 0, "", f"refused: {exc}"), retry=exc.code == "unresolvable")
    retry = answer.status is None or answer.status in RETRY_STATUSES or answer.status >= 500
    return _finish(row, answer, retry=retry and not (answer.status and 200 <= answer.status < 300))


def _finish(row: WebhookDelivery, answer: targets.Answer, *, retry: bool) -> WebhookDelivery:
    ok = answer.status is not None and 200 <= answer.status < 300
    more = retry and row.attempt < conf.setting("WEBHOOK_MAX_ATTEMPTS")
    outcome = DeliveryOutcome.DELIVERED if ok else (DeliveryOutcome.RETRYING if more else DeliveryOutcome.FAILED)
    error = answer.error
    if not ok and retry and not more:
        error = f"{error} (gave up after {row.attempt} attempts)"[:500]
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=row.pk).update(
            outcome=outcome, status_code=answer.status, duration_ms=answer.duration_ms, error=error[:500],
            address=answer.address)
        if more:
            delay = conf.setting("WEBHOOK_RETRY_BASE_SECONDS") * 2 ** (row.attempt - 1)
            nxt = WebhookDelivery.objects.create(
                webhook_id=row.webhook_id, delivery_id=row.delivery_id, event=row.event, body=row.body,
                attempt=row.attempt + 1, due_at=timezone.now() + timedelta(seconds=delay))
            _log_trim(row.webhook_id)
            _enqueue_on_commit([nxt.pk], countdown=delay)
    row.refresh_from_db()
    return row


def deliveries_sweep() -> int:
    """Queue again the pending attempts whose task was lost (broker down when they were due,
    a worker killed mid-attempt). Returns how many."""
    now = timezone.now()
    lost = list(WebhookDelivery.objects.filter(outcome=DeliveryOutcome.PENDING, due_at__lt=now - timedelta(seconds=60))
                .filter(Q(attempted_at__isnull=True) | Q(attempted_at__lt=now - CLAIM_EXPIRES))
                .values_list("pk", flat=True)[:500])
    if lost:
        _enqueue_on_commit(lost)
    return len(lost)
