"""Operations: what an operator runs the hub with (issue 13, items 2-5).

This room owns:

* `/metrics` (metrics.py, api.py): the Prometheus text format, counters shared by the web
  process and every Celery worker through prometheus_client's multiprocess mode
  (METRICS_MULTIPROC_DIR on the data volume), plus figures read at scrape time (queue depths from
  Redis, spaces by status from Postgres). Protected by METRICS_TOKEN.
* `/healthz` (process up, touches nothing) and, beside the readiness probe of
  spaces/lifecycle/readiness.py, the 503 rules of both.
* Request ids and structured logs (requestids.py, logconfig.py, middleware.py, celery_hooks.py): a
  request id from the proxy's X-Request-ID (or a fresh one) in every JSON log line of the
  request, carried into Celery tasks as a message header and into the build log.
* Backups (scripts/backup.sh, scripts/restore.sh; README "Backups and restores"); after a
  restore, services.py builds again the revision each space ran.

selectors.py holds the reads a scrape makes; api.py the probe and scrape views.

May call every other room (it reads them all: rows for the scrape, the readiness checks, the
build and wake rows its task hooks count); nothing imports it but the URL roots, the settings
(logconfig.py) and the app's ready() hook, and lower rooms read the request id it binds only
through structlog's context variables.
"""
