"""What create_repo, duplicate and the settings call may set besides the name: visibility,
sleep time, secrets and variables, each through the hub's own services."""
from __future__ import annotations

from django.core.exceptions import ValidationError

from spaces.catalog.services import space_update
from spaces.hfapi.answers import bad_request
from spaces.lifecycle import variables
from spaces.records.models import Space, Visibility


def visibility_from(body: dict) -> str | None:
    """`visibility` (1.x, 2.x) or `private` (0.x), or None when neither is given."""
    if body.get("visibility") is not None:
        value = body["visibility"]
        if value not in Visibility.values:
            raise bad_request("visibility", f"use public or private ({value!r} is not available on this hub)")
        return value
    if body.get("private") is not None:
        if not isinstance(body["private"], bool):
            raise bad_request("private", "use true or false")
        return Visibility.PRIVATE if body["private"] else Visibility.PUBLIC
    return None


def apply_space_options(space: Space, body: dict, user) -> None:
    """create_repo's and duplicate's sleep time, secrets and variables, with the hub's services."""
    if body.get("sleepTimeSeconds") is not None:
        sleep_time(space, body["sleepTimeSeconds"])
    for field, secret in (("secrets", True), ("variables", False)):
        items = body.get(field) or []
        if not isinstance(items, list):
            raise bad_request(field, "give a list of {key, value, description?}")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise bad_request(field, "give a list of {key, value, description?}")
            try:
                variables.variable_set(space=space, key=item["key"], value=str(item.get("value", "")), secret=secret,
                                       by=user)
            except ValidationError as exc:
                raise bad_request(field, " ".join(exc.messages)) from None


def sleep_time(space: Space, seconds) -> Space:
    """set_space_sleep_time: seconds, or -1 for never (the hub's sleep_after)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise bad_request("seconds", "give a whole number of seconds, or -1 for never")
    try:
        return space_update(space=space, sleep_after=seconds)
    except ValidationError as exc:
        raise bad_request("seconds", " ".join(exc.messages).replace("sleep_after", "seconds")) from None
