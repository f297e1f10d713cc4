"""Comments and likes on spaces: the writes (services) and the reads the API and pages share.

Rules (design.md §2 and §6):

* Who may comment or like is decided by the caller's view through the one access check
  (`selectors.can(role, Action.INTERACT)`); these functions decide what only depends on the
  comment: its author edits and deletes it, the space's owner hides and unhides it (and may
  not edit it), and nobody else does either.
* Replies are one level deep. A reply to a reply is attached to the top-level comment of
  that thread (as on a forum's "reply" button), so the answer always lands somewhere and
  the response's `reply_to` says where.
* A hidden comment is shown to the owner and to its author, marked hidden, and omitted for
  everyone else; hiding a top-level comment omits its whole thread for them, and nobody may
  reply to a hidden comment (409).
* Space.comment_count is what everyone sees: comments not hidden whose thread is not hidden
  (replies included). Space.like_count is the number of Like rows. Both are changed with F()
  in the same transaction as the rows they count, never by Space.save(), so concurrent writes
  (and the discovery module's trending_score) are never overwritten with stale values. A
  change of like calls that module's refresh of the one space; comments wait for beat's.
* Every write that can change comment_count locks its thread's top-level comment first, so
  a hide, a reply and a delete in one thread are serialised and never count a row twice.
"""
from __future__ import annotations

from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from spaces.access.selectors import Action, Role, can, space_role
from spaces.community import trending
from spaces.community.models import Comment, Like
from spaces.records import events
from spaces.records.errors import ServiceError
from spaces.records.models import Space

BODY_MAX_CHARS = 10000
# Per user, for the API and the page alike (django-ratelimit rate syntax).
COMMENT_CREATE_RATE = "10/m"


class LikeState(NamedTuple):
    liked: bool
    likes: int


# ----------------------------------------------------------------------------- reads
def comments_visible_to(*, space: Space, user, role: Role) -> QuerySet[Comment]:
    """The comments of `space` the caller may read: hidden ones only for the owner and author."""
    qs = Comment.objects.filter(space=space).select_related("author")
    if can(role, Action.ADMIN):
        return qs
    if user is not None and user.is_authenticated:
        return qs.filter(Q(hidden=False) | Q(author=user))
    return qs.filter(hidden=False)


def comment_threads(*, space: Space, user, role: Role) -> QuerySet[Comment]:
    """Top-level comments the caller may read, oldest first (a discussion reads top down)."""
    return comments_visible_to(space=space, user=user, role=role).filter(reply_to__isnull=True).order_by(
        "created_at", "pk")


def comment_page_prepare(comments: list[Comment], *, space: Space, user, role: Role) -> list[Comment]:
    """Give each top-level comment of a page `thread_replies` and every comment its caller flags.

    All the replies of the page are read in one query, whatever the number of threads.
    """
    replies: dict[int, list[Comment]] = {c.pk: [] for c in comments}
    if comments:
        for reply in (comments_visible_to(space=space, user=user, role=role)
                      .filter(reply_to__in=list(replies)).order_by("created_at", "pk")):
            replies[reply.reply_to_id].append(reply)
    for comment in comments:
        comment.thread_replies = replies[comment.pk]
        for c in (comment, *comment.thread_replies):
            comment_set_caller_flags(c, user=user, role=role)
    return comments


def comment_set_caller_flags(comment: Comment, *, user, role: Role) -> Comment:
    """`can_edit` (author: edit, delete) and `can_hide` (owner) for the caller, on the row."""
    comment.can_edit = bool(user is not None and user.is_authenticated and comment.author_id == user.pk)
    comment.can_hide = can(role, Action.ADMIN)
    return comment


def comment_thread_page(comment: Comment, *, space: Space, user, role: Role, per_page: int) -> int:
    """The page number (from 1) of `comment`'s thread in `comment_threads` pages of `per_page`."""
    root = comment.reply_to if comment.reply_to_id else comment
    before = comment_threads(space=space, user=user, role=role).filter(
        Q(created_at__lt=root.created_at) | Q(created_at=root.created_at, pk__lt=root.pk)).count()
    return before // per_page + 1


def like_exists(*, space: Space, user) -> bool:
    if user is None or not user.is_authenticated:
        return False
    return Like.objects.filter(space=space, user=user).exists()


# ----------------------------------------------------------------------------- writes
def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": "Write something: a comment cannot be empty."})
    if len(body) > BODY_MAX_CHARS:
        raise ValidationError({"body": f"A comment may hold at most {BODY_MAX_CHARS} characters "
                                       f"(this one has {len(body)})."})
    return body


def _bump_comment_count(space_id: int, delta: int) -> None:
    if delta:
        Space.objects.filter(pk=space_id).update(comment_count=F("comment_count") + delta)


def _lock_thread_root(comment: Comment) -> Comment:
    """Lock and return the fresh top-level comment of `comment`'s thread (404 if gone)."""
    root = Comment.objects.select_for_update().filter(pk=comment.reply_to_id or comment.pk).first()
    if root is None:
        raise ServiceError("This comment no longer exists.", code="not_found", http_status=404)
    return root


def _may_see(comment: Comment, user) -> bool:
    """comments_visible_to for one row: hidden ones only for their author and the owner."""
    return not comment.hidden or comment.author_id == user.pk or comment.space.owner_id == user.pk


def comment_create(*, space: Space, author, body: str, reply_to: Comment | int | None = None) -> Comment:
    """A new visible comment, or a reply in the thread of `reply_to` (a comment of `space`)."""
    body = _clean_body(body)
    with transaction.atomic():
        root = None
        if reply_to is not None:
            target_id = reply_to.pk if isinstance(reply_to, Comment) else reply_to
            target = Comment.objects.filter(pk=target_id, space=space).first()
            if target is not None:
                root = _lock_thread_root(target)
                target.space = root.space = space
            # What the author may not see answers like what does not exist.
            if target is None or not _may_see(target, author) or not _may_see(root, author):
                raise ServiceError("There is no such comment on this space to reply to.",
                                   code="invalid_reply_to", http_status=400)
            if target.hidden or root.hidden:
                raise ServiceError("This comment is hidden; it cannot be replied to.", code="comment_hidden")
        comment = Comment.objects.create(space=space, author=author, body=body, reply_to=root)
        _bump_comment_count(space.pk, +1)
        events.comment_posted.send(sender=Comment, comment_id=comment.pk)
    return comment


def comment_edit(*, comment: Comment, by, body: str) -> Comment:
    """Change the text of a comment: its author only (the owner hides, never rewrites)."""
    if comment.author_id != by.pk:
        raise ServiceError("Only the author of a comment may edit it.", code="not_author", http_status=403)
    body, edited_at = _clean_body(body), timezone.now()
    if not Comment.objects.filter(pk=comment.pk).update(body=body, edited_at=edited_at):
        raise ServiceError("This comment no longer exists.", code="not_found", http_status=404)
    comment.body, comment.edited_at = body, edited_at
    return comment


def comment_delete(*, comment: Comment, by) -> None:
    """Delete a comment (and, for a top-level one, its replies): its author only."""
    if comment.author_id != by.pk:
        raise ServiceError("Only the author of a comment may delete it.", code="not_author", http_status=403)
    with transaction.atomic():
        root = _lock_thread_root(comment)
        fresh = Comment.objects.filter(pk=comment.pk).first()
        if fresh is None:
            return  # deleted meanwhile (with its thread): nothing left to count
        if fresh.pk == root.pk:
            visible = 0 if root.hidden else 1 + root.replies.filter(hidden=False).count()
        else:
            visible = 0 if (root.hidden or fresh.hidden) else 1
        fresh.delete()  # replies go with it (on_delete=CASCADE)
        _bump_comment_count(comment.space_id, -visible)


def comment_set_hidden(*, comment: Comment, by, hidden: bool) -> Comment:
    """Hide or show a comment (a top-level one takes its thread along): the space's owner only."""
    if not can(space_role(comment.space, by), Action.ADMIN):
        raise ServiceError("Only the owner of the space may hide or unhide comments.", code="not_owner",
                           http_status=403)
    with transaction.atomic():
        root = _lock_thread_root(comment)
        # Conditional: hiding twice (or two owners' tabs at once) changes the count once.
        changed = Comment.objects.filter(pk=comment.pk, hidden=not hidden).update(hidden=hidden)
        if changed:
            if comment.pk == root.pk:
                visible = 1 + root.replies.filter(hidden=False).count()
            else:
                visible = 0 if root.hidden else 1
            _bump_comment_count(comment.space_id, -visible if hidden else visible)
    comment.hidden = hidden
    return comment


def _like_count(space: Space) -> int:
    space.like_count = Space.objects.filter(pk=space.pk).values_list("like_count", flat=True).get()
    return space.like_count


def like_add(*, space: Space, user) -> LikeState:
    """Like `space` (liking it again changes nothing) and return the state."""
    with transaction.atomic():
        # get_or_create survives a concurrent like by the same user (unique constraint).
        _, created = Like.objects.get_or_create(space=space, user=user)
        if created:
            Space.objects.filter(pk=space.pk).update(like_count=F("like_count") + 1)
            # The discovery module's own refresh (spaces.search), so a like moves trending at once.
            trending.space_trending_refresh([space.pk])
    return LikeState(liked=True, likes=_like_count(space))


def like_remove(*, space: Space, user) -> LikeState:
    """Take back a like (when there is none, nothing changes) and return the state."""
    with transaction.atomic():
        deleted, _ = Like.objects.filter(space=space, user=user).delete()
        if deleted:
            Space.objects.filter(pk=space.pk).update(like_count=F("like_count") - 1)
            trending.space_trending_refresh([space.pk])
    return LikeState(liked=False, likes=_like_count(space))
