"""Steady load on one space through the real proxy, recording every answer (redeploy tests, bench).

`RevisionApp` is a tiny docker-SDK app (python3 of demohub/base:bookworm, no packages) whose
every answer names its revision, so a switch is observable: GET / (keep-alive), POST /echo
(with a body), GET /stream?events=N (a server-sent event stream, 0.2 s per event).
`Load` runs GET and POST threads on keep-alive sessions, and optionally one long stream,
through 127.0.0.1:<proxy port> with the space's Host header; any exception, any status other
than 200 and any body that is not the app's (the hub's fallback page) is a failure.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import requests

from tests.archives import make_archive

APP = r'''
import hashlib, http.server, sys, time
from urllib.parse import parse_qs, urlparse

REV = "{rev}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real app server

    def log_message(self, *args):
        pass

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/stream":
            events = int(parse_qs(url.query).get("events", ["50"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(events):
                self.wfile.write(f"data: rev={{REV}} {{i}}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.2)
            self.wfile.write(f"event: end\ndata: rev={{REV}}\n\n".encode())
            self.wfile.flush()
            self.close_connection = True
            return
        self.answer(f"rev={{REV}} path={{url.path}}".encode())

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(f"rev={{REV}} got={{len(data)}} sha={{hashlib.sha256(data).hexdigest()[:16]}}".encode())


{start}
http.server.ThreadingHTTPServer(("0.0.0.0", 7860), Handler).serve_forever()
'''


def revision_app(rev: str, *, start: str = "", dockerfile_extra: str = "") -> bytes:
    """The repo of a docker space answering as revision `rev`. `start` is Python run before the
    server starts (an app that exits there fails its health check); `dockerfile_extra` goes
    into the Dockerfile before the COPY (a slow build: `RUN sleep 120`)."""
    return make_archive({
        "README.md": f"---\ntitle: Revision {rev}\nsdk: docker\napp_port: 7860\n---\nAnswers with its revision.\n",
        "Dockerfile": "FROM demohub/base:bookworm\n" + dockerfile_extra
                      + "COPY server.py /srv/server.py\nCMD [\"python3\", \"/srv/server.py\"]\n",
        "server.py": APP.format(rev=rev, start=start),
    })


_REV_RE = re.compile(r"^rev=(\S+)")


@dataclass
class Answer:
    at: float           # time.monotonic() when the answer (or error) came
    kind: str           # get | post
    rev: str | None     # the revision that answered, None on failure
    failure: str = ""   # why it failed; "" when it did not


@dataclass
class StreamResult:
    started: float
    events: list[str] = field(default_factory=list)
    ended: bool = False
    failure: str = ""


class Load:
    """Background load through the proxy: `getters` keep-alive GET threads, `posters` keep-alive
    POST threads (64 KiB body), and with `stream_events` one event stream opened at start()."""

    def __init__(self, proxy_port: int, space_url: str, *, getters: int = 2, posters: int = 1,
                 stream_events: int = 0, timeout: float = 10.0):
        self.base = f"http://127.0.0.1:{proxy_port}"
        self.host = urlparse(space_url).netloc
        self.getters, self.posters, self.stream_events = getters, posters, stream_events
        self.timeout = timeout
        self.answers: list[Answer] = []
        self.stream: StreamResult | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.body = os.urandom(64 * 1024)
        self.body_sha = hashlib.sha256(self.body).hexdigest()[:16]

    def _session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # never through an HTTP proxy from the environment
        s.headers["Host"] = self.host
        return s

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def _check(self, kind: str, resp: requests.Response) -> Answer:
        now = time.monotonic()
        match = _REV_RE.match(resp.text)
        if resp.status_code != 200 or match is None:
            return Answer(now, kind, None, f"HTTP {resp.status_code}: {resp.text[:120]!r}")
        if kind == "post" and f"got={len(self.body)} sha={self.body_sha}" not in resp.text:
            return Answer(now, kind, None, f"body not echoed: {resp.text[:120]!r}")
        return Answer(now, kind, match.group(1))

    def _loop(self, kind: str) -> None:
        session = self._session()
        while not self._stop.is_set():
            try:
                if kind == "get":
                    resp = session.get(self.base + "/", timeout=self.timeout, allow_redirects=False)
                else:
                    resp = session.post(self.base + "/echo", data=self.body, timeout=self.timeout,
                                        allow_redirects=False)
                self._record(self._check(kind, resp))
            except requests.RequestException as exc:
                self._record(Answer(time.monotonic(), kind, None, f"{type(exc).__name__}: {exc}"))
                time.sleep(0.05)  # a refused connection fails fast: do not spin

    def _stream(self) -> None:
        result = self.stream = StreamResult(started=time.monotonic())
        try:
            with self._session().get(f"{self.base}/stream?events={self.stream_events}", stream=True,
                                     timeout=self.timeout) as resp:
                if resp.status_code != 200:
                    result.failure = f"HTTP {resp.status_code}"
                    return
                for line in resp.iter_lines(decode_unicode=True):
                    if line.startswith("event: end"):
                        result.ended = True
                    elif line.startswith("data: ") and not result.ended:
                        result.events.append(line[len("data: "):])
        except requests.RequestException as exc:
            result.failure = f"{type(exc).__name__}: {exc}"

    def start(self) -> "Load":
        kinds = ["get"] * self.getters + ["post"] * self.posters
        self._threads = [threading.Thread(target=self._loop, args=(k,), daemon=True) for k in kinds]
        if self.stream_events:
            self._threads.append(threading.Thread(target=self._stream, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> "Load":
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 60)
        return self

    # -- what happened --------------------------------------------------------------------
    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def failures(self) -> list[Answer]:
        return [a for a in self.snapshot() if a.failure]

    def first(self, rev: str, after: float = 0.0) -> float | None:
        """When `rev` first answered (time.monotonic()), at or after `after`."""
        return next((a.at for a in self.snapshot() if a.rev == rev and a.at >= after), None)

    def wait_for(self, rev: str, *, after: float = 0.0, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = self.first(rev, after)
            if at is not None:
                return at
            time.sleep(0.05)
        raise AssertionError(f"revision {rev} never answered within {timeout} s; "
                             f"failures: {self.summary()}")

    def summary(self) -> str:
        answers = self.snapshot()
        failures = [a for a in answers if a.failure]
        revs: dict[str, int] = {}
        for a in answers:
            if a.rev:
                revs[a.rev] = revs.get(a.rev, 0) + 1
        shown = "; ".join(f"{a.kind}: {a.failure}" for a in failures[:5])
        return f"{len(answers)} answers {revs}, {len(failures)} failed" + (f" ({shown})" if shown else "")
