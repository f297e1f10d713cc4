"""Structured logs: every log line of the hub's processes as one JSON object (or, for people
reading a terminal or a test's output, structlog's console rendering), with the request id.

The hub's code keeps using the standard `logging` module; structlog's ProcessorFormatter turns
each record into JSON and adds the context variables bound for the request or the Celery task
(request_id, task, task_id). hub/settings.py takes LOGGING from `from_env()`; this module
reads no Django settings, since the settings import it.
"""
from __future__ import annotations

import structlog
from django.core.exceptions import ImproperlyConfigured

FORMATS = ("json", "console")

_PRE_CHAIN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.stdlib.ExtraAdder(),
]


def logging_config(fmt: str, level: str) -> dict:
    """A dictConfig for `fmt` ("json" or "console") at `level`."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT={fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        processors = [structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                      structlog.processors.format_exc_info, renderer]
    else:
        processors = [structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                      structlog.dev.ConsoleRenderer(colors=False)]
    handler = {"class": "logging.StreamHandler", "formatter": "structured"}
    # uvicorn and celery set up loggers of their own: named here, they get this handler too.
    # Not uvicorn.access: it logs paths, which may carry tickets and share-link tokens; the hub
    # runs with --no-access-log and logs each request itself, by route (middleware.py).
    own = {"handlers": ["console"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": structlog.stdlib.ProcessorFormatter,
                                      "processors": processors, "foreign_pre_chain": _PRE_CHAIN}},
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"},
                    "uvicorn": own, "uvicorn.error": own, "celery": own,
                    # Named so that it stays off (a child of a named logger would be reset to propagate).
                    "uvicorn.access": {"handlers": [], "propagate": False}},
    }


def from_env(env) -> tuple[str, str, dict]:
    """(LOG_FORMAT, LOG_LEVEL, LOGGING) from the environment (django-environ's Env); sets up
    structlog's own loggers too. A bad LOG_FORMAT stops the hub, naming it."""
    fmt, level = env.str("LOG_FORMAT", default="json"), env.str("LOG_LEVEL", default="INFO")
    try:
        config = logging_config(fmt, level)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    configure_structlog()
    return fmt, level, config


def configure_structlog() -> None:
    """structlog's own loggers (structlog.get_logger) go through the same stdlib handlers."""
    structlog.configure(
        processors=[*_PRE_CHAIN[:-1], structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
