"""/hf/api/...: the account, repository and listing calls of huggingface_hub (issue 11).

whoami-v2, repos/create and repos/delete, the space list with `Link` paging, space_info /
repo_info, and the settings (visibility). The per-space sub-calls (runtime, restart, files,
commits...) are routed by api_space.py. Every space is reached through access.viewer.get_space.
"""
from __future__ import annotations

from urllib.parse import urlencode

from django.db import transaction
from django.http import JsonResponse
from rest_framework.exceptions import NotAuthenticated
from rest_framework.response import Response

from spaces.access.selectors import Action, space_filter, space_list_visible_to
from spaces.access.viewer import get_space
from spaces.accounts import ratelimits
from spaces.catalog.services import space_create
from spaces.hfapi import files, options, shapes
from spaces.hfapi.answers import BAD_TOKEN, HfError, bad_request, hf_error, not_found
from spaces.hfapi.api_base import HfApiView
from spaces.lifecycle.deletion import space_delete
from spaces.records.models import Sdk, Space, Visibility
from spaces.records.search import DeferredJoinList

# Options of create_repo Demohub has no meaning for: refused with a 400 naming the field.
UNSUPPORTED_CREATE = {"template": "space templates are not available on this hub",
                      "volumes": "volumes are not available on this hub",
                      "resourceGroupId": "resource groups are not available on this hub",
                      "region": "this hub runs in one place; leave the region out",
                      "storageTier": "persistent storage tiers are not available on this hub"}
# list_spaces' sort keys -> the hub's (access.selectors.SPACE_SORTS).
SORTS = {"likes": "likes", "lastModified": "recent", "trendingScore": "trending", "trending": "trending"}
LIST_LIMIT = 100


def _who(request):
    if not request.user.is_authenticated:
        raise NotAuthenticated()
    return request.user


def _namespace(request, body: dict) -> str:
    """The owner a repos/create or repos/delete names (the client sends the namespace as
    `organization`), else the caller: Demohub has no organizations."""
    org = body.get("organization")
    return org if org else _who(request).username


def _repo_name(body: dict) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("name", "give the space's name")
    if "/" in name:
        return name.rsplit("/", 1)[1]
    return name


def _space_type(body: dict) -> None:
    if body.get("type", "model") != "space":
        raise bad_request("type", 'Demohub hosts spaces only: pass repo_type="space"')


class WhoAmIApi(HfApiView):
    """whoami(): the token's user (huggingface_hub says "Invalid user token" on a 401)."""

    def get(self, request):
        if not request.user.is_authenticated:
            return hf_error(401, BAD_TOKEN, code="not_authenticated", headers={"X-Error-Message": BAD_TOKEN})
        user, token = request.user, request.auth
        role = getattr(token, "scope", "write")
        return Response({
            "type": "user", "id": str(user.pk), "name": user.username, "fullname": user.get_full_name() or user.username,
            "email": user.email or None, "emailVerified": False, "isPro": False, "canPay": False, "orgs": [],
            "auth": {"type": "access_token",
                     "accessToken": {"displayName": getattr(token, "name", "") or "session", "role": role}},
        })


class ReposApi(HfApiView):
    """POST repos/create, DELETE repos/delete (the body names the repository)."""

    def post(self, request, action):
        if action != "create":
            return not_found()
        body = request.data if isinstance(request.data, dict) else {}
        _space_type(body)
        owner = _namespace(request, body)
        name = _repo_name(body)
        _who(request)
        if owner.lower() != request.user.username.lower():
            raise HfError(403, f"You may create spaces under your own name ({request.user.username}) only; "
                               "Demohub has no organizations.", code="permission_denied")
        for field, why in UNSUPPORTED_CREATE.items():
            if body.get(field) not in (None, [], {}):
                raise bad_request(field, why)
        if body.get("hardware") not in (None, shapes.HARDWARE):
            raise bad_request("hardware", f"hardware tiers are not available on this hub; spaces run on "
                                          f"{shapes.HARDWARE}")
        visibility = options.visibility_from(body) or Visibility.PUBLIC
        sdk = body.get("sdk")
        if sdk not in Sdk.values:
            raise bad_request("sdk", f"use one of {', '.join(Sdk.values)}")
        files.check_new_name(name)
        existing = Space.objects.filter(owner=request.user, name__iexact=name).exclude(status="DELETING").first()
        if existing is not None:
            return JsonResponse({"error": "You already created this space repo", "url": shapes.web_url(request, existing)},
                                status=409)
        ratelimits.check_space_create(request, request.user)
        with transaction.atomic():
            space = space_create(owner=request.user, name=name, sdk=sdk, visibility=visibility)
            options.apply_space_options(space, body, request.user)
        return Response({"url": shapes.web_url(request, space), "name": space.full_name, "id": str(space.pk)})

    def delete(self, request, action):
        if action != "delete":
            return not_found()
        body = request.data if isinstance(request.data, dict) else {}
        _space_type(body)
        space, _ = get_space(request, _namespace(request, body), _repo_name(body), Action.ADMIN)
        space_delete(space=space)
        return Response({})


class SpaceListApi(HfApiView):
    """list_spaces(author=, search=, sort=): a bare JSON list, the next page in a `Link` header."""

    def get(self, request):
        params = request.query_params
        sort = params.get("sort", "")
        if sort and sort not in SORTS:
            raise bad_request("sort", f"use one of {', '.join(SORTS)}")
        if params.get("direction") not in (None, "-1"):
            raise bad_request("direction", "lists are in descending order only (-1)")
        try:
            limit = min(int(params.get("limit") or LIST_LIMIT), LIST_LIMIT)
            offset = max(int(params.get("offset") or 0), 0)
        except ValueError:
            raise bad_request("limit", "give whole numbers for limit and offset") from None
        qs = space_filter(space_list_visible_to(request.user), search=params.get("search", ""),
                          author=params.get("author", ""), sort=SORTS.get(sort, ""))
        rows = list(DeferredJoinList(qs)[offset:offset + limit + 1])
        more, rows = len(rows) > limit, rows[:limit]
        resp = Response([shapes.space_info(space) for space in rows])
        if more:
            query = {k: v for k, v in params.items() if k != "offset"}
            query.update(offset=offset + limit, limit=limit)
            resp["Link"] = f'<{shapes.endpoint(request)}/api/spaces?{urlencode(query)}>; rel="next"'
        return resp


class SpaceInfoApi(HfApiView):
    """space_info / repo_info(repo_type="space"): the space as its visitors may see it."""

    def get(self, request, owner, name):
        space, role = get_space(request, owner, name, files.READ_FILES)
        return Response(files.space_info(request, space, role, rev=None))


class ValidateYamlApi(HfApiView):
    """The README check huggingface_hub runs before a commit that holds README.md: the front
    matter is checked by the commit itself (records.frontmatter), so this only says "fine"."""

    def post(self, request):
        return Response({"errors": [], "warnings": []})


def not_here(request, rest: str = ""):
    """Anything else under /hf: models and datasets are not hosted here; every 404 carries
    X-Error-Code: RepoNotFound, so the clients raise RepositoryNotFoundError."""
    if rest.startswith(("api/models", "api/datasets")) or not rest.startswith(("api/", "spaces/")):
        resp = hf_error(404, 'Demohub hosts spaces only: pass repo_type="space".', error_code="RepoNotFound",
                        code="not_found")
        return resp
    return not_found()
