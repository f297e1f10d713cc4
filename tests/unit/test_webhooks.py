"""Webhooks (issue 14): URL and address checks, signing, delivery to a real loopback receiver
(signature, retry after a 500, no redirects, the timeout, the pinned address), the bounded
log, secrets at rest, and 503 when the database does not answer."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import OperationalError, connection

from spaces.webhooks import services, targets
from spaces.webhooks.models import DeliveryOutcome, Webhook, WebhookDelivery

from .helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


# ------------------------------------------------------------------------------ a real receiver
class Receiver:
    """An HTTP server on 127.0.0.1 that records each request and answers from `answers`
    (status codes, used in turn; the last one repeats)."""

    def __init__(self, answers=(200,), delay: float = 0.0, location: str = ""):
        self.requests: list[dict] = []
        self.answers = list(answers)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                time.sleep(delay)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_CIDRS = ["127.0.0.0/8"]
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0
    made = []

    def make(*args, **kwargs) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def verify(secret: str, request: dict) -> bool:
    """What a receiver does, written independently of the hub's code."""
    expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request["headers"]["X-Demohub-Signature"])


# ------------------------------------------------------------------------------ checks
@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "224.0.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1",
                                     "::ffff:10.0.0.1", "240.0.0.1"])
def test_inner_addresses_are_refused_by_default(address):
    why = targets.address_refusal(address)
    assert why and address in why and "WEBHOOK_ALLOW_CIDRS" in why


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_pass(address):
    assert targets.address_refusal(address) is None


def test_the_operator_allows_ranges(settings):
    settings.WEBHOOK_ALLOW_CIDRS = ["10.0.0.0/8", "127.0.0.1/32"]
    assert targets.address_refusal("10.9.8.7") is None
    assert targets.address_refusal("127.0.0.1") is None
    assert targets.address_refusal("127.0.0.2")          # only what was allowed
    assert targets.address_refusal("192.168.0.1")


@pytest.mark.parametrize("url, words", [
    ("ftp://example.com/", "http:// or https://"),
    ("https://user:pw@example.com/", "user name or password"),
    ("http:///path", "no host"),
    ("http://example.com:99999/", "invalid port"),
    ("http://exa mple.com/", "whitespace"),
    ("", "empty"),
    ("https://example.com/" + "a" * 2001, "longer than"),
])
def test_bad_urls_are_named(url, words):
    with pytest.raises(targets.TargetRefused) as exc:
        targets.parse_url(url)
    assert words in str(exc.value)


def test_signature_is_hmac_sha256_of_the_raw_body():
    body = b'{"event":"ping"}'
    assert services.sign("s3cret-s3cret-s3cret", body) == (
        "sha256=" + hmac.new(b"s3cret-s3cret-s3cret", body, hashlib.sha256).hexdigest())
    assert services.signature_valid("s3cret-s3cret-s3cret", body, services.sign("s3cret-s3cret-s3cret", body))
    assert not services.signature_valid("s3cret-s3cret-s3cret", body + b" ", services.sign("s3cret-s3cret-s3cret", body))


# ------------------------------------------------------------------------------ the API
def test_a_private_address_is_refused_unless_allowed(api, olive, make_space, settings):
    space = make_space(olive, "demo")
    client = api(olive)
    for url in ("http://10.0.0.5/hook", "http://127.0.0.1:9/hook", "http://[::1]/x", "http://localhost:9/x"):
        assert_error(client.post("/api/spaces/olive/demo/webhooks", {"url": url}, format="json"), 400,
                     "webhook_address_refused")
    assert not Webhook.objects.filter(space=space).exists()
    settings.WEBHOOK_ALLOW_CIDRS = ["10.0.0.0/8"]
    resp = client.post("/api/spaces/olive/demo/webhooks", {"url": "http://10.0.0.5/hook"}, format="json")
    assert resp.status_code == 201, resp.content


def test_create_shows_the_secret_once_and_stores_it_encrypted(api, olive, make_space):
    make_space(olive, "demo")
    client = api(olive)
    resp = client.post("/api/spaces/olive/demo/webhooks",
                       {"url": "https://93.184.216.34/hook", "events": ["comment.posted"]}, format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert len(body["secret"]) >= 32 and body["events"] == ["comment.posted"] and body["active"] is True
    stored = Webhook.objects.get(pk=body["id"]).secret
    assert stored.startswith("fernet:") and body["secret"] not in stored
    listed = client.get("/api/spaces/olive/demo/webhooks").json()
    assert listed["count"] == 1 and "secret" not in listed["results"][0]
    assert "secret" not in client.get(f"/api/spaces/olive/demo/webhooks/{body['id']}").json()


@pytest.mark.parametrize("payload, field", [
    ({"url": "https://93.184.216.34/", "events": ["nope"]}, "events"),
    ({"url": "https://93.184.216.34/", "secret": "short"}, "secret"),
    ({"url": "gopher://93.184.216.34/"}, "http"),
])
def test_bad_input_names_the_problem(api, olive, make_space, payload, field):
    make_space(olive, "demo")
    body = assert_error(api(olive).post("/api/spaces/olive/demo/webhooks", payload, format="json"), 400)
    assert field in body["detail"]


def test_a_space_has_a_bounded_number_of_webhooks(api, olive, make_space, settings):
    settings.WEBHOOK_MAX_PER_SPACE = 2
    make_space(olive, "demo")
    client = api(olive)
    for _ in range(2):
        assert client.post("/api/spaces/olive/demo/webhooks", {"url": "https://93.184.216.34/"},
                           format="json").status_code == 201
    assert_error(client.post("/api/spaces/olive/demo/webhooks", {"url": "https://93.184.216.34/"}, format="json"),
                 403, "too_many_webhooks")


# ------------------------------------------------------------------------------ delivering
def test_events_reach_a_loopback_receiver_signed(api, olive, make_space, receiver, upload, repo, run_on_commit):
    rcv = receiver()
    space = make_space(olive, "demo")
    client = api(olive)
    with run_on_commit():
        made = client.post("/api/spaces/olive/demo/webhooks", {"url": rcv.url()}, format="json").json()
    assert upload(client, space, repo.static).status_code == 202
    with run_on_commit():
        assert client.post("/api/spaces/olive/demo/comments", {"body": "Lovely."}, format="json").status_code == 201
    events = [r["headers"]["X-Demohub-Event"] for r in rcv.requests]
    assert "revision.built" in events and "space.status_changed" in events and "comment.posted" in events
    for request in rcv.requests:
        assert verify(made["secret"], request), request
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["headers"]["User-Agent"].startswith("Demohub-Webhooks/")
        body = json.loads(request["body"])
        assert body["event"] == request["headers"]["X-Demohub-Event"]
        assert body["space"]["owner"] == "olive" and body["space"]["name"] == "demo"
    comment = next(json.loads(r["body"]) for r in rcv.requests if r["headers"]["X-Demohub-Event"] == "comment.posted")
    assert comment["comment"]["body"] == "Lovely." and comment["comment"]["author"] == "olive"
    statuses = [json.loads(r["body"])["status"] for r in rcv.requests
                if r["headers"]["X-Demohub-Event"] == "space.status_changed"]
    assert {"from": "NO_APP_FILE", "to": "BUILDING"} in statuses and statuses[-1]["to"] == "RUNNING"
    log = client.get(f"/api/spaces/olive/demo/webhooks/{made['id']}/deliveries").json()
    assert log["count"] == len(rcv.requests)
    assert all(d["outcome"] == "delivered" and d["status_code"] == 200 and d["address"] == "127.0.0.1"
               for d in log["results"])


def test_only_the_chosen_events_are_sent(api, olive, make_space, receiver, upload, repo, run_on_commit):
    rcv = receiver()
    space = make_space(olive, "demo")
    client = api(olive)
    client.post("/api/spaces/olive/demo/webhooks", {"url": rcv.url(), "events": ["revision.failed"]}, format="json")
    assert upload(client, space, repo.static).status_code == 202
    assert rcv.requests == []
    broken = {"README.md": "---\nsdk: static\npinned: maybe\n---\n", "index.html": "x"}
    with run_on_commit():
        assert upload(client, space, broken).status_code == 202
    assert [r["headers"]["X-Demohub-Event"] for r in rcv.requests] == ["revision.failed"]
    assert "pinned" in json.loads(rcv.requests[0]["body"])["revision"]["error"]


def test_a_500_is_retried_with_the_same_delivery_id_and_body(api, olive, make_space, receiver, run_on_commit):
    rcv = receiver(answers=(500, 200))
    make_space(olive, "demo")
    client = api(olive)
    hook = client.post("/api/spaces/olive/demo/webhooks", {"url": rcv.url()}, format="json").json()
    with run_on_commit():
        resp = client.post(f"/api/spaces/olive/demo/webhooks/{hook['id']}/test")
    assert resp.status_code == 202 and resp.json()["event"] == "ping"
    assert len(rcv.requests) == 2
    first, second = rcv.requests
    assert first["headers"]["X-Demohub-Delivery"] == second["headers"]["X-Demohub-Delivery"]
    assert first["body"] == second["body"] and verify(hook["secret"], second)
    rows = list(WebhookDelivery.objects.order_by("attempt").values_list("attempt", "outcome", "status_code"))
    assert rows == [(1, DeliveryOutcome.RETRYING, 500), (2, DeliveryOutcome.DELIVERED, 200)]


def test_retries_back_off_exponentially_and_give_up(olive, make_space, receiver, settings, run_on_commit):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    rcv = receiver(answers=(503,))
    space = make_space(olive, "demo")
    hook, _ = services.webhook_create(space=space, url=rcv.url(), by=olive)
    with run_on_commit():
        services.webhook_ping(webhook=hook)
    rows = list(WebhookDelivery.objects.order_by("attempt"))
    assert [(r.attempt, r.outcome) for r in rows] == [(1, "retrying"), (2, "retrying"), (3, "failed")]
    gaps = [(rows[i + 1].due_at - rows[i].attempted_at).total_seconds() for i in range(2)]
    assert 10 <= gaps[0] <= 15 and 20 <= gaps[1] <= 25, gaps    # 10 s, then 20 s (plus the attempt's own time)
    assert "gave up after 3 attempts" in rows[-1].error


def test_a_4xx_is_not_retried_and_a_redirect_is_not_followed(olive, make_space, receiver, run_on_commit):
    target = receiver()
    rcv = receiver(answers=(302,), location=target.url("/elsewhere"))
    gone = receiver(answers=(404,))
    space = make_space(olive, "demo")
    for r in (rcv, gone):
        hook, _ = services.webhook_create(space=space, url=r.url(), by=olive)
        with run_on_commit():
            services.webhook_ping(webhook=hook)
    assert target.requests == []
    rows = {r.status_code: r for r in WebhookDelivery.objects.all()}
    assert set(rows) == {302, 404} and all(r.outcome == "failed" for r in rows.values())
    assert "never follow redirects" in rows[302].error


def test_an_attempt_is_cut_off_after_the_timeout(olive, make_space, receiver, settings, run_on_commit):
    settings.WEBHOOK_TIMEOUT = 0.5
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    rcv = receiver(delay=4.0)
    space = make_space(olive, "demo")
    hook, _ = services.webhook_create(space=space, url=rcv.url(), by=olive)
    started = time.monotonic()
    with run_on_commit():
        services.webhook_ping(webhook=hook)
    assert time.monotonic() - started < 3.0                    # cut at 0.5 s, not after the 4 s answer
    row = WebhookDelivery.objects.get()
    assert row.outcome == "failed" and row.status_code is None and "no answer within 0.5 s" in row.error


def test_the_request_goes_to_the_resolved_address_with_the_name_as_host(receiver):
    rcv = receiver()
    answer = targets.post(f"http://hooks.example.invalid:{rcv.port}/in", b"{}", {}, address="127.0.0.1")
    assert answer.status == 200 and answer.address == "127.0.0.1"
    assert rcv.requests[0]["headers"]["Host"] == f"hooks.example.invalid:{rcv.port}"


def test_an_address_refused_at_delivery_time_is_logged_not_sent(olive, make_space, receiver, settings,
                                                                 run_on_commit):
    rcv = receiver()
    space = make_space(olive, "demo")
    hook, _ = services.webhook_create(space=space, url=rcv.url(), by=olive)
    settings.WEBHOOK_ALLOW_CIDRS = []            # the operator narrowed the list since
    with run_on_commit():
        services.webhook_ping(webhook=hook)
    assert rcv.requests == []
    row = WebhookDelivery.objects.get()
    assert row.outcome == "failed" and "refused" in row.error and "loopback" in row.error


def test_the_delivery_log_is_bounded(olive, make_space, receiver, settings, run_on_commit):
    settings.WEBHOOK_DELIVERY_LOG_SIZE = 3
    rcv = receiver()
    space = make_space(olive, "demo")
    hook, _ = services.webhook_create(space=space, url=rcv.url(), by=olive)
    for _ in range(5):
        with run_on_commit():
            services.webhook_ping(webhook=hook)
    assert len(rcv.requests) == 5
    assert WebhookDelivery.objects.filter(webhook=hook).count() == 3


def test_a_rolled_back_change_sends_nothing(olive, make_space, receiver):
    from django.db import transaction

    from spaces.community import services as comments

    rcv = receiver()
    space = make_space(olive, "demo")
    services.webhook_create(space=space, url=rcv.url(), by=olive)
    with pytest.raises(RuntimeError), transaction.atomic():
        comments.comment_create(space=space, author=olive, body="never")
        raise RuntimeError
    assert rcv.requests == [] and not WebhookDelivery.objects.exists()


# ------------------------------------------------------------------------------ page
def test_the_page_adds_tests_and_removes_a_webhook(client, olive, make_space, receiver, run_on_commit):
    rcv = receiver()
    make_space(olive, "demo")
    client.force_login(olive)
    bad = client.post("/spaces/olive/demo/webhooks", {"url": "http://10.2.3.4/", "events": ["comment.posted"]})
    assert bad.status_code == 400 and "private address" in bad.content.decode()
    resp = client.post("/spaces/olive/demo/webhooks", {"url": rcv.url(), "events": ["comment.posted"]}, follow=True)
    assert resp.status_code == 200 and "shown only now" in resp.content.decode()
    hook = Webhook.objects.get()
    with run_on_commit():
        assert client.post(f"/spaces/olive/demo/webhooks/{hook.pk}/test").status_code == 302
    page = client.get("/spaces/olive/demo/webhooks").content.decode()
    assert rcv.url() in page and "ping" in page and "delivered" in page.lower()
    assert client.post(f"/spaces/olive/demo/webhooks/{hook.pk}/delete").status_code == 302
    assert not Webhook.objects.exists()


# ------------------------------------------------------------------------------ down
def _database_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)


@pytest.mark.parametrize("method, path", [
    ("get", "/api/spaces/olive/demo/webhooks"),
    ("post", "/api/spaces/olive/demo/webhooks"),
    ("get", "/api/spaces/olive/demo/webhooks/1/deliveries"),
    ("post", "/api/spaces/olive/demo/webhooks/1/test"),
    ("get", "/spaces/olive/demo/webhooks"),
    ("get", "/spaces/olive/demo/badge.svg"),
])
def test_a_database_that_does_not_answer_is_a_503_with_retry_after(api, olive, make_space, monkeypatch, method,
                                                                   path):
    make_space(olive, "demo")
    client = api(olive)
    if path.startswith("/spaces/"):
        from django.test import Client

        client = Client()
        client.force_login(olive)
    _database_down(monkeypatch)
    resp = getattr(client, method)(path, {"url": "https://93.184.216.34/"} if method == "post" else None)
    assert resp.status_code == 503, resp.content
    assert resp["Retry-After"] == "5"


def test_a_broker_that_does_not_answer_leaves_the_delivery_to_the_sweep(api, olive, make_space, receiver,
                                                                        monkeypatch, run_on_commit):
    from datetime import timedelta

    from django.utils import timezone
    from kombu.exceptions import OperationalError as BrokerError

    from spaces.webhooks.tasks import webhook_deliver_task

    rcv = receiver()
    make_space(olive, "demo")
    client = api(olive)
    hook = client.post("/api/spaces/olive/demo/webhooks", {"url": rcv.url()}, format="json").json()

    def refuse(*args, **kwargs):
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patched:
        patched.setattr(webhook_deliver_task, "apply_async", refuse)
        with run_on_commit():
            resp = client.post(f"/api/spaces/olive/demo/webhooks/{hook['id']}/test")
    assert resp.status_code == 202 and resp.json()["outcome"] == "pending"
    assert rcv.requests == []
    assert services.deliveries_sweep() == 0                      # not lost yet: due a moment ago
    WebhookDelivery.objects.update(due_at=timezone.now() - timedelta(minutes=2))
    with run_on_commit():
        assert services.deliveries_sweep() == 1
    assert len(rcv.requests) == 1 and WebhookDelivery.objects.get().outcome == "delivered"


def test_a_failing_receiver_never_breaks_the_transition(olive, make_space, monkeypatch):
    from spaces.records import services as space_services
    from spaces.webhooks import receivers

    space = make_space(olive, "demo")
    services.webhook_create(space=space, url="https://93.184.216.34/", by=olive)

    def broken(**kwargs):
        raise OperationalError("boom")

    monkeypatch.setattr(receivers, "event_record", broken)
    assert space_services.space_transition(space, "PAUSED")
    space.refresh_from_db()
    assert space.status == "PAUSED" and not WebhookDelivery.objects.exists()


def test_webhook_secrets_follow_a_key_rotation(olive, make_space, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    space = make_space(olive, "demo")
    hook, secret = services.webhook_create(space=space, url="https://93.184.216.34/", by=olive)
    old = list(settings.SECRETS_ENCRYPTION_KEYS)
    new = Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [new, *old]
    call_command("secrets_reencrypt")
    settings.SECRETS_ENCRYPTION_KEYS = [new]                      # the old key dropped
    hook.refresh_from_db()
    assert services.webhook_secret(hook) == secret
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]   # every key lost: a clear error
    row = services.delivery_attempt(delivery_id=services.webhook_ping(webhook=hook).pk)
    assert row.outcome == "failed" and "cannot be decrypted" in row.error


def test_patch_turns_off_and_sets_a_new_secret(api, olive, make_space, receiver, run_on_commit):
    rcv = receiver()
    make_space(olive, "demo")
    client = api(olive)
    hook = client.post("/api/spaces/olive/demo/webhooks", {"url": rcv.url()}, format="json").json()
    path = f"/api/spaces/olive/demo/webhooks/{hook['id']}"
    assert_error(client.patch(path, {"secret": "short"}, format="json"), 400, "invalid_secret")
    resp = client.patch(path, {"secret": "a-brand-new-secret-value", "active": False}, format="json")
    assert resp.status_code == 200 and resp.json()["active"] is False and "secret" not in resp.json()
    with run_on_commit():
        client.post(f"{path}/test")                                # a ping goes even to a webhook turned off
    assert verify("a-brand-new-secret-value", rcv.requests[0]) and not verify(hook["secret"], rcv.requests[0])
