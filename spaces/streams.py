"""Build and run logs: plain text, or a live event stream (design.md §4).

`GET /api/spaces/<owner>/<name>/logs/build|run` with `Accept: text/event-stream` streams
`event: log` frames whose `id:` is the byte offset after them (resume with Last-Event-ID) and
ends with `event: end` carrying the final status. The view is async: under uvicorn a follower
holds no worker thread, only a coroutine polling Redis.
"""
from __future__ import annotations

import asyncio
import json
import time

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse

from . import logs
from .auth import bearer_from_header
from .models import Revision, Space
from .access import share_links_in_session
from .selectors import Action, can, space_get_for_viewer
from .services import token_authenticate
from .status import SERVING, SpaceStatus

POLL_SECONDS = 0.3
KEEPALIVE_SECONDS = 15
MAX_STREAM_SECONDS = 3600


async def _caller(request):
    raw = bearer_from_header(request.headers.get("Authorization", ""))
    if raw is not None:
        token = await sync_to_async(token_authenticate)(raw)
        return token.user if token else False
    return await request.auser()


def _db_read(fn):
    """`fn` as a coroutine on the shared thread pool, closing the connection it opened there.

    A follower's polls run off the request's thread so that it holds none; but Django closes
    connections only when a request ends, on the request's thread, so each pool thread would
    keep its own Postgres connection open for good (Channels' database_sync_to_async closes
    them the same way).
    """
    def read(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            # Never end a caller's transaction (tests run the reads inside theirs).
            if not connection.in_atomic_block:
                connection.close()

    return sync_to_async(read, thread_sensitive=False)


def _error(status: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


def _log_source(space: Space, kind: str) -> tuple[str, Revision | None]:
    if kind == "build":
        rev = space.latest_revision
        return (logs.build_key(rev.pk) if rev else ""), rev
    return logs.run_key(space.pk), None


def _build_done(rev_id: int) -> tuple[bool, dict]:
    rev = Revision.objects.select_related("space").get(pk=rev_id)
    return rev.is_final, {"status": rev.status, "revision": rev.number, "space_status": rev.space.status,
                          "error": rev.error}


def _run_done(space_id: int) -> tuple[bool, dict]:
    space = Space.objects.filter(pk=space_id).values("status", "error").first()
    if space is None:
        return True, {"space_status": "DELETED"}
    live = space["status"] in SERVING or space["status"] == SpaceStatus.APP_STARTING
    return not live, {"space_status": space["status"], "error": space["error"]}


def _frame(event: str, data: str, ident: int | None = None) -> bytes:
    head = f"id: {ident}\n" if ident is not None else ""
    body = "".join(f"data: {line}\n" for line in data.replace("\r", "").split("\n"))
    return f"{head}event: {event}\n{body}\n".encode()


async def space_log_view(request, owner: str, name: str, kind: str):
    if kind not in ("build", "run"):
        return _error(404, "Not found.", "not_found")
    user = await _caller(request)
    if user is False:
        return _error(401, "The API token is invalid or revoked.", "invalid_token")
    try:
        # The session (share links redeemed in this browser) is read in the sync thread too.
        space, role = await sync_to_async(lambda: space_get_for_viewer(
            owner=owner, name=name, user=user, share_link_ids=share_links_in_session(request)))()
    except Http404:
        return _error(404, "Not found.", "not_found")
    if not can(role, Action.READ_LOGS, user=user, space=space):
        if not user.is_authenticated:
            return _error(401, "Log in or send an API token to read logs.", "not_authenticated")
        return _error(403, "Only the owner and editors may read this space's logs.", "permission_denied")
    key, rev = await sync_to_async(_log_source)(space, kind)

    if "text/event-stream" not in request.headers.get("Accept", ""):
        if rev is not None and rev.is_final and not await sync_to_async(logs.exists)(key):
            return HttpResponse(rev.build_log, content_type="text/plain; charset=utf-8")
        data, _ = await sync_to_async(logs.read)(key, 0) if key else (b"", 0)
        return HttpResponse(data, content_type="text/plain; charset=utf-8")

    try:
        start = int(request.headers.get("Last-Event-ID") or request.GET.get("offset") or 0)
    except ValueError:
        return _error(400, "Last-Event-ID must be a byte offset (a whole number).", "invalid")

    async def events():
        offset = max(start, 0)
        began = last_sent = time.monotonic()
        yield b"retry: 2000\n\n"
        if not key:
            yield _frame("end", json.dumps({"status": None, "space_status": space.status}))
            return
        if rev is not None and rev.is_final and not await sync_to_async(logs.exists)(key):
            # The live copy has expired: serve the stored log once.
            text = rev.build_log.encode()
            if offset < len(text):
                yield _frame("log", text[offset:].decode("utf-8", "replace"), len(text))
            _, info = await sync_to_async(_build_done)(rev.pk)
            yield _frame("end", json.dumps(info))
            return
        while time.monotonic() - began < MAX_STREAM_SECONDS:
            # Check for the end first, then drain: nothing written before the end is lost.
            if rev is not None:
                done, info = await _db_read(_build_done)(rev.pk)
            else:
                done, info = await _db_read(_run_done)(space.pk)
            data, new_offset = await sync_to_async(logs.read, thread_sensitive=False)(key, offset)
            if data:
                offset = new_offset
                yield _frame("log", data.decode("utf-8", "replace"), offset)
                last_sent = time.monotonic()
            if done:
                yield _frame("end", json.dumps(info))
                return
            if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
                yield b": keepalive\n\n"
                last_sent = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
