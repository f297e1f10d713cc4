"""What a caller may read of a space's `error` (design.md §6).

The services write into `Space.error` what the owner needs to fix things: a README key, pip's
output, the last lines of the app's run log. Those are logs, and logs are for editors and the
owner; everyone else who may see the space gets its build status only, so below EDITOR the
error is one generic sentence for the state.
"""
from __future__ import annotations

from spaces.access.selectors import Action, Role, can
from spaces.lifecycle import health
from spaces.records.models import Space
from spaces.records.status import SERVING, SpaceStatus

S = SpaceStatus

GENERIC_ERRORS = {
    S.NO_APP_FILE: "The upload has no app file.",
    S.CONFIG_ERROR: "The README configuration is invalid.",
    S.BUILD_ERROR: "The build failed.",
    S.RUNTIME_ERROR: "The app failed to start.",
}
# A space that keeps its running revision (serving or asleep) has an error only when a newer
# revision failed.
NEWER_REVISION_FAILED = "A newer revision failed; the previous one is still in use."
OTHER_ERROR = "The space reported an error."


def space_error_for(space: Space, role: Role) -> str:
    """`space.error` as `role` may read it: in full for editors and the owner, else generic."""
    if not space.error:
        return ""
    if can(role, Action.READ_LOGS):
        return space.error
    # The crash handler's notes (spaces/lifecycle/health.py) quote the exit reason: the fact only.
    if space.error.startswith(health.RESTARTING):
        return "The app crashed and is being restarted."
    if space.error.startswith(health.RESTARTED):
        return "The app crashed and was restarted."
    if space.status in SERVING or space.status == S.SLEEPING:
        return NEWER_REVISION_FAILED
    return GENERIC_ERRORS.get(space.status, OTHER_ERROR)
