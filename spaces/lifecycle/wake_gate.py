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

from spaces.access.proxy_gate import proxy_key_ok, proxy_role, space_for_host, wants_json
from spaces.access.selectors import Role
from spaces.lifecycle import sleep, waits
from spaces.records.models import Space
from spaces.records.status import SERVING, SpaceStatus

log = logging.getLogger(__name__)
S = SpaceStatus


def _wake_state(request) -> tuple[int, int | None, bool, str]:
    """(HTTP answer now or 0 to wait, space id, is an API client, who asks). Sync: runs in a
    thread. Who asks: the token's user, else the client address nginx saw (the call carries the
    proxy key, so its X-Forwarded-For is nginx's own $remote_addr)."""
    if not proxy_key_ok(request):
        return 403, None, False, ""
    space = space_for_host(request.headers.get("X-Demohub-Host", ""))
    if space is None:
        return 401, None, False, ""
    role, user = proxy_role(request, space)
    if role < Role.PUBLIC:
        return 401, None, False, ""
    if user is not None:
        who = f"user:{user.pk}"
    else:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
        who = "addr:" + (forwarded or request.META.get("REMOTE_ADDR", ""))
    api = wants_json(request, request.headers.get("X-Demohub-Uri", "/"))
    if space.status in SERVING and not space.sleep_mode:
        return 204, space.pk, api, who
    if space.status == S.RUNNING and space.sleep_mode:
        sleep.wake_requested(space.pk)         # being put to sleep right now: undo it once that is done
        return 0, space.pk, api, who
    if space.status == S.SLEEPING and sleep.has_room(space.pk):
        sleep.wake_requested(space.pk)
        # A frozen space may be awake already (eager tasks in tests; a quick worker).
        if Space.objects.filter(pk=space.pk, status__in=SERVING, sleep_mode="").exists():
            return 204, space.pk, api, who
        return 0, space.pk, api, who
    if space.status == S.APP_STARTING and space.sleep_mode:
        return 0, space.pk, api, who     # being woken
    return 403, space.pk, api, who       # paused, failed, or no room: the hub's page says which


def _serving(row: dict | None) -> tuple[bool, bool]:
    """(the app serves, the space may still wake): from the wake check's poll of the row."""
    if row is None:
        return False, False
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
    answer, space_id, api, who = await sync_to_async(_wake_state)(request)
    await waits.release_connection()
    if answer:
        return HttpResponse(status=answer)
    hold = settings.SPACE_WAKE_HOLD if api else settings.SPACE_WAKE_BROWSER_HOLD
    deadline = time.monotonic() + hold
    scopes = {"space": (f"space:{space_id}", settings.SPACE_WAKE_HOLDS_PER_SPACE),
              "client": (who, settings.SPACE_WAKE_HOLDS_PER_CLIENT)}
    try:
        async with waits.hold("wake", scopes=scopes, longest=hold + 5, what="requests waiting for it to wake"):
            async with waits.board().watching("space", space_id) as fresh:
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
        log.info("wake hold refused for space %s (%s): %s", space_id, who, exc.detail)
    return HttpResponse(status=403)
