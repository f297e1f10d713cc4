"""The JSON Hugging Face's clients read, made from Demohub's rows (research/hf-hub-api.md).

Reads only: the views decide who may see what (the one access check) before calling these.
"""
from __future__ import annotations

from datetime import datetime, timezone

from django.conf import settings

from spaces.nodes.tiers import default_tier
from spaces.records.models import Space, Visibility
from spaces.records.status import SpaceStatus

# Demohub runs every space on the machine's CPUs: one "tier", named as Hugging Face's free one.
HARDWARE = "cpu-basic"


def hf_time(value: datetime | None) -> str | None:
    """`%Y-%m-%dT%H:%M:%S.%fZ`, the one format huggingface_hub's parse_datetime reads."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def endpoint(request) -> str:
    """The /hf root as the caller reached it (`url` and `commitUrl` must be on its host)."""
    return request.build_absolute_uri("/hf").rstrip("/")


def web_url(request, space: Space) -> str:
    return f"{endpoint(request)}/spaces/{space.owner.username}/{space.name}"


def host(space: Space) -> str:
    """The app's origin, no path: gradio_client joins "config" and the API routes onto it."""
    return space.url.rstrip("/")


def runtime(space: Space) -> dict:
    """get_space_runtime's SpaceRuntime: `stage` (the stage names are Hugging Face's already),
    `hardware` as an object (null crashes huggingface_hub <= 1.x), `gcTimeout` the sleep time."""
    return {
        "stage": space.status,
        "hardware": {"current": (space.tier or space.hardware or default_tier().name)
                     if space.status != SpaceStatus.PAUSED else None,
                     "requested": space.hardware or space.tier or default_tier().name},
        "gcTimeout": None if space.sleep_after < 0 else space.sleep_after,
        "storage": None,
        "devMode": False,
        "replicas": {"current": 1, "requested": 1},
        "sdk": space.sdk,
        "errorMessage": None,
    }


def card_data(space: Space) -> dict:
    return {"title": space.title, "emoji": space.emoji, "colorFrom": space.color_from, "colorTo": space.color_to,
            "sdk": space.sdk, "short_description": space.short_description, "tags": list(space.tags)}


def space_info(space: Space, *, sha: str | None = None, siblings: list[dict] | None = None,
               error: str = "") -> dict:
    """space_info / repo_info / list_spaces: only `id` is required by the clients."""
    info = {
        "_id": str(space.pk),
        "id": space.full_name,
        "author": space.owner.username,
        "sha": sha,
        "lastModified": hf_time(space.updated_at),
        "createdAt": hf_time(space.created_at),
        "private": space.visibility == Visibility.PRIVATE,
        "gated": False,
        "disabled": False,
        "host": host(space),
        "subdomain": space.label,
        "sdk": space.sdk,
        "tags": list(space.tags),
        "likes": space.like_count,
        "trendingScore": space.trending_score,
        "cardData": card_data(space),
        "runtime": {**runtime(space), "errorMessage": error or None},
    }
    if siblings is not None:
        info["siblings"] = siblings
    return info


def max_page_size() -> int:
    return getattr(settings, "HF_LIST_MAX_LIMIT", 1000)
