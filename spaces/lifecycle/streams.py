"""Build and run logs: plain text, or a live event stream (design.md §4).

`GET /api/spaces/<owner>/<name>/logs/build|run` with `Accept: text/event-stream` streams
`event: log` frames whose `id:` is the byte offset after them (resume with Last-Event-ID) and
ends with `event: end` carrying the final status. The view is async: under uvicorn a follower
holds no worker thread, only a coroutine polling Redis, and no database connection: the status
it waits on comes from the process's one board (spaces/lifecycle/waits.py). Streams open at once are
capped per user (LOG_STREAMS_PER_USER) and per space (LOG_STREAMS_PER_SPACE): 429 past a cap.
"""
from __future__ import annotations

import asyncio
import json
import time
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.crypto import constant_time_compare

from spaces.access.selectors import Action, can, space_get_for_viewer
from spaces.access.services import share_links_in_session
from spaces.accounts.auth import bearer_from_header
from spaces.accounts.services import token_authenticate
from spaces.lifecycle import logs, waits
from spaces.records.models import Revision, Space
from spaces.records.status import SERVING, SpaceStatus

SessionStore = import_module(settings.SESSION_ENGINE).SessionStore

POLL_SECONDS = 0.3
KEEPALIVE_SECONDS = 15
MAX_STREAM_SECONDS = 3600
# How often an open stream asks again whether its follower may still read the logs (a removed
# editor, a revoked token, a deactivated or logged-out user): it ends within this long.
ACCESS_RECHECK_SECONDS = 5
# How often an open stream asks again whether its follower may still read the logs (a removed
# editor, a revoked token, a deactivated or logged-out user): it ends within this long.
ACCESS_RECHECK_SECONDS = 5


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


def _still_allowed(*, raw_token: str | None, user_id: int | None, session_key: str | None,
                   share_link_ids: list[int], space_id: int) -> bool:
    """Whether the follower who opened a stream may still read its logs, from the database
    and the session store now (not from what the request carried when it began)."""
    if raw_token is not None:
        token = token_authenticate(raw_token)              # revoked, or its user deactivated
        if token is None:
            return False
        user = token.user
    elif user_id is not None:
        user = User.objects.filter(pk=user_id, is_active=True).first()
        session = SessionStore(session_key) if session_key else None
        # Logged out (the session is gone) or the password changed (its hash no longer matches).
        if user is None or session is None or session.get(SESSION_KEY) != str(user_id) or \
                not constant_time_compare(session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
            return False
    else:
        user = AnonymousUser()
    space = Space.objects.select_related("owner").filter(pk=space_id).first()
    if space is None:
        return False
    try:
        space, role = space_get_for_viewer(owner=space.owner.username, name=space.name, user=user,
                                           share_link_ids=share_link_ids)
    except Http404:
        return False
    return can(role, Action.READ_LOGS, user=user, space=space)


def _error(status: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


def _log_source(space: Space, kind: str) -> tuple[str, Revision | None]:
    if kind == "build":
        rev = space.latest_revision
        return (logs.build_key(rev.pk) if rev else ""), rev
    return logs.run_key(space.pk), None


def _build_done(row: dict | None) -> tuple[bool, dict]:
    """(the build ended, what `event: end` says) from the board's row of the revision."""
    if row is None:
        return True, {"status": None, "space_status": "DELETED"}
    return row["final"], {"status": row["status"], "revision": row["number"], "space_status": row["space_status"],
                          "error": row["error"]}


def _run_done(row: dict | None) -> tuple[bool, dict]:
    """(the run ended, what `event: end` says) from the board's row of the space."""
    if row is None:
        return True, {"space_status": "DELETED"}
    live = row["status"] in SERVING or row["status"] == SpaceStatus.APP_STARTING
    return not live, {"space_status": row["status"], "error": row["error"]}


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
    if rev is not None and rev.is_final and not await sync_to_async(logs.exists)(key):
        stored = rev.build_log.encode()  # the live copy has expired: the stored log, read now
    else:
        stored = None
    # Who opened the stream, to ask again every ACCESS_RECHECK_SECONDS (_still_allowed).
    raw_token = bearer_from_header(request.headers.get("Authorization", ""))
    session = getattr(request, "session", None)
    follower = dict(raw_token=raw_token, user_id=user.pk if user.is_authenticated and raw_token is None else None,
                    session_key=session.session_key if session is not None else None,
                    share_link_ids=await sync_to_async(share_links_in_session)(request), space_id=space.pk)

    # Everything the stream needs from the database is read: the connection goes back now,
    # not when the stream ends (up to an hour later).
    await waits.release_connection()
    scopes = {"user": (f"user:{user.pk}", settings.LOG_STREAMS_PER_USER),
              "space": (f"space:{space.pk}", settings.LOG_STREAMS_PER_SPACE)}
    try:
        # Counted until the stream ends (below), not just while this view runs.
        release = await waits.hold_enter("logs", scopes=scopes, longest=MAX_STREAM_SECONDS + 60,
                                         what="live log streams")
    except waits.HoldRefused as exc:
        resp = _error(429 if exc.code == "too_many_waiting" else 503, exc.detail, exc.code)
        resp["Retry-After"] = "10"
        return resp

    async def events():
        offset = max(start, 0)
        began = last_sent = checked = time.monotonic()
        try:
            yield b"retry: 2000\n\n"
            if not key:
                yield _frame("end", json.dumps({"status": None, "space_status": space.status}))
                return
            if stored is not None:
                # A final revision does not change: its end is what was read above.
                if offset < len(stored):
                    yield _frame("log", stored[offset:].decode("utf-8", "replace"), len(stored))
                yield _frame("end", json.dumps({"status": rev.status, "revision": rev.number,
                                                "space_status": space.status, "error": rev.error}))
                return
            watched = ("revision", rev.pk) if rev is not None else ("space", space.pk)
            ended = _build_done if rev is not None else _run_done
            async with waits.board().watching(*watched) as fresh:
                while time.monotonic() - began < MAX_STREAM_SECONDS:
                    if time.monotonic() - checked >= ACCESS_RECHECK_SECONDS:
                        checked = time.monotonic()
                        if not await _db_read(_still_allowed)(**follower):
                            yield _frame("end", json.dumps({"code": "access_revoked",
                                                            "detail": "You may no longer read this space's logs."}))
                            return
                    # Check for the end first, then drain: nothing written before the end is lost.
                    try:
                        done, info = ended(await asyncio.wait_for(fresh(), timeout=KEEPALIVE_SECONDS))
                    except asyncio.TimeoutError:   # the database is away: keep the stream alive
                        yield b": keepalive\n\n"
                        last_sent = time.monotonic()
                        continue
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
        finally:
            # Shielded: a client that leaves cancels this task, and the count must still drop.
            await asyncio.shield(sync_to_async(release, thread_sensitive=False)())

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    # Also when the stream never started (the client left at once): release is idempotent.
    response._resource_closers.append(release)  # noqa: SLF001  (Django has no public hook for a streaming response's close)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
