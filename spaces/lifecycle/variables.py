"""Variables and secrets of a space (design.md §4): environment its app gets at run time.

Both are injected into the container's environment when it starts (run_env) and
never into a build: a build runs the repo's own code (requirements, a Dockerfile's RUN steps)
and its output is kept, so nothing secret goes near it (design.md §6). A secret differs from a
variable in that its value is write-only (no API or page shows it back) and masked in the
build and run logs the hub stores. A key is one or the other, never both. A secret's value is
stored encrypted (spaces/lifecycle/crypto.py): read it through `stored_value`, never `.value`.

A change takes effect by restarting the running container through the ordinary restart path
(space_restart); a space that is not running just keeps the new values for its next
start.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet

from spaces.lifecycle import crypto
from spaces.lifecycle.models import SpaceVariable
from spaces.lifecycle.services import space_restart
from spaces.records.errors import ServiceError
from spaces.records.models import Sdk, Space
from spaces.records.status import SpaceStatus

log = logging.getLogger(__name__)

KEY_RE = re.compile(SpaceVariable.KEY_RE)
MAX_VALUE_BYTES = 64 * 1024
MAX_KEYS_PER_SPACE = 100
MASK = "***"
# Shorter secret values are not masked: replacing every "a" or "42" in a log would garble it
# and would tell the value away by what got replaced anyway.
MASK_MIN_LENGTH = 4

# Names the runner sets itself (run_env) or that the SDK images rely on (runner/sdk.py
# sets PATH, HOME and PYTHONUNBUFFERED): a space may not override them. Compared upper-cased.
RESERVED_KEYS = frozenset({
    "PATH", "HOME", "PORT",
    "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "GRADIO_ANALYTICS_ENABLED", "GRADIO_SSR_MODE",
    "GRADIO_TEMP_DIR",
    "STREAMLIT_SERVER_HEADLESS", "STREAMLIT_BROWSER_GATHER_USAGE_STATS",
    "STREAMLIT_SERVER_FILE_WATCHER_TYPE", "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION",
    "STREAMLIT_SERVER_ENABLE_CORS",
    "MPLCONFIGDIR", "XDG_CACHE_HOME", "HF_HOME",
})
RESERVED_PREFIXES = ("PYTHON", "SPACE_", "DEMOHUB_")

# Statuses whose container should be restarted at once to pick up a change. A space that is
# building or starting reads the values when its next container starts; a paused, sleeping or
# failed-to-build one when someone starts it again.
RESTART_ON_CHANGE = frozenset({SpaceStatus.RUNNING, SpaceStatus.RUNTIME_ERROR})


@dataclass(frozen=True)
class VariableChange:
    variable: SpaceVariable
    created: bool
    changed: bool  # False when the value was already the same (nothing written, no restart)
    restarting: bool  # a restart was queued so the running app gets the new value


def _kind(secret: bool) -> str:
    return "secret" if secret else "variable"


def is_reserved(key: str) -> bool:
    upper = key.upper()
    return upper in RESERVED_KEYS or upper.startswith(RESERVED_PREFIXES)


def validate_key(key: str) -> None:
    if not KEY_RE.fullmatch(key or ""):
        shown = key if len(key or "") <= 60 else key[:57] + "..."
        raise ServiceError(
            f"{shown!r} is not a valid name: use 1 to 128 letters, digits and '_', not starting "
            "with a digit.", code="invalid_key", http_status=400)
    if is_reserved(key):
        raise ServiceError(
            f"{key} is set by Demohub itself and cannot be a variable or secret (reserved: "
            f"{', '.join(p + '*' for p in RESERVED_PREFIXES)} and the names the runner sets).",
            code="reserved_key", http_status=400)


def validate_value(key: str, value: str) -> None:
    if "\x00" in value:
        # Neither PostgreSQL text nor a process environment can hold a NUL character.
        raise ServiceError(f"The value of {key} contains a NUL character.", code="invalid_value",
                                    http_status=400)
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise ServiceError(f"The value of {key} is larger than {MAX_VALUE_BYTES // 1024} KiB.",
                                    code="value_too_large", http_status=413)


# ----------------------------------------------------------------------------- reads
def variable_list(*, space: Space, secret: bool) -> QuerySet[SpaceVariable]:
    return SpaceVariable.objects.filter(space=space, secret=secret).order_by("key")


def variable_get(*, space: Space, key: str, secret: bool) -> SpaceVariable:
    found = SpaceVariable.objects.filter(space=space, key=key, secret=secret).first()
    if found is None:
        raise ServiceError(f"This space has no {_kind(secret)} named {key[:128]}.", code="not_found",
                                    http_status=404)
    return found


def stored_value(variable: SpaceVariable) -> str:
    """The value in clear: a secret is decrypted, a variable is stored as it is."""
    return crypto.decrypt(variable.value) if variable.secret else variable.value


def space_env_variables(space: Space) -> dict[str, str]:
    """The environment a space's container gets from its variables and secrets."""
    rows = SpaceVariable.objects.filter(space=space).only("key", "value", "secret")
    # Reserved names are refused on input; skipping them here too keeps a row written some
    # other way (the admin, an older rule) from breaking the container.
    return {row.key: stored_value(row) for row in rows if not is_reserved(row.key)}


# ----------------------------------------------------------------------------- writes
def variable_set(*, space: Space, key: str, value: str, secret: bool, by=None) -> VariableChange:
    """Create or change a variable (secret=False) or a secret, and restart a running space."""
    validate_key(key)
    validate_value(key, value)
    with transaction.atomic():
        # One writer per space at a time, so the key cap holds under concurrent requests.
        locked = _lock(space)
        existing = SpaceVariable.objects.filter(space=locked, key=key).first()
        if existing is not None and existing.secret != secret:
            raise ServiceError(
                f"{key} is already a {_kind(existing.secret)} of this space; a key is either a variable or "
                f"a secret. Delete the {_kind(existing.secret)} first.", code="key_conflict")
        if existing is not None and stored_value(existing) == value:
            return VariableChange(existing, created=False, changed=False, restarting=False)
        if existing is None and SpaceVariable.objects.filter(space=locked).count() >= MAX_KEYS_PER_SPACE:
            raise ServiceError(
                f"A space may have at most {MAX_KEYS_PER_SPACE} variables and secrets together; delete one "
                "first.", code="too_many_keys")
        variable = existing or SpaceVariable(space=locked, key=key, secret=secret)
        variable.value = crypto.encrypt(value) if secret else value
        variable.save()
        log.info("%s %s of %s %s by %s", _kind(secret), key, locked.full_name,
                 "created" if existing is None else "changed", getattr(by, "username", "-"))
        restarting = _restart_to_apply(locked, by)
    return VariableChange(variable, created=existing is None, changed=True, restarting=restarting)


def variable_delete(*, space: Space, key: str, secret: bool, by=None) -> bool:
    """Delete a variable or secret; True when a restart was queued to apply it."""
    with transaction.atomic():
        locked = _lock(space)
        deleted, _ = SpaceVariable.objects.filter(space=locked, key=key, secret=secret).delete()
        if not deleted:
            raise ServiceError(f"This space has no {_kind(secret)} named {key[:128]}.",
                                        code="not_found", http_status=404)
        log.info("%s %s of %s deleted by %s", _kind(secret), key, locked.full_name, getattr(by, "username", "-"))
        return _restart_to_apply(locked, by)


def _lock(space: Space) -> Space:
    return (Space.objects.select_for_update(of=("self",))
            .select_related("owner", "running_revision", "latest_revision").get(pk=space.pk))


def _restart_to_apply(space: Space, by) -> bool:
    """Restart the app of a running space so its environment changes (a container restart, no build).

    Runs inside the caller's transaction: the start task is queued on commit, so it reads
    the new values.
    """
    if space.sdk == Sdk.STATIC or space.status not in RESTART_ON_CHANGE:
        return False
    try:
        space_restart(space=space, by=by)
    except ServiceError as exc:
        # Nothing to restart (no revision ever built): the values wait for the next start.
        log.info("not restarting %s after a variable change: %s", space.full_name, exc)
        return False
    return True


# ----------------------------------------------------------------------------- log masking
def mask_secrets(text: str, secret_values: Iterable[str]) -> str:
    """`text` with every secret value (and every line of a multi-line one) replaced by ***.

    Values shorter than MASK_MIN_LENGTH characters are left alone. Engines hand logs over a
    line at a time, which is why each line of a multi-line secret is masked on its own too.
    """
    pattern = _mask_pattern(secret_values)
    return pattern.sub(MASK, text) if pattern is not None and text else text


def _mask_pattern(secret_values: Iterable[str]) -> re.Pattern | None:
    needles = set()
    for value in secret_values:
        for piece in (value, *(line.strip() for line in value.splitlines())):
            if len(piece) >= MASK_MIN_LENGTH:
                needles.add(piece)
    if not needles:
        return None
    # Longest first, so a secret that contains another is masked whole.
    return re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))


def secret_masker(space_id: int) -> Callable[[str], str]:
    """mask_secrets bound to the space's current secrets, for the code that stores its logs."""
    pattern = _mask_pattern(crypto.decrypt(value) for value in SpaceVariable.objects.filter(
        space_id=space_id, secret=True).values_list("value", flat=True))
    if pattern is None:
        return lambda text: text
    return lambda text: pattern.sub(MASK, text) if text else text
