"""Errors the runner raises.

    RunnerError
     +-- ArchiveError        an upload was refused (user's fault; .code, .http_status 413/422)
     +-- BuildError          the repo does not build (user's fault: shown, not retried)
     |    +-- BuildCancelled a newer upload superseded the build
     |    +-- NotIsolated    the host firewall is missing: nothing untrusted runs (shown, not retried)
     +-- BackendUnavailable  the engine does not answer (transient: retried)
     +-- RouteError          a route could not be rendered (bad label, address or path)
"""
from __future__ import annotations


class RunnerError(Exception):
    """Base class of every runner error."""


class ArchiveError(RunnerError):
    """A user's archive was refused. `code` is a machine word, `http_status` 413 or 422,
    str(e) a human sentence naming the problem."""

    def __init__(self, message: str, *, code: str, http_status: int = 422):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class BuildError(RunnerError):
    """The user's repo does not build; the message is shown to them."""


class BuildCancelled(BuildError):
    """The build was abandoned because a newer revision superseded it."""


class NotIsolated(BuildError):
    """scripts/isolate.sh has not firewalled this installation and ALLOW_UNISOLATED is off: no
    build runs and no space starts (a BuildError, so a build fails with this message)."""


class BackendUnavailable(RunnerError):
    """The container engine did not answer; worth retrying."""


class RouteError(RunnerError):
    """A proxy route could not be rendered from the values given."""
