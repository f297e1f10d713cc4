"""spaces/records/events.py -> webhook deliveries. Each receiver does one indexed query when the space
has no webhook for the event; the payload is only built when one does.

A receiver runs inside the sender's transaction (a status transition, a build's end, a new
comment): it never lets an error of its own reach the sender. Its writes sit in a savepoint,
so a failure rolls back only them, and is logged; the event is then not delivered.
"""
from __future__ import annotations

import functools
import logging

from django.db import transaction
from django.dispatch import receiver

from spaces.community.models import Comment
from spaces.records import events
from spaces.records.models import Revision, Space
from spaces.webhooks.models import WebhookEvent
from spaces.webhooks.services import event_record, space_summary

log = logging.getLogger(__name__)


def _never_breaks_the_sender(fn):
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            with transaction.atomic():
                fn(*args, **kwargs)
        except Exception:
            log.exception("webhooks: could not record the event %s %s", fn.__name__, kwargs)

    return wrapped


def _space(space_id: int):
    return Space.objects.select_related("owner").get(pk=space_id)


@receiver(events.space_status_changed, dispatch_uid="demohub-webhooks-status")
@_never_breaks_the_sender
def _status_changed(sender, space_id: int, previous: str | None, status: str, **kwargs):
    if previous == status:
        return

    def payload() -> dict:
        space = _space(space_id)
        return {"space": space_summary(space), "status": {"from": previous, "to": status},
                "error": space.error[:2000]}

    event_record(space_id=space_id, event=WebhookEvent.SPACE_STATUS, payload=payload)


@receiver(events.revision_finished, dispatch_uid="demohub-webhooks-revision")
@_never_breaks_the_sender
def _revision_finished(sender, revision_id: int, status: str, **kwargs):
    rev = Revision.objects.filter(pk=revision_id).values("space_id", "number", "status", "error",
                                                          "created_at", "finished_at").first()
    if rev is None:
        return
    event = WebhookEvent.REVISION_BUILT if status == "succeeded" else WebhookEvent.REVISION_FAILED

    def payload() -> dict:
        return {"space": space_summary(_space(rev["space_id"])),
                "revision": {"number": rev["number"], "status": rev["status"], "error": rev["error"][:2000],
                             "created_at": rev["created_at"], "finished_at": rev["finished_at"]}}

    event_record(space_id=rev["space_id"], event=event, payload=payload)


@receiver(events.comment_posted, dispatch_uid="demohub-webhooks-comment")
@_never_breaks_the_sender
def _comment_posted(sender, comment_id: int, **kwargs):
    comment = Comment.objects.select_related("author").filter(pk=comment_id).first()
    if comment is None:
        return

    def payload() -> dict:
        return {"space": space_summary(_space(comment.space_id)),
                "comment": {"id": comment.pk, "author": comment.author.username, "body": comment.body,
                            "reply_to": comment.reply_to_id, "created_at": comment.created_at}}

    event_record(space_id=comment.space_id, event=WebhookEvent.COMMENT_POSTED, payload=payload)
