"""Writes: every change to spaces, revisions and tokens, and every call into the runner.

Functions are named <entity>_<action> and take keyword-only arguments. Status changes go
through `space_transition` only. Work for the workers is enqueued after the transaction
commits, with ids only; tasks claim it with conditional UPDATEs so a duplicate delivery does
nothing.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import secrets
import shutil
import signal
import time
from urllib.parse import urlsplit
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Max, Q
from django.http import Http404
from django.utils import timezone
from redis import RedisError

from runner import proxy
from runner.archive import ArchiveLimits, snapshot_archive
from runner.backends import BuildSpec, RunSpec, get_backend
from runner.exceptions import BackendUnavailable, BuildCancelled, BuildError, NotIsolated

from . import access, events, logs, quotas, redeploy, variables
from .frontmatter import ConfigError, MissingAppFile, read_config
from .models import ApiToken, HostLabel, Revision, Sdk, Space, Visibility
from .search import SEARCHED_FIELDS, space_search_vector_refresh
from .status import SERVING, SpaceStatus, allowed_sources

log = logging.getLogger(__name__)
User = get_user_model()
S = SpaceStatus
R = Revision.Status


class ServiceError(Exception):
    """A request that conflicts with the current state (HTTP 409) or is invalid (400)."""

    def __init__(self, message: str, *, code: str, http_status: int = 409):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


# ----------------------------------------------------------------------------- accounts
def signup_ensure_open() -> None:
    """Raise the 403 of a closed sign-up (SIGNUP_OPEN=false); views call it before anything else."""
    if not settings.SIGNUP_OPEN:
        raise ServiceError("Sign-up is closed on this hub; ask an administrator for an account.",
                           code="signup_closed", http_status=403)


def user_create(*, username: str, password: str, email: str = "") -> User:
    signup_ensure_open()
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,37}[A-Za-z0-9])?", username or ""):
        raise ValidationError({"username": "Use 1 to 39 letters, digits, '-' or '_', starting and "
                                           "ending with a letter or digit."})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "This username is taken."})
    user = User(username=username, email=email)
    validate_password(password, user)
    user.set_password(password)
    try:
        user.save()
    except IntegrityError as exc:
        raise ValidationError({"username": "This username is taken."}) from exc
    return user


def token_create(*, user: User, name: str = "", scope: str = ApiToken.Scope.WRITE) -> tuple[ApiToken, str]:
    """A new API token; the plain token is returned once and only its hash is stored."""
    if scope not in ApiToken.Scope.values:
        raise ValidationError({"scope": "Use read or write."})
    raw = ApiToken.PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=(name or "token")[:100], scope=scope,
                                    token_hash=ApiToken.hash_token(raw), hint=raw[:7])
    return token, raw


def token_authenticate(raw: str) -> ApiToken | None:
    if not raw.startswith(ApiToken.PREFIX) or len(raw) > 100:
        return None
    token = (ApiToken.objects.select_related("user")
             .filter(token_hash=ApiToken.hash_token(raw), revoked_at__isnull=True).first())
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # Record use at most once a minute: no write on every request.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def token_revoke(*, user: User, token_id: int) -> ApiToken:
    """Revoke one of `user`'s tokens (again: no change). Another user's token is a 404, like a
    missing one. A password change does not revoke tokens (as on GitHub and Hugging Face)."""
    token = ApiToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    # Conditional: a second revoke (or a concurrent one) keeps the first time.
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        # The proxy may hold "allowed" answers for this token: end them now (issue 15, #10).
        access.user_access_ended(user.pk)
    token.refresh_from_db(fields=["revoked_at"])
    return token


# ----------------------------------------------------------------------------- spaces
def _label_for(owner: str, name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", f"{owner}-{name}".lower()).strip("-")[:50].strip("-") or "space"
    candidate = base
    digest = hashlib.sha256(f"{owner}/{name}".encode()).hexdigest()
    for attempt in range(20):
        if not HostLabel.objects.filter(label=candidate).exists():
            return candidate
        # Two spaces would share a label (or it was used before): add a short hash suffix.
        candidate = f"{base[:50]}-{digest[attempt:attempt + 6]}"
    return f"{base[:40]}-{secrets.token_hex(6)}"


def space_create(*, owner: User, name: str, sdk: str, visibility: str = Visibility.PUBLIC,
                 title: str = "", short_description: str = "") -> Space:
    if sdk not in Sdk.values:
        raise ValidationError({"sdk": f"Use one of: {', '.join(Sdk.values)}."})
    if visibility not in Visibility.values:
        raise ValidationError({"visibility": "Use public or private."})
    if Space.objects.filter(owner=owner, name__iexact=name).exists():
        raise ServiceError(f"You already have a space named {name}.", code="exists")
    quotas.check_space_create(owner)
    for _ in range(8):
        try:
            with transaction.atomic():
                label = _label_for(owner.username, name)
                HostLabel.objects.create(label=label)
                index = _free_address_index()
                space = Space(owner=owner, name=name, sdk=sdk, visibility=visibility, title=title or name,
                              short_description=short_description, label=label, address_index=index,
                              status=S.NO_APP_FILE, sleep_after=settings.SPACE_SLEEP_AFTER_DEFAULT)
                space.full_clean()
                space.save()
                break
        except IntegrityError:
            # Another space took the label or address index meanwhile (the unique constraint
            # on address_index decides between concurrent creates): pick again.
            continue
    else:
        raise ServiceError("Could not allocate an address for the space; try again.", code="busy")
    space_search_vector_refresh([space.pk])
    transaction.on_commit(lambda: _publish_route_task().delay(space.pk))
    return space


def _free_address_index() -> int:
    """The lowest address index no space holds: a deleted space's addresses are reused, so
    the subnet fills only with spaces that exist (design.md §3). Refused when it is full."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM {Space._meta.db_table} WHERE address_index = 1) THEN 1 "
            f"ELSE (SELECT MIN(s.address_index) + 1 FROM {Space._meta.db_table} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {Space._meta.db_table} t WHERE t.address_index = s.address_index + 1)) END")
        index = cursor.fetchone()[0]
    try:
        Space(address_index=index).slot_address("b")
    except ValueError:
        raise ServiceError("This hub has no free address for another space (SPACES_SUBNET is full); "
                           "ask the operator to widen it.", code="no_address", http_status=503) from None
    return index


def space_update(*, space: Space, **fields) -> Space:
    allowed = {"visibility", "title", "short_description", "tags", "sleep_after", "emoji"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError({k: "This field cannot be changed." for k in unknown})
    if "visibility" in fields and fields["visibility"] not in Visibility.values:
        raise ValidationError({"visibility": "Use public or private."})
    if "sleep_after" in fields:
        value, least = fields["sleep_after"], settings.SPACE_SLEEP_AFTER_MIN
        if isinstance(value, bool) or not isinstance(value, int) or not (value == -1 or least <= value <= 10**9):
            raise ValidationError({"sleep_after": f"Use -1 (never) or a whole number of seconds, at least {least}."})
    if "tags" in fields:
        from .tags import TagError, normalize_tags  # the one normaliser, shared with README front matter
        try:
            fields["tags"] = normalize_tags(fields["tags"])
        except TagError as exc:
            raise ValidationError({"tags": str(exc)}) from None
    for key, value in fields.items():
        setattr(space, key, value)
    space.full_clean()
    # Only the changed columns: counters (likes, comments, trending), status and the access
    # epoch are written concurrently by others and must not be overwritten with stale values.
    space.save(update_fields=[*fields, "updated_at"])
    if SEARCHED_FIELDS & set(fields):
        space_search_vector_refresh([space.pk])
    if "visibility" in fields:
        # The route gains or loses its access gate, and cached answers stop counting.
        from .access import space_access_changed
        space_access_changed(space.pk)
    return space


def space_transition(space: Space | int, to: str, *, error: str | None = None,
                     expected: frozenset[str] | set[str] | None = None, **fields) -> bool:
    """Move a space to `to` if the state machine allows it from its current status.

    One conditional UPDATE: a concurrent change that got there first makes this a no-op and
    returns False. `fields` are written in the same UPDATE. `expected` narrows the sources to
    the statuses the caller saw (the crash handler acts only on the state it observed).
    """
    space_id = space if isinstance(space, int) else space.pk
    values = {"status": to, "updated_at": timezone.now(), **fields}
    if error is not None:
        values["error"] = error[:4000]
    sources = allowed_sources(to) if expected is None else allowed_sources(to) & frozenset(expected)
    changed = Space.objects.filter(pk=space_id, status__in=sources).update(**values) == 1
    previous = space.status if isinstance(space, Space) else None
    if changed and isinstance(space, Space):
        for key, value in values.items():
            setattr(space, key, value)
    if changed:
        events.space_status_changed.send(sender=Space, space_id=space_id, previous=previous, status=to)
    return changed


def _archive_limits() -> ArchiveLimits:
    return ArchiveLimits(max_archive_bytes=settings.UPLOAD_MAX_BYTES, max_files=settings.ARCHIVE_MAX_FILES,
                         max_total_bytes=settings.ARCHIVE_MAX_TOTAL_BYTES,
                         max_file_bytes=settings.ARCHIVE_MAX_FILE_BYTES, max_ratio=settings.ARCHIVE_MAX_RATIO,
                         max_readme_bytes=settings.README_MAX_BYTES)


def revision_create(*, space: Space, archive, created_by: User) -> Revision:
    """Check and store an upload, then queue its build.

    The archive is validated and snapshotted before any row changes (ArchiveError leaves no
    trace). A README config error still records the revision, as failed, so the user sees
    why; the revision that is serving keeps serving either way.
    """
    quotas.check_build_queue(space)
    quotas.check_running(space)
    snapshot = snapshot_archive(archive, settings.SNAPSHOTS_DIR, _archive_limits())
    try:
        quotas.check_storage(space, snapshot.total_bytes)
    except ServiceError:
        _snapshot_forget(str(snapshot.path))
        raise
    files = set(snapshot.files)
    config_error = ""
    metadata: dict = {}
    missing_app = False
    try:
        cfg = read_config(snapshot.path, files, space_sdk=space.sdk, max_bytes=settings.README_MAX_BYTES)
        metadata = cfg.as_metadata()
        metadata["readme"] = cfg.readme_body[:100_000]
    except MissingAppFile as exc:
        config_error, missing_app = str(exc), True
    except ConfigError as exc:
        config_error = str(exc)
    if space.sdk == Sdk.DOCKER and "Dockerfile" not in files and not config_error:
        config_error, missing_app = "sdk: docker needs a Dockerfile at the root of the repo", True

    with transaction.atomic():
        space = Space.objects.select_for_update().get(pk=space.pk)
        if space.status == S.DELETING:
            raise ServiceError("The space is being deleted.", code="deleting")
        number = (space.revisions.aggregate(m=Max("number"))["m"] or 0) + 1
        rev = Revision.objects.create(
            space=space, number=number, content_hash=snapshot.content_hash,
            snapshot_path=str(snapshot.path), snapshot_bytes=snapshot.total_bytes, metadata=metadata,
            created_by=created_by,
            status=R.FAILED if config_error else R.QUEUED, error=config_error,
            finished_at=timezone.now() if config_error else None)
        _make_latest(space, rev)
        if config_error:
            fallback = _status_keeping_running_revision(space.status)
            if fallback:
                space_transition(space, fallback, error=f"revision {number}: {config_error}")
            else:
                space_transition(space, S.NO_APP_FILE if missing_app else S.CONFIG_ERROR, error=config_error)
            logs.reset(logs.build_key(rev.pk))
            Revision.objects.filter(pk=rev.pk).update(build_log=config_error + "\n")
            events.revision_finished.send(sender=Revision, revision_id=rev.pk, status=R.FAILED)
            rev.refresh_from_db()
            return rev
        # README values win over the API's (design.md §4).
        _apply_metadata(space, metadata)
        space_transition(space, _status_while_building(space.status), error="")
        if space.sdk == Sdk.STATIC:
            # Nothing to build: the proxy serves the files themselves.
            Revision.objects.filter(pk=rev.pk).update(status=R.SUCCEEDED, started_at=timezone.now(),
                                                      finished_at=timezone.now(), build_log="static files, nothing to build\n")
            events.revision_finished.send(sender=Revision, revision_id=rev.pk, status=R.SUCCEEDED)
            transaction.on_commit(lambda: _start_task().delay(rev.pk))
        else:
            transaction.on_commit(lambda: _build_task().delay(rev.pk))
    # The caller shows the revision: give it the stored row (a static site is already built).
    rev.refresh_from_db()
    return rev


def _snapshot_forget(path: str) -> None:
    """Remove a snapshot no revision refers to (content-addressed: another may share it)."""
    if path and not Revision.objects.filter(snapshot_path=path).exists():
        shutil.rmtree(path, ignore_errors=True)


def _status_while_building(status: str) -> str:
    """The status while a new revision builds: beside a serving revision RUNNING_BUILDING,
    beside a sleeping one still SLEEPING (it serves again once woken), else BUILDING."""
    if status in SERVING:
        return S.RUNNING_BUILDING
    if status == S.SLEEPING:
        return S.SLEEPING
    return S.BUILDING


def _status_keeping_running_revision(status: str) -> str | None:
    """Where a space falls back when a new revision fails, if it has a revision to keep:
    RUNNING while one serves, SLEEPING while it sleeps; None when nothing runs."""
    if status in SERVING:
        return S.RUNNING
    if status == S.SLEEPING:
        return S.SLEEPING
    return None


def _make_latest(space: Space, rev: Revision) -> None:
    """`rev` becomes the space's latest revision; older builds still queued or running are
    cancelled (a newer upload supersedes them, design.md §2)."""
    space.revisions.filter(status__in=[R.QUEUED, R.BUILDING], number__lt=rev.number).update(
        status=R.CANCELLED, error=f"superseded by revision {rev.number}", finished_at=timezone.now())
    Space.objects.filter(pk=space.pk).update(latest_revision=rev)


def _apply_metadata(space: Space, metadata: dict) -> None:
    updates = {}
    for key, attr in (("title", "title"), ("emoji", "emoji"), ("short_description", "short_description"),
                      ("color_from", "color_from"), ("color_to", "color_to"), ("tags", "tags"),
                      ("readme", "readme")):
        if metadata.get(key):
            updates[attr] = metadata[key]
    if updates:
        Space.objects.filter(pk=space.pk).update(**updates)
        if SEARCHED_FIELDS & set(updates):
            space_search_vector_refresh([space.pk])


def _build_task():
    from .tasks import build_revision_task

    return build_revision_task


def _start_task():
    from .tasks import start_revision_task

    return start_revision_task


def _publish_route_task():
    from .tasks import publish_route_task

    return publish_route_task


# ----------------------------------------------------------------------------- builds
def image_name(space: Space, number: int) -> str:
    return f"demohub-{settings.DEMOHUB_INSTANCE}/{space.label}:r{number}"


def revision_build(*, revision_id: int) -> None:
    """Build one revision's image (builds queue). Safe to run twice: the first claim wins.

    The claim takes a lease (spaces/build_leases.py) that a heartbeat thread renews while the
    build runs; a build whose worker died is retried or failed by the lease sweep.
    """
    from . import build_leases

    lease = build_leases.claim(revision_id)
    if lease is None:
        log.info("revision %s already claimed or finished", revision_id)
        return
    rev = Revision.objects.select_related("space__owner").get(pk=revision_id)
    space = rev.space
    key = logs.build_key(rev.pk)
    logs.reset(key)
    # Builds never get secrets, but a repo may print one it holds: never store it (variables.py).
    mask = variables.secret_masker(space.pk)

    def sink(text: str) -> None:
        if not lease.lost.is_set():  # once another attempt owns the revision, its log is that one's
            try:
                logs.append(key, mask(text), cap=settings.BUILD_LOG_MAX_BYTES)
            except RedisError:
                pass  # Redis is restarting: these lines of the live log are lost, the build goes on

    def should_continue() -> bool:
        return lease.held()

    meta = rev.metadata
    default_version = {"gradio": settings.DEFAULT_GRADIO_VERSION,
                       "streamlit": settings.DEFAULT_STREAMLIT_VERSION}.get(space.sdk, "")
    spec = BuildSpec(space=space.full_name, revision=rev.number, sdk=space.sdk, snapshot=Path(rev.snapshot_path),
                     image=image_name(space, rev.number), app_file=meta.get("app_file") or "app.py",
                     app_port=meta.get("app_port") or 7860, sdk_version=meta.get("sdk_version") or default_version,
                     no_cache=rev.factory)
    sink(f"==> revision {rev.number} of {space.full_name} ({space.sdk})\n")
    retries = build_leases.retries(rev.pk)
    if retries:
        sink(f"==> attempt {retries + 1}: the build worker of the previous attempt stopped responding\n")
    try:
        with lease:
            get_backend().build(spec, log=sink, should_continue=should_continue)
    except BuildCancelled:
        if not lease.lost.is_set():
            sink("==> cancelled: a newer revision superseded this build\n")
            _finish_revision(rev, R.CANCELLED, error="superseded by a newer revision", lease=lease.token)
        return
    except BuildError as exc:
        sink(f"==> build failed: {exc}\n")
        if _finish_revision(rev, R.FAILED, error=str(exc), lease=lease.token):
            _space_build_failed(space, rev, str(exc))
        return
    except BackendUnavailable:
        # Hand the revision back so the retry (or the lease sweep) can claim it again.
        Revision.objects.filter(pk=rev.pk, status=R.BUILDING, task_id=lease.token).update(
            status=R.QUEUED, task_id="")
        sink("==> the container engine is unavailable; the build will be retried\n")
        raise
    sink("==> build succeeded\n")
    if _finish_revision(rev, R.SUCCEEDED, image=spec.image, lease=lease.token):
        _start_task().delay(rev.pk)


def _finish_revision(rev: Revision, status: str, *, error: str = "", image: str = "",
                     lease: str | None = None) -> bool:
    """End a building revision. With `lease`, only while that lease still holds it: a worker
    that lost its lease (its revision was retried elsewhere) must not write over the retry."""
    text, _ = logs.read(logs.build_key(rev.pk))
    rows = Revision.objects.filter(pk=rev.pk, status=R.BUILDING)
    if lease is not None:
        rows = rows.filter(task_id=lease)
    done = rows.update(status=status, error=error[:4000], image=image, finished_at=timezone.now(),
                       build_log=text.decode("utf-8", "replace"))
    if done == 1:
        events.revision_finished.send(sender=Revision, revision_id=rev.pk, status=status)
    return done == 1


def _space_build_failed(space: Space, rev: Revision, message: str) -> None:
    space.refresh_from_db()
    if space.latest_revision_id != rev.pk:
        return  # an older build failing says nothing about the space now
    fallback = _status_keeping_running_revision(space.status)
    if fallback:
        space_transition(space, fallback, error=f"revision {rev.number} failed to build: {message}")
    else:
        space_transition(space, S.BUILD_ERROR, error=message)


# ----------------------------------------------------------------------------- running
def container_name(space: Space, slot: str) -> str:
    return f"dh-{settings.DEMOHUB_INSTANCE}-{space.label}-{slot}"


def _other(slot: str) -> str:
    return "b" if slot == "a" else "a"


def proxy_config() -> proxy.ProxyConfig:
    hub = urlsplit(settings.HUB_URL)
    return proxy.ProxyConfig(routes_dir=settings.PROXY_ROUTES_DIR, spaces_domain=settings.SPACES_DOMAIN,
                             hub_origin=f"{hub.scheme}://{hub.netloc}".lower())


def space_app_port(space: Space) -> int:
    """The port the space's app listens on (README `app_port`, default 7860)."""
    meta = (space.running_revision or space.latest_revision or Revision()).metadata
    return int(meta.get("app_port") or 7860)


def space_route(space: Space) -> proxy.Route:
    """The route the proxy should have for `space` right now, from the database alone."""
    rev = space.running_revision
    # README `disable_embedding` of the revision that serves (spaces/embeds): a flag, no reload.
    embedding = not (rev or space.latest_revision or Revision()).metadata.get("disable_embedding", False)
    if space.sdk == Sdk.STATIC and rev is not None:
        return proxy.Route(label=space.label, space=space.full_name, kind="static",
                           static_root=str(settings.SITES_DIR / space.label), private=space.is_private,
                           access_epoch=space.access_epoch, embedding=embedding)
    port = space_app_port(space)
    # Both blue/green slots; the active one is a flag the proxy reads per request, so a
    # redeploy's switch reloads nothing (runner/proxy.py).
    return proxy.Route(label=space.label, space=space.full_name, kind="container",
                       upstream=f"{space.slot_address('a')}:{port}", upstream_b=f"{space.slot_address('b')}:{port}",
                       active_slot=space.active_slot, private=space.is_private,
                       access_epoch=space.access_epoch, sleeping=bool(space.sleep_mode), embedding=embedding)


def space_publish_route(*, space_id: int, wait: bool = True, **fields) -> None:
    """Write `fields` to the space, then render its route from the row and (with `wait`) wait
    until the proxy has loaded it.

    The row stays locked while the route is written, so two writers (a redeploy and the
    route task queued at creation, say) cannot interleave a stale read with a newer write:
    the route on disk always matches the last committed row.
    """
    config = proxy_config()
    with transaction.atomic():
        space = (Space.objects.select_for_update(of=("self",))
                 .select_related("owner", "running_revision", "latest_revision").filter(pk=space_id).first())
        if space is None or space.status == S.DELETING:
            return
        if fields:
            Space.objects.filter(pk=space_id).update(**fields)
            for key, value in fields.items():
                setattr(space, key, value)
        changed = proxy.publish_route(space_route(space), config)
    if changed and wait and not proxy.wait_applied(config):
        log.warning("the proxy has not loaded routes generation %s yet", proxy.current_generation(config))


def _run_env(space: Space, rev: Revision) -> dict[str, str]:
    meta = rev.metadata
    port = str(meta.get("app_port") or 7860)
    runner_env = {
        "HOME": "/tmp/home",
        "PYTHONUNBUFFERED": "1",
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": port,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_SSR_MODE": "False",
        "GRADIO_TEMP_DIR": "/tmp/gradio",
        "STREAMLIT_SERVER_HEADLESS": "true",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
        # Inside the hub page's cross-site iframe the XSRF cookie is dropped (as on HF).
        "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION": "false",
        "STREAMLIT_SERVER_ENABLE_CORS": "false",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "XDG_CACHE_HOME": "/tmp/.cache",
        "HF_HOME": "/tmp/.cache/huggingface",
        "PORT": port,
        # Demohub's own names; never SYSTEM=spaces (it switches on HF-only behaviour).
        "DEMOHUB_SPACE_ID": space.full_name,
        "DEMOHUB_SPACE_HOST": space.host,
        "SPACE_ID": space.full_name,
        "SPACE_HOST": space.host,
        "SPACE_AUTHOR_NAME": space.owner.username,
        "SPACE_REPO_NAME": space.name,
        "SPACE_TITLE": space.title,
    }
    # The space's variables and secrets, at run time only (never build args); the runner's own
    # names win, though variables.py refuses them on input already.
    return {**variables.space_env_variables(space), **runner_env}


def revision_start(*, revision_id: int, restart: bool = False) -> None:
    """Start a built revision (below), holding the space's start claim (spaces/reconcile.py):
    one start per space at a time, and a start whose worker died is sent again. Raises
    StartBusy while another start of the space runs (a duplicate delivery, say)."""
    from . import reconcile as reconciliation

    space_id = Revision.objects.filter(pk=revision_id).values_list("space_id", flat=True).first()
    if space_id is None:
        return
    with reconciliation.start_claim(space_id) as claim:
        if claim is None:
            raise reconciliation.StartBusy(f"another start of space {space_id} is running")
        _revision_start(revision_id=revision_id, restart=restart)


def _revision_start(*, revision_id: int, restart: bool = False) -> None:
    """Start a built revision on the free slot, wait for health, then switch the route.

    The serving (or sleeping) revision, if any, stays until the new one answers; if the new
    one fails, the old one stays and the space's error says why. Only the latest revision is
    started, or with `restart` (space_restart) the running one.
    """
    rev = Revision.objects.select_related("space__owner", "space__running_revision").get(pk=revision_id)
    space = rev.space
    wanted = rev.pk == space.latest_revision_id or (restart and rev.pk == space.running_revision_id)
    if rev.status != R.SUCCEEDED or not wanted or space.status in (S.DELETING, S.PAUSED):
        log.info("revision %s is not the one to start (space %s is %s)", rev.pk, space.pk, space.status)
        return
    serving = space.status in SERVING and space.running_revision_id is not None
    asleep = space.status == S.SLEEPING and space.running_revision_id is not None
    if space.running_revision_id == rev.pk and space.status in (S.RUNNING, S.SLEEPING):
        return  # duplicate delivery: already serving (or asleep on) this revision
    if rev.error and not restart:
        return  # duplicate delivery: it failed to start; only the owner's restart tries again
    if not space_transition(space, S.RUNNING_APP_STARTING if serving else S.APP_STARTING):
        log.info("space %s moved on (%s); not starting revision %s", space.pk, space.status, rev.pk)
        return
    if space.sdk == Sdk.STATIC:
        _switch_static_site(space, rev)
        space_publish_route(space_id=space.pk, running_revision=rev)
        space_transition(space, S.RUNNING, error="", running_revision=rev, sleep_mode="",
                         last_active_at=timezone.now())
        return
    slot = _other(space.active_slot) if serving or asleep else space.active_slot
    ok, message = _start_container(space, rev, slot)
    if not ok:
        # On the revision too: housekeeping keeps the previous revision that did run, for rollback.
        Revision.objects.filter(pk=rev.pk).update(error=f"failed to start: {message}"[:4000])
        if serving or asleep:
            space_transition(space, S.RUNNING if serving else S.SLEEPING,
                             error=f"revision {rev.number} failed to start: {message}")
        else:
            space_transition(space, S.RUNTIME_ERROR, error=message)
        return
    old_slot = space.active_slot
    old_port = int((space.running_revision.metadata if space.running_revision else {}).get("app_port") or 7860)
    # From the switch on, the old container is in no slot the row names: reconcile must leave it.
    retiring = container_name(space, old_slot) if serving and old_slot != slot else ""
    redeploy.draining_begin(retiring)
    healthy_at = time.monotonic()
    # Switch the route first and wait for the proxy to load it: RUNNING means reachable.
    space_publish_route(space_id=space.pk, running_revision=rev, active_slot=slot, sleep_mode="")
    log.info("revision %s of %s: route switched to slot %s, applied %.3f s after its health check passed",
             rev.number, space.full_name, slot, time.monotonic() - healthy_at)
    if not space_transition(space, S.RUNNING, error="", running_revision=rev, active_slot=slot, sleep_mode="",
                            last_active_at=timezone.now()):
        get_backend().stop(container_name(space, slot))  # the space moved on (deleted, paused)
        redeploy.draining_end(retiring)
        return
    if (serving or asleep) and old_slot != slot:
        if serving:
            # Requests the proxy sent the old container before the switch finish there first.
            redeploy.old_slot_drain(address=space.slot_address(old_slot), port=old_port, config=proxy_config(),
                                    what=retiring)
        get_backend().stop(container_name(space, old_slot), timeout=10)
    redeploy.draining_end(retiring)


def _switch_static_site(space: Space, rev: Revision) -> None:
    """Point sites/<label> at the revision's snapshot, atomically (rename over the old link)."""
    settings.SITES_DIR.mkdir(parents=True, exist_ok=True)
    link = settings.SITES_DIR / space.label
    tmp = settings.SITES_DIR / f".{space.label}.{secrets.token_hex(4)}"
    os.symlink(rev.snapshot_path, tmp)
    os.replace(tmp, link)


def _run_spec(space: Space, rev: Revision, slot: str) -> RunSpec:
    port = int(rev.metadata.get("app_port") or 7860)
    return RunSpec(
        name=container_name(space, slot), image=rev.image, address=space.slot_address(slot), port=port,
        env=_run_env(space, rev),
        labels={"demohub.space": space.full_name, "demohub.revision": str(rev.number),
                "demohub.slot": slot, "demohub.label": space.label},
        # Gradio and Streamlit write only to /tmp; a Dockerfile app may expect a writable root.
        read_only_root=space.sdk != Sdk.DOCKER,
        memory=space.memory_limit or settings.SPACE_MEMORY_LIMIT, cpus=settings.SPACE_CPUS,
        pids=settings.SPACE_PIDS_LIMIT, tmpfs_size=settings.SPACE_TMPFS_SIZE)


def _start_container(space: Space, rev: Revision, slot: str, *, still_wanted=None,
                     fresh_log: bool = True) -> tuple[bool, str]:
    """Run the container and wait until GET / answers below 500. Returns (healthy, why not).

    `still_wanted()` (default: the space is still starting this revision) is asked while
    waiting; `fresh_log=False` keeps the run log going (a crash restart appends to it, so the
    crash's output stays readable above the new run's).
    """
    backend = get_backend()
    spec = _run_spec(space, rev, slot)
    run_log_follow(space_id=space.pk, container=spec.name, reset=fresh_log)
    try:
        backend.start(spec)
    except NotIsolated as exc:  # the host firewall is missing: the error says what to do
        return False, str(exc)
    # Capped here too: a revision parsed before the operator lowered the cap keeps its metadata.
    timeout = min(rev.metadata.get("startup_duration_timeout") or settings.SPACE_STARTUP_TIMEOUT,
                  settings.SPACE_STARTUP_TIMEOUT_MAX)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.state(spec.name)
        if state is None or not state.running:
            run_log_copy(space_id=space.pk)
            return False, _exit_message(state, space.pk, memory=spec.memory)
        if _probe(spec.address, spec.port) is not None:
            run_log_copy(space_id=space.pk)
            return True, ""
        run_log_copy(space_id=space.pk)
        if not (still_wanted() if still_wanted else space_still_starting(space.pk, rev.pk)):
            backend.stop(spec.name, timeout=2)
            return False, "superseded while starting"
        # Short: a visitor may be waiting on this start (waking, spaces/sleep.py); a probe is
        # one local HTTP request.
        time.sleep(0.1)
    backend.stop(spec.name, timeout=2)
    return False, f"the app did not answer on port {spec.port} within {timeout} s (startup timeout)"


def space_still_starting(space_id: int, rev_id: int) -> bool:
    # A restart starts the running revision, which need not be the latest.
    return Space.objects.filter(Q(latest_revision_id=rev_id) | Q(running_revision_id=rev_id), pk=space_id,
                                status__in=[S.APP_STARTING, S.RUNNING_APP_STARTING]).exists()


def _probe(address: str, port: int) -> int | None:
    """HTTP status of `GET /` on the app's own address if below 500, else None (refused,
    timed out, 5xx, not HTTP).

    http.client, not urllib: one request to exactly this address and port. urllib's default
    opener follows redirects and honours *_proxy variables, so an app answering 302 to
    http://127.0.0.1:<port>/ or a link-local address would make this worker, on the host
    network, request it (README "Security": health probes). A 3xx answer means the app is up.
    """
    conn = http.client.HTTPConnection(address, port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": f"{address}:{port}", "User-Agent": "demohub-health/1"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    return status if status < 500 else None


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


def _exit_message(state, space_id: int, *, memory: str) -> str:
    why = exit_reason(state, memory=memory)
    last = run_log_tail(space_id)
    return f"{why}. Last log lines:\n{last}" if last else why


# ----------------------------------------------------------------------------- run logs
def _run_log_state_key(space_id: int) -> str:
    return logs.run_key(space_id) + ":follow"


def run_log_follow(*, space_id: int, container: str, reset: bool = True) -> None:
    """Make the space's run log follow `container` from now on (a new run starts a new log,
    unless `reset` is False: a crash restart continues the log of the run that crashed)."""
    if reset:
        logs.reset(logs.run_key(space_id))
    logs._client().hset(_run_log_state_key(space_id), mapping={"container": container, "since": 0})


def run_log_copy(*, space_id: int) -> None:
    state = logs._client().hgetall(_run_log_state_key(space_id))
    if not state:
        return
    container = state[b"container"].decode()
    since = float(state.get(b"since", b"0") or 0)
    text, last = get_backend().logs(container, since=since or None)
    if text:
        mask = variables.secret_masker(space_id)  # secret values never reach the stored log
        logs.append(logs.run_key(space_id), mask(text), cap=settings.RUN_LOG_MAX_BYTES)
        logs._client().hset(_run_log_state_key(space_id), "since", last)


def run_logs_copy_all() -> None:
    for space_id in Space.objects.filter(status__in=list(SERVING) + [S.APP_STARTING]).values_list("pk", flat=True):
        try:
            run_log_copy(space_id=space_id)
        except BackendUnavailable:
            return


# ----------------------------------------------------------------------------- owner actions
def space_restart(*, space: Space, factory: bool = False, by: User | None = None) -> Revision | None:
    """Restart the serving revision (resuming a paused space), or rebuild without cache."""
    rev = space.latest_revision
    if rev is None:
        raise ServiceError("The space has no revision to run yet; upload one first.", code="no_revision")
    quotas.check_running(space)
    if factory:
        quotas.check_build_queue(space)
        return _revision_rebuild(space=space, source=rev, by=by)
    target = space.running_revision or (rev if rev.status == R.SUCCEEDED else None)
    if target is None:
        raise ServiceError("No revision of this space has built successfully; upload a fixed one "
                           "or use factory rebuild.", code="nothing_to_run")
    # latest_revision stays the newest row: the start task is told this is a restart instead.
    if not space_transition(space, S.APP_STARTING, error="", sleep_mode=""):
        raise ServiceError(f"A space that is {space.status} cannot be restarted now.", code="conflict")
    transaction.on_commit(lambda: _start_task().delay(target.pk, restart=True))
    return target


def _revision_rebuild(*, space: Space, source: Revision, by: User | None) -> Revision:
    with transaction.atomic():
        space = Space.objects.select_for_update().get(pk=space.pk)
        number = (space.revisions.aggregate(m=Max("number"))["m"] or 0) + 1
        if not source.snapshot_path:
            raise ServiceError("The files of this revision were pruned; upload the repo again.",
                               code="snapshot_pruned")
        rev = Revision.objects.create(space=space, number=number, content_hash=source.content_hash,
                                      snapshot_path=source.snapshot_path, metadata=source.metadata,
                                      created_by=by, factory=True)
        _make_latest(space, rev)
        if space.sdk == Sdk.STATIC:
            Revision.objects.filter(pk=rev.pk).update(status=R.SUCCEEDED, finished_at=timezone.now())
            space_transition(space, _status_while_building(space.status), error="")
            transaction.on_commit(lambda: _start_task().delay(rev.pk))
        else:
            space_transition(space, _status_while_building(space.status), error="")
            transaction.on_commit(lambda: _build_task().delay(rev.pk))
    return rev


def space_pause(*, space: Space) -> None:
    if not space_transition(space, S.PAUSED, sleep_mode=""):
        raise ServiceError(f"A space that is {space.status} cannot be paused.", code="conflict")
    from .tasks import stop_space_task

    transaction.on_commit(lambda: stop_space_task.delay(space.pk))


def space_stop_containers(*, space_id: int) -> None:
    space = Space.objects.select_related("owner").get(pk=space_id)
    for slot in ("a", "b"):
        get_backend().stop(container_name(space, slot), timeout=10)


def space_delete(*, space: Space) -> None:
    space_transition(space, S.DELETING)
    from .tasks import delete_space_task

    transaction.on_commit(lambda: delete_space_task.delay(space.pk))


def space_purge(*, space_id: int) -> None:
    """Remove everything of a DELETING space: containers, images, route, site link, files, rows."""
    space = Space.objects.select_related("owner").filter(pk=space_id, status=S.DELETING).first()
    if space is None:
        return
    from . import housekeeping

    # Its images' own layers go too, now or by the next housekeeping if a build is running.
    housekeeping.layers_remember(get_backend().remove_space(space.full_name))
    proxy.remove_route(space.label, proxy_config())
    (settings.SITES_DIR / space.label).unlink(missing_ok=True)
    snapshots = set(space.revisions.values_list("snapshot_path", flat=True))
    rev_ids = list(space.revisions.values_list("pk", flat=True))
    space.delete()
    for rev_id in rev_ids:
        logs.reset(logs.build_key(rev_id))
    logs.reset(logs.run_key(space_id))
    logs._client().delete(_run_log_state_key(space_id))
    # Snapshots are content-addressed and may be shared with another space's revision.
    still_used = set(Revision.objects.filter(snapshot_path__in=snapshots).values_list("snapshot_path", flat=True))
    for path in snapshots - still_used:
        shutil.rmtree(path, ignore_errors=True)
    housekeeping.layers_prune()


# ----------------------------------------------------------------------------- reconciliation
def reconcile() -> None:
    """Converge the proxy and the engine on the database (the source of truth).

    Routes: one per live space, rendered from its row; stale ones removed. Containers: any
    container of this installation that belongs to no live slot is an orphan and goes.
    Builds: a BUILDING revision whose lease expired is retried or failed, never left building,
    and queued revisions whose task the broker lost are sent again (spaces/build_leases.py).
    """
    spaces = list(Space.objects.select_related("owner", "running_revision", "latest_revision")
                  .exclude(status=S.DELETING))
    # Rows read here without a lock may be older than a route a concurrent writer (a sleep,
    # a visibility change) just wrote: a route that differs is republished from its locked,
    # fresh row, never from this read. Routes of spaces that are gone are removed.
    config = proxy_config()
    # One broken space (a row whose route cannot be rendered, an address past the subnet, a
    # site link that cannot be made) is logged and skipped: the others still converge. Its
    # route file, if any, is left as it is.
    healthy = []
    for s in spaces:
        try:
            if proxy.routes_out_of_date([space_route(s)], config):
                space_publish_route(space_id=s.pk, wait=False)
            if (s.sdk == Sdk.STATIC and s.running_revision is not None
                    and not (settings.SITES_DIR / s.label).exists()):
                _switch_static_site(s, s.running_revision)
            healthy.append(s)
        except (BackendUnavailable, DatabaseError):
            raise  # not this space's fault: the whole round stops, as before
        except Exception:
            log.exception("reconcile: space %s (%s) cannot be converged; skipped", s.pk, s.full_name)
    proxy.remove_routes_except([s.label for s in spaces], config)
    redeploy.slot_flags_repair(healthy, config)

    from . import build_leases

    build_leases.sweep()
    from . import reconcile as reconciliation

    reconciliation.sweep()  # starts and purges a restart lost, run logs Redis lost

    try:
        backend = get_backend()
        containers = backend.list_containers()
    except BackendUnavailable:
        log.warning("reconcile: the engine does not answer; routes were synced, containers were not")
        return
    wanted = set()
    for s in spaces:
        # A sleeping space's container (if the engine keeps it frozen) is its running revision.
        if s.status in SERVING or s.status == S.SLEEPING:
            wanted.add(container_name(s, s.active_slot))
        if s.status in (S.APP_STARTING, S.RUNNING_APP_STARTING):
            wanted.update({container_name(s, "a"), container_name(s, "b")})
    for c in containers:
        # A draining container is the old one of a switch, still finishing its requests.
        if c.labels.get("demohub.slot") and c.name not in wanted and not redeploy.is_draining(c.name):
            log.info("reconcile: removing orphan container %s", c.name)
            backend.stop(c.name, timeout=5)
    # After an engine restart: frozen spaces whose container is gone sleep stopped.
    reconciliation.frozen_containers_lost(spaces, {c.name: c for c in containers})
