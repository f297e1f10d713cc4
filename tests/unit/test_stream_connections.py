"""Log streams read the database off the request's thread (so a follower holds no thread);
each of those reads must give its connection back. Left open, every pool thread kept one
Postgres connection for good (Django closes connections only at the end of a request, on the
request's thread), which the last assertion counts in pg_stat_activity.
"""
from __future__ import annotations

import asyncio
import io

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from django.test import AsyncClient

from spaces.catalog.services import revision_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hub")]


def other_connections() -> int:
    """Connections to this test database other than this thread's own."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("kind", ["run", "build"])
def test_stream_reads_leave_no_connection_open(olive, make_space, make_token, repo, hub, kind):
    space = make_space(olive, "demo", sdk="gradio")
    # A finished build whose live log is still in Redis; the app exits at once. Each stream
    # then ends after its first read of the database.
    hub.backend.fail_start = True
    revision_create(space=space, archive=io.BytesIO(repo.targz(repo.gradio)), created_by=olive)
    headers = {"Authorization": f"Bearer {make_token(olive)}", "Accept": "text/event-stream"}

    async def scenario() -> tuple[int, int, list[bytes]]:
        # One event loop for all: its pool threads stay alive, as under uvicorn, so a
        # connection one of them keeps would show here.
        before = await sync_to_async(other_connections)()
        bodies = []
        for _ in range(6):
            resp = await AsyncClient().get(f"/api/spaces/olive/demo/logs/{kind}", headers=headers)
            assert resp.status_code == 200
            bodies.append(b"".join([chunk async for chunk in resp.streaming_content]))
        # A closed connection's server process takes a moment to leave pg_stat_activity.
        for _ in range(40):
            after = await sync_to_async(other_connections)()
            if after <= before:
                break
            await asyncio.sleep(0.05)
        return before, after, bodies

    before, after, bodies = async_to_sync(scenario)()
    assert all(b"event: end" in body for body in bodies)
    assert after == before
