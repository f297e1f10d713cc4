"""The space page's comments section and like button (HTML; the JSON side is api_social).

`space_social_context` is what spaces/space.html needs; the views below take the section's
forms (POST, CSRF) and redirect back to the page, to the thread they touched. Who may do
what is decided as in the API: the one access check, then `can` (INTERACT to comment or
like), then spaces.comments for whose comment is whose.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from spaces.access.selectors import Action, Role, can, space_get_for_viewer
from spaces.accounts import ratelimits
from spaces.community import services as comments
from spaces.community.models import Comment
from spaces.records.errors import ServiceError
from spaces.records.models import Space

COMMENTS_PER_PAGE = 20


def space_social_context(request, space: Space, role: Role) -> dict:
    """The like button's state and one page (?cpage=) of comment threads with their replies.

    Four queries whatever the number of comments: the like, the count, the page, its replies.
    """
    user = request.user
    context = {
        "social": True,
        "liked": comments.like_exists(space=space, user=user),
        "can_interact": can(role, Action.INTERACT, user=user, space=space),
        "can_read_comments": can(role, Action.READ_COMMENTS, user=user, space=space),
        "comment_max_chars": comments.BODY_MAX_CHARS,
    }
    if context["can_read_comments"]:
        threads = comments.comment_threads(space=space, user=user, role=role)
        page = Paginator(threads, COMMENTS_PER_PAGE).get_page(request.GET.get("cpage"))
        context["comment_page"] = page
        context["comment_threads"] = comments.comment_page_prepare(list(page.object_list), space=space,
                                                                   user=user, role=role)
    return context


def _space_to_interact(request, owner: str, name: str) -> tuple[Space, Role]:
    """The space, if the caller may see it (else 404) and comment on or like it (else 403)."""
    space, role = space_get_for_viewer(owner=owner, name=name, user=request.user)
    if not can(role, Action.INTERACT, user=request.user, space=space):
        raise PermissionDenied
    return space, role


def _back(space: Space, *, cpage: int | str | None = None, anchor: str = "comments"):
    page = f"?cpage={cpage}" if cpage and str(cpage) != "1" else ""
    return redirect(f"/spaces/{space.owner.username}/{space.name}{page}#{anchor}")


def _back_to_thread(request, space: Space, role: Role, comment: Comment):
    page = comments.comment_thread_page(comment, space=space, user=request.user, role=role,
                                        per_page=COMMENTS_PER_PAGE)
    return _back(space, cpage=page, anchor=f"comment-{comment.pk}")


def _error(request, exc: ValidationError | ServiceError | ratelimits.RateLimited) -> None:
    messages.error(request, "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))


def _posted_page(request) -> str:
    """The ?cpage= the form was on (only digits), to go back to after an error or a delete."""
    cpage = request.POST.get("cpage", "")
    return cpage if cpage.isdigit() else ""


@require_POST
@login_required
def comment_create(request, owner, name):
    space, role = _space_to_interact(request, owner, name)
    reply_to = request.POST.get("reply_to", "")
    try:
        # The page and the API share one counter per user.
        ratelimits.hit(request, group="comment-create", rate=comments.COMMENT_CREATE_RATE, key="user")
        comment = comments.comment_create(space=space, author=request.user, body=request.POST.get("body", ""),
                                          reply_to=int(reply_to) if reply_to.isdigit() else None)
    except (ValidationError, ServiceError, ratelimits.RateLimited) as exc:
        _error(request, exc)
        return _back(space, cpage=_posted_page(request))
    return _back_to_thread(request, space, role, comment)


@require_POST
@login_required
def comment_action(request, owner, name, comment_id, action):
    """edit (author: body), delete (author), hide (owner: hidden=1 hides, 0 shows)."""
    if action not in ("edit", "delete", "hide"):
        raise Http404
    space, role = _space_to_interact(request, owner, name)
    comment = (comments.comments_visible_to(space=space, user=request.user, role=role)
               .filter(pk=comment_id).first())
    if comment is None:
        raise Http404
    comment.space = space
    try:
        if action == "edit":
            comments.comment_edit(comment=comment, by=request.user, body=request.POST.get("body", ""))
        elif action == "hide":
            comments.comment_set_hidden(comment=comment, by=request.user, hidden=request.POST.get("hidden") == "1")
        else:
            comments.comment_delete(comment=comment, by=request.user)
            messages.success(request, "Comment deleted.")
            return _back(space, cpage=_posted_page(request))
    except (ValidationError, ServiceError) as exc:
        _error(request, exc)
        return _back(space, cpage=_posted_page(request))
    return _back_to_thread(request, space, role, comment)


@require_POST
@login_required
def like(request, owner, name):
    """like=1 likes, like=0 takes it back (both idempotent, as in the API)."""
    space, _ = _space_to_interact(request, owner, name)
    if request.POST.get("like") == "0":
        comments.like_remove(space=space, user=request.user)
    else:
        comments.like_add(space=space, user=request.user)
    return redirect(f"/spaces/{space.owner.username}/{space.name}")
