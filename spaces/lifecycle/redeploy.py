"""The blue/green switch of a redeploy: the slot flag, and draining the old container.

A container space has two fixed addresses (slots a and b) and its proxy route holds both;
which one serves is a flag file the proxy reads per request (runner/proxy.py), so switching
to a new revision reloads nothing. (A reload would reset some keep-alive requests: nginx's
old workers close their idle client connections at once.) The route file changes, and
the proxy reloads, only when the app port changes or the route is new.

After the switch, the old container may still be answering requests the proxy sent it
before: a slow POST, an event stream, a long prediction. It stops only once

1. the proxy applied the switch (proxy.wait_applied: the generation of a changed file is
   loaded, which deploy/proxy/run.sh reports once nginx's previous workers stopped accepting,
   and every worker sees the moved flag); and
2. no connection from the proxy to the old slot's address is left. A request in flight holds
   one; idle keep-alive connections to the old slot are closed by nginx after
   UPSTREAM_KEEPALIVE_TIMEOUT (4 s). The count must stay at zero for DRAIN_SETTLE seconds,
   which covers a request routed just before the switch that has not connected yet.

Both waits together are bounded by REDEPLOY_DRAIN_TIMEOUT; past it the old container stops
anyway (a stream or websocket may stay open for hours). The connections are counted from
this process's network namespace (runner/connections.py): the lifecycle worker shares the
proxy's on one machine, as `make up` and the tests run them.

While it drains, the old container belongs to no slot the database names any more, so
reconciliation would remove it as an orphan: `draining_begin` marks it (in Redis, for at
most the drain plus the stop) and reconcile leaves marked containers alone.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction

from runner import proxy
from runner.connections import connections_to
from spaces.lifecycle import logs
from spaces.records.models import Space

log = logging.getLogger(__name__)

DRAIN_SETTLE = 0.5  # seconds without a connection to the old slot before it may stop
_POLL = 0.05


def old_slot_drain(*, address: str, port: int, config: proxy.ProxyConfig, what: str) -> float:
    """Wait until the proxy routes no request to address:port any more (see the module
    docstring); return the seconds waited. `what` names the container in log lines."""
    started = time.monotonic()
    deadline = started + settings.REDEPLOY_DRAIN_TIMEOUT
    if not proxy.wait_applied(config, timeout=max(deadline - time.monotonic(), 0)):
        log.warning("drain %s: the proxy has not applied routes generation %s within %s s; stopping it anyway",
                    what, proxy.current_generation(config), settings.REDEPLOY_DRAIN_TIMEOUT)
        return time.monotonic() - started
    quiet_since = None
    while time.monotonic() < deadline:
        if connections_to(address, port):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= DRAIN_SETTLE:
            waited = time.monotonic() - started
            log.info("drain %s: done after %.2f s", what, waited)
            return waited
        time.sleep(_POLL)
    log.warning("drain %s: requests still open after %s s; stopping it anyway", what,
                settings.REDEPLOY_DRAIN_TIMEOUT)
    return time.monotonic() - started


# ----------------------------------------------------------------------------- draining marks
def _mark(name: str) -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:draining:{name}"


def draining_begin(name: str) -> None:
    """Mark container `name` as draining (no-op for ""), until draining_end or a bounded time."""
    if name:
        logs.client().set(_mark(name), 1, ex=int(settings.REDEPLOY_DRAIN_TIMEOUT) + 70)


def draining_end(name: str) -> None:
    if name:
        logs.client().delete(_mark(name))


def is_draining(name: str) -> bool:
    return bool(logs.client().exists(_mark(name)))


# ----------------------------------------------------------------------------- slot flags
def slot_flags_repair(spaces: list[Space], config: proxy.ProxyConfig) -> list[int]:
    """Make each container space's slot flag name its active slot (reconciliation).

    `spaces` were read without a lock, and a switch may have moved a slot since: a flag that
    looks wrong is checked again, and set, under the space row's lock, which every switch
    holds while it writes the flag (routes.space_publish_route). Returns the ids repaired.
    """
    repaired = []
    for space in spaces:
        if space.sdk == "static" or proxy.active_slot(space.label, config) == space.active_slot:
            continue
        with transaction.atomic():
            slot = (Space.objects.select_for_update().filter(pk=space.pk)
                    .values_list("active_slot", flat=True).first())
            if slot is not None and proxy.set_active_slot(space.label, slot, config):
                log.warning("reconcile: the proxy's slot flag of %s was wrong; now slot %s", space.label, slot)
                repaired.append(space.pk)
    return repaired
