"""The live log streams in the OpenAPI schema (issue 9, item 4).

``/api/spaces/{owner}/{name}/logs/{kind}`` is a plain async Django view (spaces/lifecycle/streams.py),
not a DRF view, so drf-spectacular does not see it; this postprocessing hook
(SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) describes it: the log as text, or with
``Accept: text/event-stream`` a stream of ``log`` events (``id`` = byte offset, resumable with
``Last-Event-ID`` or ``?offset=``) ending with one ``end`` event.
"""
from __future__ import annotations

LOG_STREAM_PATH = "/api/spaces/{owner}/{name}/logs/{kind}"


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def add_log_streams(result, generator, request, public):
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", {
        "type": "object",
        "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
        "required": ["detail", "code"],
    })
    string = {"type": "string"}
    result.setdefault("paths", {})[LOG_STREAM_PATH] = {"get": {
        "operationId": "spaces_logs_retrieve",
        "summary": "A space's build or run log, as text or as a live event stream",
        "description": ("`build`: the latest revision's build log; `run`: the running app's output. "
                        "With `Accept: text/event-stream`, a stream of `log` events (`id`: the byte offset "
                        "after it) and one final `end` event (JSON: the revision's or space's status); "
                        "resume with `Last-Event-ID` or `?offset=`. Owner and editors only."),
        "tags": ["spaces"],
        "parameters": [
            {"name": "owner", "in": "path", "required": True, "schema": string},
            {"name": "name", "in": "path", "required": True, "schema": string},
            {"name": "kind", "in": "path", "required": True, "schema": {"type": "string", "enum": ["build", "run"]}},
            {"name": "offset", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0}, "description": "Byte offset to start the stream at."},
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": string,
             "description": "The last event id seen: the stream resumes after it."},
        ],
        "security": [{"cookieAuth": []}, {}],
        "responses": {
            "200": {"description": "The log.", "content": {
                "text/plain": {"schema": string},
                "text/event-stream": {"schema": string},
            }},
            "400": _error("Last-Event-ID or offset is not a byte offset."),
            "401": _error("Not logged in, or the token is invalid."),
            "403": _error("Only the owner and editors may read this space's logs."),
            "404": _error("No such space (or not visible to the caller), or an unknown kind."),
            "429": _error("Too many live streams open (Retry-After)."),
            "503": _error("The database or broker does not answer right now (Retry-After)."),
        },
    }}
    return result
