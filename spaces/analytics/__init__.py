"""Owner analytics: traffic of each space from the proxy's access log, rolled up in Postgres,
plus the lifecycle events (wakes, sleeps, restarts, crashes) the hub records itself.

Imports only records (the Space row), accounts (the API base) and access (the one access
check): the lifecycle room (sleep, health, restarts) calls `services.record_event` directly,
so this room sits above access and below lifecycle. May call: access, accounts, records.
"""
