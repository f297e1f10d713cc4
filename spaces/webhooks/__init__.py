"""Signed webhooks (issue 14): owners and editors register URLs that get a signed POST when a
revision is built or fails, the space's status changes or a comment is posted; deliveries run
on the `webhooks` queue, retried with back-off, to checked and pinned addresses.

May call: records (models, errors, events, jobs), web, accounts (the API base), access (the one
access check), lifecycle (crypto), community (the Comment model). Nothing calls it: it listens
to spaces/records/events.py (receivers.py, connected in spaces/apps.py).
"""
