"""Access taken away ends connections already open to the app (design.md §6), without making
every visibility change a reload (issue 9).

New requests are checked at once from the state flags; a WebSocket or a kept-alive stream that
was opened before is not. When access narrows (a space made private, its epoch bumped by a
revocation) and the proxy's network namespace has a connection open to the app, the route
worker asks the proxy for a reload, which closes it; with nothing open, nothing reloads.
"""
from __future__ import annotations

import socket

from runner import proxy
from spaces.lifecycle.routes import proxy_config, space_route
from tests.unit.helpers import fresh


def _generation() -> int:
    return proxy.current_generation(proxy_config())


def _connect(space) -> socket.socket:
    host, port = space_route(space).upstream.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def test_made_private_with_a_connection_open_the_proxy_reloads(hub, serving, api, olive, run_on_commit):
    conn = _connect(serving)            # as a visitor's WebSocket through the proxy would be
    try:
        before = _generation()
        with run_on_commit():
            resp = api(olive).patch("/api/spaces/olive/demo", {"visibility": "private"}, format="json")
        assert resp.status_code == 200
        assert _generation() > before
        assert proxy.private_epoch(serving.label, proxy_config()) == fresh(serving).access_epoch
    finally:
        conn.close()


def test_made_private_with_nothing_open_reloads_nothing(hub, serving, api, olive, run_on_commit):
    before = _generation()
    with run_on_commit():
        resp = api(olive).patch("/api/spaces/olive/demo", {"visibility": "private"}, format="json")
    assert resp.status_code == 200
    assert _generation() == before
    assert proxy.private_epoch(serving.label, proxy_config()) == fresh(serving).access_epoch


def test_a_revocation_on_a_private_space_with_a_connection_open_reloads(hub, serving, api, olive, run_on_commit,
                                                                           make_user):
    make_user("vera")
    with run_on_commit():
        api(olive).patch("/api/spaces/olive/demo", {"visibility": "private"}, format="json")
        added = api(olive).post("/api/spaces/olive/demo/collaborators", {"username": "vera", "role": "viewer"},
                                format="json")
    assert added.status_code in (200, 201), added.content
    conn = _connect(serving)
    try:
        before = _generation()
        with run_on_commit():
            resp = api(olive).delete("/api/spaces/olive/demo/collaborators/vera")
        assert resp.status_code in (200, 204)
        assert _generation() > before
    finally:
        conn.close()
    before = _generation()
    with run_on_commit():                       # public again: access widened, nothing to end
        api(olive).patch("/api/spaces/olive/demo", {"visibility": "public"}, format="json")
    assert _generation() == before
