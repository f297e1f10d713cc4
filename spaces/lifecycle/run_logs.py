"""Run logs: what a space's container prints, copied into Redis for the log stream, secrets
masked; and the words that say why a container exited.
"""
from __future__ import annotations

import logging
import signal

from django.conf import settings
from django.contrib.auth import get_user_model

from runner.exceptions import BackendUnavailable
from spaces.lifecycle import logs, variables
from spaces.lifecycle.engine import get_backend
from spaces.nodes.selectors import here
from spaces.records.models import Revision, Space
from spaces.records.status import SERVING, SpaceStatus

log = logging.getLogger(__name__)
User = get_user_model()
S = SpaceStatus
R = Revision.Status


def exit_reason(state, *, memory: str) -> str:
    """Why a space's container is not running, in words for its owner (no log lines).

    The engine flags an OOM kill itself (State.OOMKilled); exit code 128+n without that flag is
    a kill by signal n (137: SIGKILL, e.g. `docker kill` or a host-wide OOM kill).
    """
    if state is None:
        return "the container disappeared (removed outside the hub, or lost by the engine)"
    if state.oom_killed:
        return (f"the app was killed because it ran out of memory (OOM: it reached the space's "
                f"memory limit of {memory})")
    code = state.exit_code
    if code is not None and 128 < code <= 128 + 64:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        why = f"the app was killed by {name} (exit code {code})"
    else:
        why = f"the app exited with code {code}"
    return f"{why}: {state.error}" if state.error else why


def run_log_tail(space_id: int, lines: int | None = None) -> str:
    """The last `lines` (CRASH_LOG_LINES) lines of the space's stored run log, at most 3000
    characters of them: quoted in `Space.error` (4000 at most), whose end must not be cut."""
    data, _ = logs.read(logs.run_key(space_id))
    lines = data.decode("utf-8", "replace").rstrip().splitlines()[-(lines or settings.CRASH_LOG_LINES):]
    return "\n".join(lines)[-3000:]


def exit_message(state, space_id: int, *, memory: str) -> str:
    why = exit_reason(state, memory=memory)
    last = run_log_tail(space_id)
    return f"{why}. Last log lines:\n{last}" if last else why


# ----------------------------------------------------------------------------- run logs
def run_log_state_key(space_id: int) -> str:
    return logs.run_key(space_id) + ":follow"


def run_log_follow(*, space_id: int, container: str, reset: bool = True) -> None:
    """Make the space's run log follow `container` from now on (a new run starts a new log,
    unless `reset` is False: a crash restart continues the log of the run that crashed)."""
    if reset:
        logs.reset(logs.run_key(space_id))
    logs.client().hset(run_log_state_key(space_id), mapping={"container": container, "since": 0})


def run_log_copy(*, space_id: int) -> None:
    state = logs.client().hgetall(run_log_state_key(space_id))
    if not state:
        return
    container = state[b"container"].decode()
    since = float(state.get(b"since", b"0") or 0)
    text, last = get_backend().logs(container, since=since or None)
    if text:
        mask = variables.secret_masker(space_id)  # secret values never reach the stored log
        logs.append(logs.run_key(space_id), mask(text), cap=settings.RUN_LOG_MAX_BYTES)
        logs.client().hset(run_log_state_key(space_id), "since", last)


def run_logs_copy_all() -> None:
    # The spaces on this process's engine (spaces/nodes: a node's worker copies its own).
    for space_id in Space.objects.filter(here(), status__in=[*SERVING, S.APP_STARTING]).values_list("pk", flat=True):
        try:
            run_log_copy(space_id=space_id)
        except BackendUnavailable:
            return


def run_log_forget(space_id: int) -> None:
    """Forget which container a space's run log follows (the space is gone)."""
    logs.client().delete(run_log_state_key(space_id))
