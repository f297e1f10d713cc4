"""Access taken away ends connections already open to the app (design.md §6), without making
every visibility change a reload (issue 9).

New requests are checked at once from the state flags; a WebSocket or a kept-alive stream that
was opened before is not. When the access services report a change (a space made private, a
collaborator removed, ...) and the proxy's network namespace has a connection open to a private
app, the route worker closes those sockets (the kernel's socket-destroy call, `ss -K`); where
that is not available it asks the proxy for one batched reload instead. With nothing open,
nothing happens.
"""
from __future__ import annotations

import socket

from runner import connections, proxy
from spaces.lifecycle.routes import proxy_config, space_route
from tests.unit.helpers import fresh


def _generation() -> int:
    return proxy.current_generation(proxy_config())


def _connect(space) -> socket.socket:
    host, port = space_route(space).upstream.rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=5)
    conn.settimeout(5)
    return conn


def _private_flag_epoch(space) -> int:
    """The access epoch the proxy's private flag holds for the space."""
    return int((proxy_config().states_dir / f"{space.label}.private").read_text())


def _closed(conn: socket.socket) -> bool:
    try:
        return conn.recv(1) == b""
    except OSError:                       # aborted by the socket-destroy call
        return True


def _make_private(api, olive, run_on_commit):
    with run_on_commit():
        resp = api(olive).patch("/api/spaces/olive/demo", {"visibility": "private"}, format="json")
    assert resp.status_code == 200


def test_made_private_with_a_connection_open_closes_it_and_reloads_nothing(hub, serving, api, olive,
                                                                              run_on_commit):
    conn = _connect(serving)            # as a visitor's WebSocket through the proxy would be
    try:
        before = _generation()
        _make_private(api, olive, run_on_commit)
        assert _closed(conn)
        assert _generation() == before
        assert _private_flag_epoch(serving) == fresh(serving).access_epoch
    finally:
        conn.close()


def test_without_the_socket_destroy_call_the_proxy_reloads_once(hub, serving, api, olive, run_on_commit,
                                                                 monkeypatch):
    monkeypatch.setattr(connections, "end_connections_to", lambda peers: False)
    conn = _connect(serving)
    try:
        before = _generation()
        _make_private(api, olive, run_on_commit)
        assert _generation() == before + 1
    finally:
        conn.close()


def test_made_private_with_nothing_open_does_nothing(hub, serving, api, olive, run_on_commit):
    before = _generation()
    _make_private(api, olive, run_on_commit)
    assert _generation() == before
    assert _private_flag_epoch(serving) == fresh(serving).access_epoch


def test_a_removed_collaborator_ends_connections_but_making_it_public_does_not(hub, serving, api, olive,
                                                                               run_on_commit, make_user):
    make_user("vera")
    _make_private(api, olive, run_on_commit)
    with run_on_commit():
        added = api(olive).post("/api/spaces/olive/demo/collaborators", {"username": "vera", "role": "viewer"},
                                format="json")
    assert added.status_code in (200, 201), added.content
    conn = _connect(serving)
    try:
        with run_on_commit():
            resp = api(olive).delete("/api/spaces/olive/demo/collaborators/vera")
        assert resp.status_code in (200, 204)
        assert _closed(conn)
    finally:
        conn.close()
    conn = _connect(serving)
    try:
        with run_on_commit():                   # public again: access widened, nothing to end
            api(olive).patch("/api/spaces/olive/demo", {"visibility": "public"}, format="json")
        conn.setblocking(False)
        try:
            assert conn.recv(1) != b""          # data would be odd; what matters: not closed
        except BlockingIOError:
            pass                                # still open, nothing to read
    finally:
        conn.close()
