"""Issue 15, finding 8: requests that wait (a wake hold, a log stream) hold no database
connection and are capped (spaces/lifecycle/waits.py; the real stack: tests/e2e/test_lifecycle_isolation.py).

Transactional: the board reads in a thread of its own, with its own connection, which sees only
committed rows -- as it does under uvicorn.
"""
from __future__ import annotations

import asyncio
import io
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from spaces.catalog.services import revision_create
from spaces.lifecycle import sleep, waits
from spaces.records.models import Space
from spaces.records.services import space_transition
from tests.unit.test_stream_connections import other_connections

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hub")]




@pytest.fixture
def asleep(olive, make_space, repo, app_server, hub, monkeypatch):
    """A stopped space whose wake never finishes (the start would take long)."""
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    files = dict(repo.gradio, **{"README.md": repo.readme(sdk="gradio", app_port=port)})
    revision_create(space=space, archive=io.BytesIO(repo.targz(files)), created_by=olive)
    Space.objects.filter(pk=space.pk).update(sleep_after=600, last_active_at=timezone.now() - timedelta(hours=1))
    assert sleep.space_sleep(space.pk, sleep.STOPPED)
    monkeypatch.setattr(sleep, "wake_requested", lambda space_id: True)
    return Space.objects.get(pk=space.pk)


async def _wake(settings, space, client_addr: str) -> tuple[int, float]:
    t0 = time.monotonic()
    resp = await AsyncClient().get("/internal/proxy/wake", headers={
        "X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": space.host,
        "X-Demohub-Uri": "/config", "Accept": "application/json", "X-Forwarded-For": client_addr})
    return resp.status_code, time.monotonic() - t0


def test_held_wake_requests_hold_no_connection(settings, asleep):
    settings.SPACE_WAKE_HOLD = 1.5
    settings.SPACE_WAKE_HOLDS_PER_CLIENT = 0   # no caps here: 20 really wait

    async def scenario():
        before = await sync_to_async(other_connections)()
        waiting = [asyncio.ensure_future(_wake(settings, asleep, f"10.0.0.{i}")) for i in range(20)]
        await asyncio.sleep(0.8)
        during = await sync_to_async(other_connections)()
        return before, during, await asyncio.gather(*waiting)

    before, during, answers = async_to_sync(scenario)()
    assert all(code == 403 and took >= 1.4 for code, took in answers)   # held to the end, then @waking
    assert during <= before + 1, f"{during - before} connections for 20 waiting requests"   # the board's one


def test_wake_holds_over_the_callers_cap_are_answered_at_once(settings, asleep):
    settings.SPACE_WAKE_HOLD = 2.0
    settings.SPACE_WAKE_HOLDS_PER_CLIENT = 2

    async def scenario():
        return await asyncio.gather(*[_wake(settings, asleep, "10.9.9.9") for _ in range(3)],
                                    _wake(settings, asleep, "10.9.9.10"))

    *same, other = async_to_sync(scenario)()
    quick = [took for code, took in same if took < 1.2]
    assert len(quick) == 1 and all(code == 403 for code, _ in same)    # @waking: 503 with Retry-After
    assert other[1] >= 1.9                                             # another caller still waits


def test_wake_holds_are_capped_per_space(settings, asleep):
    settings.SPACE_WAKE_HOLD = 2.0
    settings.SPACE_WAKE_HOLDS_PER_SPACE = 2

    async def scenario():
        return await asyncio.gather(*[_wake(settings, asleep, f"10.8.0.{i}") for i in range(3)])

    answers = async_to_sync(scenario)()
    assert sorted(took < 1.2 for _, took in answers) == [False, False, True]


def test_a_wake_hold_ends_as_soon_as_the_space_serves(settings, asleep):
    settings.SPACE_WAKE_HOLD = 5

    async def scenario():
        waiting = asyncio.ensure_future(_wake(settings, asleep, "10.7.0.1"))
        await asyncio.sleep(0.3)
        await sync_to_async(space_transition)(asleep.pk, "RUNNING", sleep_mode="")
        return await waiting

    code, took = async_to_sync(scenario)()
    assert code == 204 and took < 1.5


def test_log_streams_are_capped_per_user(settings, olive, make_space, make_token, repo, app_server, hub):
    settings.LOG_STREAMS_PER_USER = 1
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    files = dict(repo.gradio, **{"README.md": repo.readme(sdk="gradio", app_port=port)})
    revision_create(space=space, archive=io.BytesIO(repo.targz(files)), created_by=olive)
    assert Space.objects.get(pk=space.pk).status == "RUNNING"
    headers = {"Authorization": f"Bearer {make_token(olive)}", "Accept": "text/event-stream"}

    async def scenario():
        first = await AsyncClient().get("/api/spaces/olive/demo/logs/run", headers=headers)
        chunks = first.streaming_content.__aiter__()
        opened = await chunks.__anext__()                 # the stream runs (a RUNNING space's log)
        second = await AsyncClient().get("/api/spaces/olive/demo/logs/run", headers=headers)
        await chunks.aclose()                             # the follower leaves: Django's ASGI
        await sync_to_async(first.close)()                # handler then closes the response
        third = await AsyncClient().get("/api/spaces/olive/demo/logs/run", headers=headers)
        await sync_to_async(third.close)()
        return first.status_code, opened, second, third.status_code

    first, opened, second, third = async_to_sync(scenario)()
    assert first == 200 and opened.startswith(b"retry:")
    assert second.status_code == 429 and second["Retry-After"]
    body = second.json()
    assert body["code"] == "too_many_waiting" and "at most 1" in body["detail"]
    assert third == 200                                    # the first one's place was given back


def test_a_database_away_ends_no_wait_early(settings, asleep, monkeypatch):
    # A failed read is no tick: nothing reads as "the space is gone", the hold runs its course.
    from django.db import OperationalError

    def away(keys):
        raise OperationalError("the database is away")

    monkeypatch.setattr(waits, "_read_rows", away)
    settings.SPACE_WAKE_HOLD = 1.0
    code, took = async_to_sync(_wake)(settings, asleep, "10.6.0.1")
    assert code == 403 and took >= 0.9
