"""A space's route at the proxy: rendered from its row, published (runner/proxy.py), and its
container names and slots; static sites are a link the proxy serves directly.
"""
from __future__ import annotations

import logging
import os
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from runner import connections, proxy
from spaces.lifecycle.node_routes import slot_upstream
from spaces.records.models import Preview, Revision, Sdk, Space
from spaces.records.status import SpaceStatus

log = logging.getLogger(__name__)
User = get_user_model()
S = SpaceStatus
R = Revision.Status
# How long a route change waits for the proxy to load it. RUNNING means reachable, so this is
# generous: on a busy 2-core machine a reload (nginx -t, new workers, the old ones closing
# their listeners, at most one a second) has taken more than 5 s. Bounded all the same: with
# no proxy running the route goes live at its next start, and the caller goes on.
APPLY_TIMEOUT = 30.0


# ----------------------------------------------------------------------------- running
def container_name(space: Space, slot: str) -> str:
    return f"dh-{settings.DEMOHUB_INSTANCE}-{space.label}-{slot}"


def other_slot(slot: str) -> str:
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
                       upstream=slot_upstream(space, "a", port), upstream_b=slot_upstream(space, "b", port),
                       active_slot=space.active_slot, private=space.is_private,
                       access_epoch=space.access_epoch, sleeping=bool(space.sleep_mode), embedding=embedding)


def space_publish_route(*, space_id: int, wait: bool = True, end_open_connections: bool = False, **fields) -> None:
    """Write `fields` to the space, then render its route from the row and (with `wait`) wait
    until the proxy has loaded it. With `end_open_connections` (access changed: the access
    services ask for it), a private space's connections already open to the app end too.

    The row stays locked while the route is written, so two writers (a redeploy and the
    route task queued at creation, say) cannot interleave a stale read with a newer write:
    the route on disk always matches the last committed row.
    """
    config = proxy_config()
    with transaction.atomic():
        space = (Space.objects.select_for_update(of=("self",))
                 .select_related("owner", "running_revision", "latest_revision", "node_a", "node_b")
                 .filter(pk=space_id).first())
        if space is None or space.status == S.DELETING:
            return
        if fields:
            Space.objects.filter(pk=space_id).update(**fields)
            for key, value in fields.items():
                setattr(space, key, value)
        route = space_route(space)
        changed = proxy.publish_route(route, config, apply_timeout=APPLY_TIMEOUT)
        # Its branch previews' flags carry the space's access epoch: a change of who may
        # enter (a collaborator removed) reaches their hosts at once too.
        previews = [preview_route(p) for p in Preview.objects.filter(space_id=space_id).select_related("space__owner")]
        for preview in previews:
            changed = proxy.set_route_state(preview, config) or changed
    # A branch preview is always private: connections open to it end as a private space's do.
    for private in [r for r in (route, *previews) if r.private] if end_open_connections else ():
        changed = _end_open_connections(private, config) or changed
    if changed and wait and not proxy.wait_applied(config, timeout=APPLY_TIMEOUT):
        log.warning("the proxy has not loaded routes generation %s yet", proxy.current_generation(config))


def _end_open_connections(route: proxy.Route, config: proxy.ProxyConfig) -> bool:
    """Access may have been taken away (made private, a collaborator or link removed, a user's
    access ended): new requests are checked at once (a flag), but a connection already open to
    the app (a WebSocket, a kept-alive stream) is not. If there is one, it is closed (design.md
    §6: open sessions end within 60 s). Returns whether the proxy was asked to reload."""
    addresses = {a for a in (route.upstream, route.upstream_b) if a}
    if not addresses or not any(peer in addresses for peer, _ in connections.open_connections()):
        return False
    # Those sockets only, where the kernel lets us (no other space notices); else one batched
    # reload, which ends every open connection of the proxy's old workers.
    if connections.end_connections_to(addresses):
        log.info("space %s: access changed; its open connections were closed", route.space)
        return False
    log.info("space %s: access changed with connections open; the proxy reloads to end them", route.space)
    proxy.end_open_connections(config)
    return True


def switch_static_site(space: Space, rev: Revision) -> None:
    """Point sites/<label> at the revision's snapshot, atomically (rename over the old link)."""
    settings.SITES_DIR.mkdir(parents=True, exist_ok=True)
    link = settings.SITES_DIR / space.label
    tmp = settings.SITES_DIR / f".{space.label}.{secrets.token_hex(4)}"
    os.symlink(rev.snapshot_path, tmp)
    os.replace(tmp, link)


# ----------------------------------------------------------------------------- branch previews
def preview_container_name(preview: Preview) -> str:
    return f"dh-{settings.DEMOHUB_INSTANCE}-{preview.label}"


def preview_route(preview: Preview) -> proxy.Route:
    """A branch preview's route: always private (the gate lets only the space's editors in,
    spaces/access/proxy_gate.py), asleep while stopped or starting (a request then waits in the
    hub's wake call), a static site served from its own link like a static space's."""
    space = preview.space
    name = f"{space.full_name}@{preview.branch}"
    if space.sdk == Sdk.STATIC:
        return proxy.Route(label=preview.label, space=name, kind="static", private=True,
                           static_root=str(settings.SITES_DIR / preview.label), access_epoch=space.access_epoch)
    port = int(preview.metadata.get("app_port") or 7860)
    return proxy.Route(label=preview.label, space=name, kind="container", upstream=f"{preview.address}:{port}",
                       private=True, access_epoch=space.access_epoch,
                       sleeping=preview.status in (Preview.Status.SLEEPING, Preview.Status.STARTING))


def preview_publish_route(*, preview_id: int, wait: bool = True, **fields) -> Preview | None:
    """Write `fields` to the preview, then its route from the row (locked meanwhile, as
    space_publish_route does). Returns the row, None when it is gone."""
    config = proxy_config()
    with transaction.atomic():
        preview = (Preview.objects.select_for_update(of=("self",)).select_related("space__owner")
                   .filter(pk=preview_id).exclude(space__status=S.DELETING).first())
        if preview is None:
            return None
        if fields:
            Preview.objects.filter(pk=preview_id).update(**fields, updated_at=timezone.now())
            for key, value in fields.items():
                setattr(preview, key, value)
        changed = proxy.publish_route(preview_route(preview), config, apply_timeout=APPLY_TIMEOUT)
    if changed and wait and not proxy.wait_applied(config, timeout=APPLY_TIMEOUT):
        log.warning("the proxy has not loaded routes generation %s yet", proxy.current_generation(config))
    return preview


def switch_preview_site(preview: Preview) -> None:
    """Point sites/<preview label> at the preview's snapshot (a static space's branch)."""
    settings.SITES_DIR.mkdir(parents=True, exist_ok=True)
    tmp = settings.SITES_DIR / f".{preview.label}.{secrets.token_hex(4)}"
    os.symlink(preview.snapshot_path, tmp)
    os.replace(tmp, settings.SITES_DIR / preview.label)
