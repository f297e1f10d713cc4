"""Writes: every change to spaces, revisions and tokens, and every call into the runner.

Functions are named <entity>_<action> and take keyword-only arguments. Status changes go
through `space_transition` only. Work for the workers is enqueued after the transaction
commits, with ids only; tasks claim it with conditional UPDATEs so a duplicate delivery does
nothing.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from runner import proxy
from runner.archive import ArchiveLimits, snapshot_archive
from runner.backends import BuildSpec, RunSpec, get_backend
from runner.exceptions import BackendUnavailable, BuildCancelled, BuildError

from . import logs
from .frontmatter import ConfigError, MissingAppFile, read_config
from .models import ApiToken, HostLabel, Revision, Sdk, Space, Visibility
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
def user_create(*, username: str, password: str, email: str = "") -> User:
    if not settings.SIGNUP_OPEN:
        raise ServiceError("Sign-up is closed on this hub.", code="signup_closed", http_status=403)
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
    for _ in range(5):
        try:
            with transaction.atomic():
                label = _label_for(owner.username, name)
                HostLabel.objects.create(label=label)
                index = (Space.objects.aggregate(m=Max("address_index"))["m"] or 0) + 1
                space = Space(owner=owner, name=name, sdk=sdk, visibility=visibility, title=title or name,
                              short_description=short_description, label=label, address_index=index,
                              status=S.NO_APP_FILE)
                space.full_clean()
                space.save()
                break
        except IntegrityError:
            # Another space took the label or address index meanwhile: pick again.
            continue
    else:
        raise ServiceError("Could not allocate an address for the space; try again.", code="busy")
    transaction.on_commit(lambda: _publish_route_task().delay(space.pk))
    return space


def space_update(*, space: Space, **fields) -> Space:
    allowed = {"visibility", "title", "short_description", "tags", "sleep_after", "emoji"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError({k: "This field cannot be changed." for k in unknown})
    if "visibility" in fields and fields["visibility"] not in Visibility.values:
        raise ValidationError({"visibility": "Use public or private."})
    if "sleep_after" in fields and not (fields["sleep_after"] == -1 or fields["sleep_after"] >= 60):
        raise ValidationError({"sleep_after": "Use -1 (never) or at least 60 seconds."})
    for key, value in fields.items():
        setattr(space, key, value)
    space.full_clean()
    space.save()
    if "visibility" in fields:
        transaction.on_commit(lambda: _publish_route_task().delay(space.pk))
    return space


def space_transition(space: Space | int, to: str, *, error: str | None = None, **fields) -> bool:
    """Move a space to `to` if the state machine allows it from its current status.

    One conditional UPDATE: a concurrent change that got there first makes this a no-op and
    returns False. `fields` are written in the same UPDATE.
    """
    space_id = space if isinstance(space, int) else space.pk
    values = {"status": to, "updated_at": timezone.now(), **fields}
    if error is not None:
        values["error"] = error[:4000]
    changed = Space.objects.filter(pk=space_id, status__in=allowed_sources(to)).update(**values) == 1
    if changed and isinstance(space, Space):
        for key, value in values.items():
            setattr(space, key, value)
    return changed


def _archive_limits() -> ArchiveLimits:
    return ArchiveLimits(max_archive_bytes=settings.UPLOAD_MAX_BYTES, max_files=settings.ARCHIVE_MAX_FILES,
                         max_total_bytes=settings.ARCHIVE_MAX_TOTAL_BYTES,
                         max_file_bytes=settings.ARCHIVE_MAX_FILE_BYTES, max_ratio=settings.ARCHIVE_MAX_RATIO)


def revision_create(*, space: Space, archive, created_by: User) -> Revision:
    """Check and store an upload, then queue its build.

    The archive is validated and snapshotted before any row changes (ArchiveError leaves no
    trace). A README config error still records the revision, as failed, so the user sees
    why; the revision that is serving keeps serving either way.
    """
    snapshot = snapshot_archive(archive, settings.SNAPSHOTS_DIR, _archive_limits())
    files = set(snapshot.files)
    config_error = ""
    metadata: dict = {}
    missing_app = False
    try:
        cfg = read_config(snapshot.path, files, space_sdk=space.sdk)
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
            snapshot_path=str(snapshot.path), metadata=metadata, created_by=created_by,
            status=R.FAILED if config_error else R.QUEUED, error=config_error,
            finished_at=timezone.now() if config_error else None)
        _make_latest(space, rev)
        serving = space.status in SERVING
        if config_error:
            if serving:
                space_transition(space, S.RUNNING, error=f"revision {number}: {config_error}")
            else:
                space_transition(space, S.NO_APP_FILE if missing_app else S.CONFIG_ERROR, error=config_error)
            logs.reset(logs.build_key(rev.pk))
            Revision.objects.filter(pk=rev.pk).update(build_log=config_error + "\n")
            return rev
        # README values win over the API's (design.md §4).
        _apply_metadata(space, metadata)
        space_transition(space, S.RUNNING_BUILDING if serving else S.BUILDING, error="")
        if space.sdk == Sdk.STATIC:
            # Nothing to build: the proxy serves the files themselves.
            Revision.objects.filter(pk=rev.pk).update(status=R.SUCCEEDED, started_at=timezone.now(),
                                                      finished_at=timezone.now(), build_log="static files, nothing to build\n")
            transaction.on_commit(lambda: _start_task().delay(rev.pk))
        else:
            transaction.on_commit(lambda: _build_task().delay(rev.pk))
    return rev


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
    """Build one revision's image (builds queue). Safe to run twice: the first claim wins."""
    now = timezone.now()
    claimed = Revision.objects.filter(pk=revision_id, status=R.QUEUED).update(
        status=R.BUILDING, started_at=now, heartbeat_at=now)
    if not claimed:
        log.info("revision %s already claimed or finished", revision_id)
        return
    rev = Revision.objects.select_related("space__owner").get(pk=revision_id)
    space = rev.space
    key = logs.build_key(rev.pk)
    logs.reset(key)
    last_beat = [time.monotonic()]

    def sink(text: str) -> None:
        logs.append(key, text, cap=settings.BUILD_LOG_MAX_BYTES)
        if time.monotonic() - last_beat[0] > 5:
            last_beat[0] = time.monotonic()
            Revision.objects.filter(pk=rev.pk).update(heartbeat_at=timezone.now())

    def should_continue() -> bool:
        return Revision.objects.filter(pk=rev.pk, status=R.BUILDING).exists()

    meta = rev.metadata
    default_version = {"gradio": settings.DEFAULT_GRADIO_VERSION,
                       "streamlit": settings.DEFAULT_STREAMLIT_VERSION}.get(space.sdk, "")
    spec = BuildSpec(space=space.full_name, revision=rev.number, sdk=space.sdk, snapshot=Path(rev.snapshot_path),
                     image=image_name(space, rev.number), app_file=meta.get("app_file") or "app.py",
                     app_port=meta.get("app_port") or 7860, sdk_version=meta.get("sdk_version") or default_version,
                     no_cache=rev.factory)
    sink(f"==> revision {rev.number} of {space.full_name} ({space.sdk})\n")
    try:
        get_backend().build(spec, log=sink, should_continue=should_continue)
    except BuildCancelled:
        sink("==> cancelled: a newer revision superseded this build\n")
        _finish_revision(rev, R.CANCELLED, error="superseded by a newer revision")
        return
    except BuildError as exc:
        sink(f"==> build failed: {exc}\n")
        if _finish_revision(rev, R.FAILED, error=str(exc)):
            _space_build_failed(space, rev, str(exc))
        return
    except BackendUnavailable:
        # Hand the revision back so the retry (or the reaper) can claim it again.
        Revision.objects.filter(pk=rev.pk, status=R.BUILDING).update(status=R.QUEUED)
        sink("==> the container engine is unavailable; the build will be retried\n")
        raise
    sink("==> build succeeded\n")
    if _finish_revision(rev, R.SUCCEEDED, image=spec.image):
        _start_task().delay(rev.pk)


def _finish_revision(rev: Revision, status: str, *, error: str = "", image: str = "") -> bool:
    text, _ = logs.read(logs.build_key(rev.pk))
    done = Revision.objects.filter(pk=rev.pk, status=R.BUILDING).update(
        status=status, error=error[:4000], image=image, finished_at=timezone.now(),
        build_log=text.decode("utf-8", "replace"))
    return done == 1


def _space_build_failed(space: Space, rev: Revision, message: str) -> None:
    space.refresh_from_db()
    if space.latest_revision_id != rev.pk:
        return  # an older build failing says nothing about the space now
    if space.status in SERVING:
        space_transition(space, S.RUNNING, error=f"revision {rev.number} failed to build: {message}")
    else:
        space_transition(space, S.BUILD_ERROR, error=message)


# ----------------------------------------------------------------------------- running
def container_name(space: Space, slot: str) -> str:
    return f"dh-{settings.DEMOHUB_INSTANCE}-{space.label}-{slot}"


def _other(slot: str) -> str:
    return "b" if slot == "a" else "a"


def proxy_config() -> proxy.ProxyConfig:
    return proxy.ProxyConfig(routes_dir=settings.PROXY_ROUTES_DIR, spaces_domain=settings.SPACES_DOMAIN)


def space_route(space: Space) -> proxy.Route:
    """The route the proxy should have for `space` right now, from the database alone."""
    rev = space.running_revision
    if space.sdk == Sdk.STATIC and rev is not None:
        return proxy.Route(label=space.label, space=space.full_name, kind="static",
                           static_root=str(settings.SITES_DIR / space.label), private=space.is_private)
    meta = (rev or space.latest_revision or Revision()).metadata
    port = meta.get("app_port") or 7860
    return proxy.Route(label=space.label, space=space.full_name, kind="container",
                       upstream=f"{space.slot_address(space.active_slot)}:{port}", private=space.is_private)


def space_publish_route(*, space_id: int, **fields) -> None:
    """Write `fields` to the space, then render its route from the row and wait until it is live.

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
    if changed and not proxy.wait_applied(config):
        log.warning("the proxy has not loaded routes generation %s yet", proxy.current_generation(config))


def _run_env(space: Space, rev: Revision) -> dict[str, str]:
    meta = rev.metadata
    port = str(meta.get("app_port") or 7860)
    return {
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


def revision_start(*, revision_id: int) -> None:
    """Start a built revision on the free slot, wait for health, then switch the route.

    The serving revision (if any) keeps serving until the new one answers; if the new one
    fails, the old one stays and the space's error says why.
    """
    rev = Revision.objects.select_related("space__owner", "space__running_revision").get(pk=revision_id)
    space = rev.space
    if rev.status != R.SUCCEEDED or space.latest_revision_id != rev.pk or space.status in (S.DELETING, S.PAUSED):
        log.info("revision %s is not the one to start (space %s is %s)", rev.pk, space.pk, space.status)
        return
    serving = space.status in SERVING and space.running_revision_id is not None
    if space.running_revision_id == rev.pk and space.status == S.RUNNING:
        return  # duplicate delivery: already serving this revision
    if not space_transition(space, S.RUNNING_APP_STARTING if serving else S.APP_STARTING):
        log.info("space %s moved on (%s); not starting revision %s", space.pk, space.status, rev.pk)
        return
    if space.sdk == Sdk.STATIC:
        _switch_static_site(space, rev)
        space_publish_route(space_id=space.pk, running_revision=rev)
        space_transition(space, S.RUNNING, error="", running_revision=rev)
        return
    slot = _other(space.active_slot) if serving else space.active_slot
    ok, message = _start_container(space, rev, slot)
    if not ok:
        if serving:
            space_transition(space, S.RUNNING, error=f"revision {rev.number} failed to start: {message}")
        else:
            space_transition(space, S.RUNTIME_ERROR, error=message)
        return
    old_slot = space.active_slot
    # Switch the route first and wait for the proxy to load it: RUNNING means reachable.
    space_publish_route(space_id=space.pk, running_revision=rev, active_slot=slot)
    if not space_transition(space, S.RUNNING, error="", running_revision=rev, active_slot=slot):
        get_backend().stop(container_name(space, slot))  # the space moved on (deleted, paused)
        return
    if serving and old_slot != slot:
        # Let the proxy's reload finish and in-flight requests drain before stopping the old one.
        time.sleep(2)
        get_backend().stop(container_name(space, old_slot), timeout=10)


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


def _start_container(space: Space, rev: Revision, slot: str) -> tuple[bool, str]:
    """Run the container and wait until GET / answers below 500. Returns (healthy, why not)."""
    backend = get_backend()
    spec = _run_spec(space, rev, slot)
    run_log_follow(space_id=space.pk, container=spec.name)
    backend.start(spec)
    timeout = rev.metadata.get("startup_duration_timeout") or settings.SPACE_STARTUP_TIMEOUT
    deadline = time.monotonic() + timeout
    url = f"http://{spec.address}:{spec.port}/"
    while time.monotonic() < deadline:
        state = backend.state(spec.name)
        if state is None or not state.running:
            run_log_copy(space_id=space.pk)
            return False, _exit_message(state, space.pk, memory=spec.memory)
        if _probe(url) is not None:
            run_log_copy(space_id=space.pk)
            return True, ""
        run_log_copy(space_id=space.pk)
        if not space_still_starting(space.pk, rev.pk):
            backend.stop(spec.name, timeout=2)
            return False, "superseded while starting"
        time.sleep(0.25)
    backend.stop(spec.name, timeout=2)
    return False, f"the app did not answer on port {spec.port} within {timeout} s (startup timeout)"


def space_still_starting(space_id: int, rev_id: int) -> bool:
    return Space.objects.filter(pk=space_id, latest_revision_id=rev_id,
                                status__in=[S.APP_STARTING, S.RUNNING_APP_STARTING]).exists()


def _probe(url: str) -> int | None:
    """HTTP status of GET url if below 500, else None (refused, timed out, 5xx)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code if exc.code < 500 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _exit_message(state, space_id: int, *, memory: str) -> str:
    tail, _ = logs.read(logs.run_key(space_id))
    last = "\n".join(tail.decode("utf-8", "replace").rstrip().splitlines()[-10:])
    if state is None:
        why = "the container disappeared"
    elif state.oom_killed:
        why = f"the app was killed for using more than its memory limit ({memory})"
    else:
        why = f"the app exited with code {state.exit_code}"
    return f"{why}. Last log lines:\n{last}" if last else why


# ----------------------------------------------------------------------------- run logs
def _run_log_state_key(space_id: int) -> str:
    return logs.run_key(space_id) + ":follow"


def run_log_follow(*, space_id: int, container: str) -> None:
    """Make the space's run log follow `container` from now on (a new run starts a new log)."""
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
        logs.append(logs.run_key(space_id), text, cap=settings.RUN_LOG_MAX_BYTES)
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
    if factory:
        return _revision_rebuild(space=space, source=rev, by=by)
    target = space.running_revision or (rev if rev.status == R.SUCCEEDED else None)
    if target is None:
        raise ServiceError("No revision of this space has built successfully; upload a fixed one "
                           "or use factory rebuild.", code="nothing_to_run")
    with transaction.atomic():
        Space.objects.filter(pk=space.pk).update(latest_revision=target)
        if not space_transition(space, S.APP_STARTING, error=""):
            raise ServiceError(f"A space that is {space.status} cannot be restarted now.", code="conflict")
    transaction.on_commit(lambda: _start_task().delay(target.pk))
    return target


def _revision_rebuild(*, space: Space, source: Revision, by: User | None) -> Revision:
    with transaction.atomic():
        space = Space.objects.select_for_update().get(pk=space.pk)
        number = (space.revisions.aggregate(m=Max("number"))["m"] or 0) + 1
        rev = Revision.objects.create(space=space, number=number, content_hash=source.content_hash,
                                      snapshot_path=source.snapshot_path, metadata=source.metadata,
                                      created_by=by, factory=True)
        _make_latest(space, rev)
        serving = space.status in SERVING
        if space.sdk == Sdk.STATIC:
            Revision.objects.filter(pk=rev.pk).update(status=R.SUCCEEDED, finished_at=timezone.now())
            space_transition(space, S.RUNNING_BUILDING if serving else S.BUILDING, error="")
            transaction.on_commit(lambda: _start_task().delay(rev.pk))
        else:
            space_transition(space, S.RUNNING_BUILDING if serving else S.BUILDING, error="")
            transaction.on_commit(lambda: _build_task().delay(rev.pk))
    return rev


def space_pause(*, space: Space) -> None:
    if not space_transition(space, S.PAUSED):
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
    get_backend().remove_space(space.full_name)
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


# ----------------------------------------------------------------------------- reconciliation
def reconcile() -> None:
    """Converge the proxy and the engine on the database (the source of truth).

    Routes: one per live space, rendered from its row; stale ones removed. Containers: any
    container of this installation that belongs to no live slot is an orphan and goes.
    Builds: a BUILDING revision whose heartbeat stopped is failed, never left building.
    """
    spaces = list(Space.objects.select_related("owner", "running_revision", "latest_revision")
                  .exclude(status=S.DELETING))
    proxy.sync_routes([space_route(s) for s in spaces], proxy_config())
    for s in spaces:
        if s.sdk == Sdk.STATIC and s.running_revision is not None:
            link = settings.SITES_DIR / s.label
            if not link.exists():
                _switch_static_site(s, s.running_revision)

    stale = timezone.now() - timezone.timedelta(seconds=120)
    for rev in Revision.objects.filter(status=R.BUILDING).filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at=None)):
        if _finish_revision(rev, R.FAILED, error="the build worker stopped responding; upload again or restart"):
            _space_build_failed(rev.space, rev, rev.error or "the build worker stopped responding")

    try:
        backend = get_backend()
        containers = backend.list_containers()
    except BackendUnavailable:
        log.warning("reconcile: the engine does not answer; routes were synced, containers were not")
        return
    wanted = set()
    for s in spaces:
        if s.status in SERVING:
            wanted.add(container_name(s, s.active_slot))
        if s.status in (S.APP_STARTING, S.RUNNING_APP_STARTING):
            wanted.update({container_name(s, "a"), container_name(s, "b")})
    for c in containers:
        if c.labels.get("demohub.slot") and c.name not in wanted:
            log.info("reconcile: removing orphan container %s", c.name)
            backend.stop(c.name, timeout=5)
