"""Build leases: one worker holds a build at a time, and a build whose worker died is built
again or failed within about a minute, never left `building` (README: "Crashes and stuck
builds").

* **Claim.** One conditional UPDATE moves a revision from queued to building and writes a
  fresh lease token into `Revision.task_id` (the column held nothing else, so no schema change)
  and `heartbeat_at`. A duplicate delivery of the build task finds the revision building
  under a lease, or final, and does nothing.
* **Heartbeat.** While the build runs, a thread of the worker renews `heartbeat_at` every
  BUILD_HEARTBEAT_INTERVAL seconds, whether or not the build prints anything (a quiet
  `pip install` can run for minutes). Renewal is conditional on the token, so once the
  revision was given to another attempt the old worker learns it has lost the lease: it stops
  at the next build step (`should_continue`) and writes nothing more to the revision or its log.
* **Sweep** (beat every BUILD_LEASE_CHECK_INTERVAL s, and in `reconcile`, which also runs when a
  lifecycle worker starts). A building revision whose heartbeat is older than
  BUILD_LEASE_SECONDS lost its worker: its engine-side build is cancelled, then it is queued
  and sent again (BUILD_LEASE_RETRIES times), after that failed with a clear error and its
  space moved on through `space_transition` (BUILD_ERROR, or the old revision keeps serving).
  A revision still queued after BUILD_REQUEUE_AFTER s has its task sent again: the broker may
  have lost it (Redis restarted without its data); if it had not, the claim makes the
  duplicate a no-op.

Retry counts and "sent at" marks live in Redis under this installation's prefix; losing them
costs at most one extra retry or one extra (harmless) message.
"""
from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils import timezone

from runner.exceptions import BackendUnavailable
from spaces.builds.outcomes import finish_revision, space_build_failed
from spaces.lifecycle import logs
from spaces.lifecycle.engine import get_backend
from spaces.records import jobs
from spaces.records.models import Revision
from spaces.records.status import SpaceStatus

log = logging.getLogger(__name__)
R = Revision.Status
KEY_TTL = 24 * 3600


def _key(revision_id: int, what: str) -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:build:{revision_id}:{what}"


class BuildLease:
    """The claim of one build attempt on its revision, renewed by a heartbeat thread while
    used as a context manager. `lost` is set once another attempt owns the revision."""

    def __init__(self, revision_id: int, token: str):
        self.revision_id = revision_id
        self.token = token
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _check_taken_over(self) -> None:
        # Cancelled under our token: a newer upload superseded the build, which just stops (and
        # says so in its log). Anything else (another token, queued again, ended by the sweep)
        # means the revision and its log are another attempt's now.
        row = Revision.objects.filter(pk=self.revision_id).values_list("status", "task_id").first()
        if row != (R.CANCELLED, self.token):
            self.lost.set()

    def held(self) -> bool:
        """Whether this attempt still holds its revision (asked between build steps)."""
        if self.lost.is_set():
            return False
        if Revision.objects.filter(pk=self.revision_id, status=R.BUILDING, task_id=self.token).exists():
            return True
        self._check_taken_over()
        return False

    def renew(self) -> bool:
        """Move the heartbeat on; False once the lease is no longer this attempt's."""
        renewed = Revision.objects.filter(pk=self.revision_id, status=R.BUILDING, task_id=self.token).update(
            heartbeat_at=timezone.now())
        if not renewed:
            self._check_taken_over()
        return bool(renewed)

    def _beat(self) -> None:
        try:
            while not self._done.wait(settings.BUILD_HEARTBEAT_INTERVAL):
                try:
                    if not self.renew():
                        return
                except DatabaseError:
                    # The lease outlasts several intervals: the next beat tries again.
                    log.warning("revision %s: heartbeat failed", self.revision_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> BuildLease:
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.revision_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def claim(revision_id: int) -> BuildLease | None:
    """Claim a queued revision for one build attempt, or None when it is building or final."""
    token = uuid.uuid4().hex
    now = timezone.now()
    claimed = Revision.objects.filter(pk=revision_id, status=R.QUEUED).update(
        status=R.BUILDING, started_at=now, heartbeat_at=now, task_id=token)
    return BuildLease(revision_id, token) if claimed else None


def retries(revision_id: int) -> int:
    """How often the revision was queued again after its worker stopped responding."""
    return int(logs.client().get(_key(revision_id, "lease-retries")) or 0)


def send_build(revision_id: int) -> None:
    """Send the revision's build task, marking when (resend_queued waits a period after it)."""

    logs.client().set(_key(revision_id, "sent"), 1, ex=max(settings.BUILD_REQUEUE_AFTER, 1))
    jobs.send("spaces.tasks.build_revision_task", revision_id)


# ----------------------------------------------------------------------------- the sweep
def sweep() -> None:
    reap_expired()
    resend_queued()


def _expired(cutoff) -> Q:
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None)


def reap_expired() -> list[int]:
    """Retry or fail every building revision whose lease expired; returns their ids."""
    cutoff = timezone.now() - timedelta(seconds=settings.BUILD_LEASE_SECONDS)
    expired = list(Revision.objects.filter(status=R.BUILDING).filter(_expired(cutoff))
                   .exclude(space__status=SpaceStatus.DELETING).select_related("space__owner"))
    if not expired:
        return []
    _cancel_engine_builds(cutoff, [rev.pk for rev in expired])
    for rev in expired:
        _reap(rev, cutoff)
    return [rev.pk for rev in expired]


def _cancel_engine_builds(cutoff, expired_ids: list[int]) -> None:
    """Stop what the engine still runs for builds whose worker is gone.

    Docker's legacy builder (POST /build, what docker-py drives) has no cancel call: POST
    /build/cancel only cancels BuildKit sessions. But the engine cancels a legacy build when its
    client disconnects: a worker killed with -9 closes its socket and dockerd kills and removes
    the step container at once (measured here: gone within 2 s). A worker that hangs (stopped,
    swapped out) keeps its socket open, so the backend also removes the step containers of this
    installation's builds. Those carry no labels of their own (the legacy builder applies
    labels as the last step), so builds cannot be told apart: this runs only when no other
    build holds a live lease; otherwise the engine's own cancellation has to do.
    """
    live = Revision.objects.filter(status=R.BUILDING).exclude(pk__in=expired_ids).exclude(_expired(cutoff))
    if live.exists():
        log.info("build leases: another build is live; leaving step containers to the engine")
        return
    try:
        removed = get_backend().cancel_builds()
    except BackendUnavailable:
        log.warning("build leases: the engine does not answer; its builds end when their clients are gone")
        return
    if removed:
        log.info("build leases: removed %s build step container(s) of dead builds", removed)


def _reap(rev: Revision, cutoff) -> None:

    done = retries(rev.pk)
    why = f"the build worker stopped responding (no heartbeat for {settings.BUILD_LEASE_SECONDS} s)"
    # Conditional on the lease that expired: a heartbeat or a finish since we looked wins.
    stale = Revision.objects.filter(pk=rev.pk, status=R.BUILDING, task_id=rev.task_id).filter(_expired(cutoff))
    if done < settings.BUILD_LEASE_RETRIES:
        if stale.update(status=R.QUEUED, task_id="", heartbeat_at=None) == 1:
            logs.client().set(_key(rev.pk, "lease-retries"), done + 1, ex=KEY_TTL)
            log.warning("revision %s: %s; building it again (retry %s of %s)", rev.pk, why, done + 1,
                        settings.BUILD_LEASE_RETRIES)
            send_build(rev.pk)
        return
    tried = f", also after {done} retr{'y' if done == 1 else 'ies'}" if done else ""
    message = f"{why}{tried}; upload again or use factory rebuild"
    if finish_revision(rev, R.FAILED, error=message, lease=rev.task_id):
        log.warning("revision %s failed: %s", rev.pk, message)
        space_build_failed(rev.space, rev, message)


def resend_queued() -> list[int]:
    """Send again the build task of every revision queued longer than BUILD_REQUEUE_AFTER s,
    at most once per that period each; returns their ids."""
    cutoff = timezone.now() - timedelta(seconds=settings.BUILD_REQUEUE_AFTER)
    waiting = (Revision.objects.filter(status=R.QUEUED, created_at__lt=cutoff)
               .exclude(space__status=SpaceStatus.DELETING).values_list("pk", flat=True))
    client = logs.client()
    sent = []
    for revision_id in waiting:
        if client.set(_key(revision_id, "sent"), 1, nx=True, ex=max(settings.BUILD_REQUEUE_AFTER, 1)):
            log.info("revision %s queued for over %s s: sending its build task again", revision_id,
                     settings.BUILD_REQUEUE_AFTER)

            jobs.send("spaces.tasks.build_revision_task", revision_id)
            sent.append(revision_id)
    return sent
