"""Git's smart HTTP protocol at the space's own URL, served by git itself (`git http-backend`).

    GET  /spaces/<owner>/<name>[.git]/info/refs?service=git-upload-pack|git-receive-pack
    POST /spaces/<owner>/<name>[.git]/git-upload-pack      clone, fetch
    POST /spaces/<owner>/<name>[.git]/git-receive-pack     push

Only these three paths go to git; the dumb protocol (plain files of the repository) is not
served. Who may do what is the one access check (design.md §6, "files, history, clone"): anyone
who may see the space clones (share-link holders no: a link opens the app, not its code); an
editor or the owner with a write-scope token pushes. Credentials are HTTP Basic, the user name
and an API token as the password (the user name must be the token's owner). Without
credentials a private or missing repository, and every push, is 401 with
`WWW-Authenticate: Basic` (git asks for credentials only then); an authenticated stranger gets
404 as for a missing repository.

The request body is spooled to a file first (git sends bodies over 1 MiB chunked; the CGI gets
CONTENT_LENGTH from the spool, and HTTP_CONTENT_ENCODING so git unpacks a gzip body itself); the
answer streams from git as it comes. A push runs the receive hooks (spaces/repos/git_hooks/,
`receive.py`): every new commit is checked like an upload before any ref moves, and a push to
main becomes a revision whose build starts at once.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connections as db_connections
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from spaces.access.selectors import Action, can, space_get_for_git
from spaces.accounts.auth import BadCredentials, basic_token_user
from spaces.accounts.models import ApiToken
from spaces.repos import receive, store
from spaces.repos.conf import setting
from spaces.web.unavailable import answers_503_when_down

log = logging.getLogger(__name__)

SERVICES = ("git-upload-pack", "git-receive-pack")
# One answer for every anonymous refusal: a private repository and a missing one look the same.
AUTH_REQUIRED = "Authentication required: your user name and an API token (dh_...) as the password."
HOOKS_DIR = Path(__file__).resolve().parent / "git_hooks"
_CHUNK = 64 * 1024
def _text(status: int, message: str, headers: dict | None = None) -> HttpResponse:
    resp = HttpResponse(message.rstrip("\n") + "\n", status=status, content_type="text/plain; charset=utf-8")
    for key, value in (headers or {}).items():
        resp[key] = value
    resp["Cache-Control"] = "no-store"
    return resp


def _unauthorized(message: str) -> HttpResponse:
    return _text(401, message, {"WWW-Authenticate": 'Basic realm="Demohub", charset="UTF-8"'})


@csrf_exempt
@answers_503_when_down
def git_http(request, owner: str, name: str, service: str = ""):
    suffix = "info/refs" if not service else service
    if not service:
        service = request.GET.get("service", "")
        if request.method not in ("GET", "HEAD"):
            return _text(405, "Use GET for info/refs.")
    elif request.method != "POST":
        return _text(405, f"Use POST for {service}.")
    if service not in SERVICES:
        return _text(403, "Only git's smart HTTP protocol is served: use git 1.6.6 or newer.")
    try:
        found = basic_token_user(request.META.get("HTTP_AUTHORIZATION", ""))
    except BadCredentials as exc:
        return _unauthorized(str(exc))
    user, token = found if found else (None, None)
    push = service == "git-receive-pack"
    try:
        space, role = space_get_for_git(owner=owner, name=name, user=user)
    except Http404:
        if user is None:
            return _unauthorized(AUTH_REQUIRED)
        return _text(404, "Repository not found.")
    if push and user is None:
        return _unauthorized(AUTH_REQUIRED)
    if not can(role, Action.READ_FILES, user=user, space=space):
        return _text(404, "Repository not found.")
    if push and not can(role, Action.EDIT, user=user, space=space):
        return _text(403, "You may clone this space but not push to it: pushing needs the owner or an editor.")
    if push and token.scope != ApiToken.Scope.WRITE:
        return _text(403, "This API token is read-only: create a write token to push.")
    if push:
        store.ensure_repo(space)
    elif not store.exists(space):
        # A space without a commit yet clones as an empty repository.
        store.ensure_repo(space)
    return _run_backend(request, space, user, suffix)


def _spool(request):
    """The request body in a file (git sends a large one chunked), and its length; None if too large."""
    body = tempfile.TemporaryFile(prefix="demohub-git-")
    size, cap = 0, settings.GIT_PUSH_MAX_BYTES + 2**20
    while chunk := request.read(_CHUNK):
        size += len(chunk)
        if size > cap:
            body.close()
            return None, size
        body.write(chunk)
    body.seek(0)
    return body, size


def _cgi_env(request, space, user, suffix: str, length: int, hooks: HookServer | None) -> dict:
    env = store.git_env(store.repo_path(space), {
        "GIT_PROJECT_ROOT": str(Path(settings.REPOS_DIR).resolve()),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{int(space.pk)}.git/{suffix}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.META.get("QUERY_STRING", ""),
        "CONTENT_TYPE": request.META.get("CONTENT_TYPE", ""),
        "CONTENT_LENGTH": str(length),
        "REMOTE_ADDR": request.META.get("REMOTE_ADDR", ""),
        "REMOTE_USER": user.username if user else "",
        "SERVER_PROTOCOL": request.META.get("SERVER_PROTOCOL", "HTTP/1.1"),
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": str(HOOKS_DIR),
        "GIT_CONFIG_KEY_1": "receive.maxInputSize", "GIT_CONFIG_VALUE_1": str(settings.GIT_PUSH_MAX_BYTES),
        "DEMOHUB_PYTHON": sys.executable,
    })
    env.pop("GIT_DIR", None)          # http-backend finds the repository from PATH_INFO
    if hooks is not None:
        env.update(hooks.env())
    for header in ("HTTP_CONTENT_ENCODING", "HTTP_GIT_PROTOCOL"):
        if request.META.get(header):
            env[header] = request.META[header]
    return env


class HookServer:
    """A unix socket, private to this request, on which the hook scripts of this push hand their
    work to receive.handle, in a thread of this process (its own database connection)."""

    def __init__(self, space_id: int, pusher_id: int):
        self.space_id, self.pusher_id = space_id, pusher_id
        self.key = secrets.token_hex(16)
        self.snapshots: dict = {}       # pre-receive's checked snapshots, for post-receive
        self.dir = tempfile.mkdtemp(prefix="demohub-hooks-")
        os.chmod(self.dir, 0o700)
        self.path = os.path.join(self.dir, "s")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, name="git-hooks", daemon=True)
        self.thread.start()

    def env(self) -> dict:
        return {"DEMOHUB_HOOK_SOCKET": self.path, "DEMOHUB_HOOK_KEY": self.key,
                "DEMOHUB_HOOK_TIMEOUT": str(setting("GIT_HTTP_TIMEOUT"))}

    def _serve(self) -> None:
        try:
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return                          # closed: the push is over
                with conn:
                    self._one(conn)
        finally:
            db_connections.close_all()

    def _one(self, conn) -> None:
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
            if len(data) > 16 * 2**20:
                return
        try:
            request = json.loads(data)
        except ValueError:
            return
        if not hmac.compare_digest(str(request.get("key", "")), self.key):
            return
        answer = receive.handle(request, space_id=self.space_id, pusher_id=self.pusher_id,
                                snapshots=self.snapshots)
        conn.sendall(json.dumps(answer).encode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def _run_backend(request, space, user, suffix: str):
    body, length = _spool(request)
    if body is None:
        return _text(413, f"The push is larger than this hub takes ({settings.GIT_PUSH_MAX_BYTES} bytes): "
                          "large files are not supported (no Git LFS); push smaller commits.")
    hooks = HookServer(space.pk, user.pk) if suffix == "git-receive-pack" else None
    try:
        env = _cgi_env(request, space, user, suffix, length, hooks)
        stderr = tempfile.TemporaryFile(prefix="demohub-git-err-")
        proc = subprocess.Popen([setting("GIT_BINARY"), "http-backend"], stdin=body, stdout=subprocess.PIPE,
                                stderr=stderr, env=env)
    except BaseException:
        if hooks is not None:
            hooks.close()
        raise
    finally:
        body.close()
    timer = threading.Timer(setting("GIT_HTTP_TIMEOUT"), proc.kill)
    timer.start()
    try:
        status, headers, rest = _read_headers(proc.stdout)
    except BaseException:
        timer.cancel()
        proc.kill()
        proc.wait()
        stderr.close()
        if hooks is not None:
            hooks.close()
        raise
    stream = _astream if isinstance(request, ASGIRequest) else _stream
    response = StreamingHttpResponse(stream(proc, rest, timer, stderr, hooks), status=status)
    for key, value in headers:
        if key.lower() not in ("status", "content-length"):
            response[key] = value
    response["X-Accel-Buffering"] = "no"
    return response


def _read_headers(out) -> tuple[int, list[tuple[str, str]], bytes]:
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        chunk = out.read1(_CHUNK) if hasattr(out, "read1") else out.read(_CHUNK)
        if not chunk:
            break
        data += chunk
        if len(data) > 64 * 1024:
            break
    sep = b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n"
    head, _, rest = data.partition(sep)
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        elif key:
            headers.append((key.strip(), value.strip()))
    return status, headers, rest


def _finish(proc, finished: bool, timer, stderr, hooks: HookServer | None) -> None:
    if not finished and proc.poll() is None:
        proc.kill()          # the client went away mid-answer
    code = proc.wait()
    timer.cancel()
    if hooks is not None:
        hooks.close()
    stderr.seek(0)
    err = stderr.read(4000).decode(errors="replace").strip()
    stderr.close()
    if code or err:
        log.info("git http-backend exited %s: %s", code, err)


def _stream(proc, rest: bytes, timer, stderr, hooks: HookServer | None):
    """git's answer as it comes (WSGI, the test client)."""
    finished = False
    try:
        if rest:
            yield rest
        while chunk := proc.stdout.read1(_CHUNK):
            yield chunk
        finished = True
    finally:
        _finish(proc, finished, timer, stderr, hooks)


async def _astream(proc, rest: bytes, timer, stderr, hooks: HookServer | None):
    """The same under ASGI (uvicorn): Django would read a synchronous iterator to its end
    before sending a byte, so a clone would sit in memory; each read waits in a thread."""
    finished = False
    try:
        if rest:
            yield rest
        while chunk := await asyncio.to_thread(proc.stdout.read1, _CHUNK):
            yield chunk
        finished = True
    finally:
        await asyncio.to_thread(_finish, proc, finished, timer, stderr, hooks)
