"""The proxy's wake check: nginx asks it before sending a request to a sleeping space.

It starts the wake (spaces/lifecycle/sleep.py) and holds the request, with no database
connection (spaces/lifecycle/waits.py), until the app answers or the hold time ends.
"""
from __future__ import annotations

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse

from spaces.access.proxy_gate import host_target, proxy_key_ok, proxy_role, wants_json
from spaces.access.selectors import Role
from spaces.lifecycle import preview_runs, sleep, waits
from spaces.records.models import Preview, Space
from spaces.records.status import SERVING, SpaceStatus

log = logging.getLogger(__name__)
S = SpaceStatus


def _wake_state(request) -> tuple[int, tuple[str, int] | None, bool, str]:
    """(HTTP answer now or 0 to wait, the row to wait on: ("space" or "preview", id), is an API
    client, who asks). Sync: runs in a thread. Who asks: the token's user, else the client
    address nginx saw (the call carries the proxy key, so its X-Forwarded-For is nginx's own
    $remote_addr)."""
    if not proxy_key_ok(request):
        return 403, None, False, ""
    space, preview = host_target(request.headers.get("X-Demohub-Host", ""))
    if space is None:
        return 401, None, False, ""
    role, user = proxy_role(request, space, preview)
    if role < Role.PUBLIC:
        return 401, None, False, ""
    if user is not None:
        who = f"user:{user.pk}"
    else:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
        who = "addr:" + (forwarded or request.META.get("REMOTE_ADDR", ""))
    api = wants_json(request, request.headers.get("X-Demohub-Uri", "/"))
    if preview is not None:
        return _preview_wake_state(preview), ("preview", preview.pk), api, who
    key = ("space", space.pk)
    if space.status in SERVING and not space.sleep_mode:
        return 204, key, api, who
    if space.status == S.RUNNING and space.sleep_mode:
        sleep.wake_requested(space.pk)         # being put to sleep right now: undo it once that is done
        return 0, key, api, who
    if space.status == S.SLEEPING and sleep.has_room(space.pk):
        sleep.wake_requested(space.pk)
        # A frozen space may be awake already (eager tasks in tests; a quick worker).
        if Space.objects.filter(pk=space.pk, status__in=SERVING, sleep_mode="").exists():
            return 204, key, api, who
        return 0, key, api, who
    if space.status == S.APP_STARTING and space.sleep_mode:
        return 0, key, api, who     # being woken
    return 403, key, api, who       # paused, failed, or no room: the hub's page says which


def _preview_wake_state(preview: Preview) -> int:
    """A branch preview's answer now (0: wait): asleep, it is woken (counted like a space)."""
    if preview.status == Preview.Status.RUNNING:
        return 204
    if preview.status == Preview.Status.SLEEPING and sleep.has_room(0):
        preview_runs.preview_wake_requested(preview.pk)
        # Awake already (eager tasks in tests; a quick worker).
        return 204 if Preview.objects.filter(pk=preview.pk, status=Preview.Status.RUNNING).exists() else 0
    if preview.status == Preview.Status.STARTING:
        return 0     # being started (a new commit, or a wake)
    return 403       # building, failed, or no room: the hub's page says which


def _serving(row: dict | None) -> tuple[bool, bool]:
    """(the app serves, the space may still wake): from the wake check's poll of the row."""
    if row is None:
        return False, False
    if "sleep_mode" not in row:   # a branch preview's row
        return row["status"] == Preview.Status.RUNNING, row["status"] in (Preview.Status.SLEEPING,
                                                                         Preview.Status.STARTING)
    status, mode = row["status"], row["sleep_mode"]
    return status in SERVING and not mode, status in SERVING or status in (S.SLEEPING, S.APP_STARTING)


async def proxy_wake(request) -> HttpResponse:
    """nginx auth_request for a sleeping space: 204 once the app serves (the request then goes
    on to it), 401 if the caller may not see the space, 403 to show the waking page (or 503,
    or 429 at the running-space cap) when it is not up within the hold time, or at once when
    too many requests wait already (SPACE_WAKE_HOLDS_PER_SPACE, SPACE_WAKE_HOLDS_PER_CLIENT).

    The wait holds no database connection (spaces/lifecycle/waits.py): the short reads above run on the
    request's thread, whose connection is then closed; the status is polled by the process's
    one board, however many requests wait.
    """
    answer, key, api, who = await sync_to_async(_wake_state)(request)
    await waits.release_connection()
    if answer:
        return HttpResponse(status=answer)
    hold = settings.SPACE_WAKE_HOLD if api else settings.SPACE_WAKE_BROWSER_HOLD
    deadline = time.monotonic() + hold
    scopes = {"space": (f"{key[0]}:{key[1]}", settings.SPACE_WAKE_HOLDS_PER_SPACE),
              "client": (who, settings.SPACE_WAKE_HOLDS_PER_CLIENT)}
    try:
        async with waits.hold("wake", scopes=scopes, longest=hold + 5, what="requests waiting for it to wake"):
            async with waits.board().watching(*key) as fresh:
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        row = await asyncio.wait_for(fresh(), timeout=left)
                    except asyncio.TimeoutError:
                        break
                    serving, waking = _serving(row)
                    if serving:
                        return HttpResponse(status=204)
                    if not waking:
                        break
    except waits.HoldRefused as exc:
        # auth_request knows only 2xx, 401 and 403: 403 sends the visitor to @waking, which
        # answers 503 with Retry-After (the waking page for browsers); nothing waits here.
        log.info("wake hold refused for %s %s (%s): %s", key[0], key[1], who, exc.detail)
    return HttpResponse(status=403)
