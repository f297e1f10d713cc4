"""Builds: a revision's files made into an image. The build itself (services.py), its lease
and retries (leases.py), how a build ends (outcomes.py), factory rebuilds.
May call: lifecycle (to start what was built), access, accounts, web, records, runner."""
