"""Signed webhooks (issue 14, item 1): owners and editors register URLs that get a signed POST
when a revision is built or fails, the space's status changes or a comment is posted.

models (Webhook, WebhookDelivery) <- targets (URL checks, address policy, one pinned request)
<- services (register, record events, deliver, retry) <- tasks (the `webhooks` queue)
<- api / pages. receivers connects spaces/events.py to services.
"""
