"""The space status state machine (design.md §2).

Values are the stage names Hugging Face Spaces uses. Every transition goes through
`spaces.records.services.space_transition`, which applies it with one conditional UPDATE whose WHERE
clause is built from TRANSITIONS below; the UI and API only read `Space.status`.
"""
from __future__ import annotations

from django.db import models


class SpaceStatus(models.TextChoices):
    NO_APP_FILE = "NO_APP_FILE"
    CONFIG_ERROR = "CONFIG_ERROR"
    BUILDING = "BUILDING"
    BUILD_ERROR = "BUILD_ERROR"
    APP_STARTING = "APP_STARTING"
    RUNNING = "RUNNING"
    RUNNING_BUILDING = "RUNNING_BUILDING"
    RUNNING_APP_STARTING = "RUNNING_APP_STARTING"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    SLEEPING = "SLEEPING"
    PAUSED = "PAUSED"
    DELETING = "DELETING"


S = SpaceStatus

# States in which a revision is serving visitors. SLEEPING is not one of them, but it keeps
# its running revision too (it serves again once woken): see the SLEEPING row below.
SERVING = frozenset({S.RUNNING, S.RUNNING_BUILDING, S.RUNNING_APP_STARTING})
# States with nothing serving that a new upload moves to BUILDING.
NOT_SERVING = frozenset({S.NO_APP_FILE, S.CONFIG_ERROR, S.BUILD_ERROR, S.RUNTIME_ERROR,
                         S.BUILDING, S.APP_STARTING})

# to-state -> the states it may be entered from. DELETING is final: nothing leaves it.
_ANY_LIVE = frozenset(set(S) - {S.DELETING})
TRANSITIONS: dict[str, frozenset[str]] = {
    # A newer upload with nothing serving (or serving stopped by the owner). A sleeping space
    # stays SLEEPING while a new revision builds, as a serving one is RUNNING_BUILDING.
    S.BUILDING: NOT_SERVING | {S.PAUSED},
    # A newer upload while a revision serves: the old one keeps serving.
    S.RUNNING_BUILDING: SERVING,
    S.BUILD_ERROR: frozenset({S.BUILDING}),
    S.CONFIG_ERROR: NOT_SERVING | {S.PAUSED},
    S.NO_APP_FILE: NOT_SERVING | {S.PAUSED},
    S.APP_STARTING: NOT_SERVING | {S.SLEEPING, S.PAUSED, S.RUNNING},
    S.RUNNING_APP_STARTING: SERVING,
    S.RUNNING: NOT_SERVING | SERVING | {S.SLEEPING},
    S.RUNTIME_ERROR: NOT_SERVING | SERVING | {S.SLEEPING},
    # Idleness puts a serving space to sleep. A new revision that fails to be configured,
    # built (SLEEPING) or started (APP_STARTING) leaves it asleep on its running revision.
    S.SLEEPING: SERVING | {S.SLEEPING, S.APP_STARTING},
    S.PAUSED: _ANY_LIVE,
    S.DELETING: _ANY_LIVE,
}


def allowed_sources(to: str) -> frozenset[str]:
    """The states from which `to` may be entered."""
    return TRANSITIONS[to]


def is_serving(status: str) -> bool:
    return status in SERVING
