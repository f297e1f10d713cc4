"""Lifecycle: a built revision running. Starting (starts.py, claims.py), routes at the proxy,
health and crash restarts, sleep and wake, blue/green redeploys, run logs and log streams,
variables and secrets (the environment an app runs with), quotas, deletion, reconcile and
housekeeping; the engine (engine.py). May call: access, accounts, web, records, runner."""
