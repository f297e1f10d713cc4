"""Owner analytics: traffic of each space from the proxy's access log, rolled up in Postgres,
plus the lifecycle events (wakes, sleeps, restarts, crashes) the hub records itself.

Imports only `spaces.models` and the access check (`spaces.selectors`): the lifecycle code
(sleep, health, restarts) calls `services.record_event` directly, so this room sits above
access and below builds/lifecycle.
"""
