"""/hf/api/spaces/<owner>/<name>/<call>: one view routes every per-space call of huggingface_hub.

One URL pattern for the family (the persona matrix covers it by a surface per role row):
runtime, restart (factory_reboot), pause, sleeptime, hardware, secrets, variables, logs,
duplicate, settings; and the file calls of api_files.py (revision, tree, paths-info,
preupload, commit, commits). Each handler gets the space through access.viewer.get_space with
the action it needs, and calls the same services as Demohub's own /api/.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from rest_framework.response import Response

from spaces.access.selectors import Action
from spaces.access.viewer import get_space
from spaces.builds.services import space_rebuild
from spaces.catalog.services import space_update
from spaces.hfapi import api_files, options, shapes
from spaces.hfapi.answers import HfError, bad_request, not_found
from spaces.hfapi.api_base import HfApiView
from spaces.lifecycle import logs as live_logs
from spaces.lifecycle import variables
from spaces.lifecycle.services import space_pause, space_restart
from spaces.nodes.services import space_set_hardware
from spaces.records.errors import ServiceError
from spaces.records.models import Space, Visibility


def _body(request) -> dict:
    return request.data if isinstance(request.data, dict) else {}


def _runtime(space: Space) -> Response:
    space.refresh_from_db()
    return Response(shapes.runtime(space))


# ----------------------------------------------------------------------------- lifecycle
def runtime(request, args, rest):
    space, _ = get_space(request, *args, Action.VIEW)
    return Response(shapes.runtime(space))


def restart(request, args, rest):
    space, _ = get_space(request, *args, Action.EDIT)
    if request.query_params.get("factory") in ("1", "true", "True"):
        space_rebuild(space=space, by=request.user)
    else:
        space_restart(space=space, by=request.user)
    return _runtime(space)


def pause(request, args, rest):
    space, _ = get_space(request, *args, Action.ADMIN)
    space_pause(space=space)
    return _runtime(space)


def sleeptime(request, args, rest):
    space, _ = get_space(request, *args, Action.EDIT)
    space = options.sleep_time(space, _body(request).get("seconds"))
    return _runtime(space)


def hardware(request, args, rest):
    """request_space_hardware: the owner's choice of tier (spaces/nodes, like PATCH hardware on
    /api/): an unknown tier is a 400 naming the hub's tiers; it applies at the next start."""
    space, _ = get_space(request, *args, Action.ADMIN)
    flavor = _body(request).get("flavor")
    if not isinstance(flavor, str) or not flavor:
        raise bad_request("flavor", "name one of this hub's hardware tiers")
    space = space_set_hardware(space=space, hardware=flavor)
    if _body(request).get("sleepTimeSeconds") is not None:
        space = options.sleep_time(space, _body(request)["sleepTimeSeconds"])
    return _runtime(space)


def settings_put(request, args, rest):
    """update_repo_settings(private=...) / update_repo_visibility (0.x): the owner's call."""
    body = request.data if isinstance(request.data, dict) else {}
    if body.get("gated") not in (None, False, "false"):
        raise bad_request("gated", "gated repositories are not available on this hub")
    for field in ("xetEnabled", "discussionsDisabled"):
        if field in body and body[field] not in (None, False):
            raise bad_request(field, "not available on this hub")
    space, _ = get_space(request, *args, Action.ADMIN)
    visibility = options.visibility_from(body)
    if visibility is not None and visibility != space.visibility:
        space = space_update(space=space, visibility=visibility)
    return Response({"private": space.visibility == Visibility.PRIVATE})


# ----------------------------------------------------------------------------- secrets, variables
def _key_values(secret: bool):
    def handle(request, args, rest):
        space, _ = get_space(request, *args, Action.EDIT)
        body = _body(request)
        if request.method == "GET":
            rows = variables.variable_list(space=space, secret=secret)
            return Response({row.key: ({"updatedAt": shapes.hf_time(row.updated_at), "description": None} if secret
                                       else {"value": row.value, "updatedAt": shapes.hf_time(row.updated_at),
                                             "description": None})
                             for row in rows})
        key = body.get("key")
        if not isinstance(key, str) or not key:
            raise bad_request("key", "give the key")
        if request.method == "POST":
            value = body.get("value", "")
            if not isinstance(value, str):
                raise bad_request("value", "give a string")
            try:
                variables.variable_set(space=space, key=key, value=value, secret=secret, by=request.user)
            except ValidationError as exc:
                raise bad_request("key", " ".join(exc.messages)) from None
        else:
            try:
                variables.variable_delete(space=space, key=key, secret=secret, by=request.user)
            except ServiceError as exc:
                if exc.code != "not_found":
                    raise
                raise HfError(404, str(exc), code="not_found") from None
        if secret:
            return Response({})
        rows = variables.variable_list(space=space, secret=False)
        return Response({row.key: {"value": row.value, "updatedAt": shapes.hf_time(row.updated_at),
                                   "description": None} for row in rows})
    return handle


# ----------------------------------------------------------------------------- logs
def logs(request, args, rest):
    """fetch_space_logs (2.x): server-sent `data: {"data", "timestamp"}` events of the build or
    run log as it is now. A follow=True reader gets the same and the stream ends (no live tail
    here: Demohub's own /api/.../logs streams live)."""
    kind = rest.split("/", 1)[1] if "/" in rest else ""
    if kind not in ("build", "run"):
        return not_found()
    space, _ = get_space(request, *args, Action.READ_LOGS)
    text = _log_text(space, kind)
    stamp = shapes.hf_time(datetime.now(timezone.utc) - _ONE_SECOND)
    lines = text.splitlines(keepends=True)
    body = "".join(f"data: {json.dumps({'data': line, 'timestamp': stamp})}\n\n" for line in lines)
    resp = HttpResponse(body, content_type="text/event-stream; charset=utf-8")
    resp["Cache-Control"] = "no-store"
    return resp


_ONE_SECOND = timedelta(seconds=1)


def _log_text(space: Space, kind: str) -> str:
    if kind == "build":
        rev = space.latest_revision
        if rev is None:
            return ""
        key = live_logs.build_key(rev.pk)
        if rev.is_final and not live_logs.exists(key):
            return rev.build_log
    else:
        key = live_logs.run_key(space.pk)
    data, _ = live_logs.read(key, 0)
    return data.decode("utf-8", "replace")


# ----------------------------------------------------------------------------- the router
ROUTES = {
    ("GET", "runtime"): runtime,
    ("POST", "restart"): restart,
    ("POST", "pause"): pause,
    ("POST", "sleeptime"): sleeptime,
    ("POST", "hardware"): hardware,
    ("GET", "secrets"): _key_values(True),
    ("POST", "secrets"): _key_values(True),
    ("DELETE", "secrets"): _key_values(True),
    ("GET", "variables"): _key_values(False),
    ("POST", "variables"): _key_values(False),
    ("DELETE", "variables"): _key_values(False),
    ("GET", "logs"): logs,
    ("PUT", "settings"): settings_put,
    ("POST", "duplicate"): api_files.duplicate,
    ("GET", "revision"): api_files.revision_info,
    ("GET", "tree"): api_files.tree,
    ("POST", "paths-info"): api_files.paths_info,
    ("POST", "preupload"): api_files.preupload,
    ("POST", "commit"): api_files.commit,
    ("GET", "commits"): api_files.commits,
}


class SpaceCallApi(HfApiView):
    """Routes /hf/api/spaces/<owner>/<name>/<rest> by method and the first segment of rest."""

    @property
    def post_only_reads(self) -> bool:
        # get_paths_info is a POST that only reads: read tokens may send it (issue 11).
        return self.kwargs.get("rest", "").split("/", 1)[0] == "paths-info"

    def _route(self, request, owner, name, rest):
        handler = ROUTES.get((request.method, rest.split("/", 1)[0]))
        if handler is None:
            return not_found()
        return handler(request, (owner, name), rest)

    get = post = put = delete = _route

