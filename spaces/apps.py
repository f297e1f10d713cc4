from importlib import import_module

from django.apps import AppConfig

# The rooms whose tasks.py defines Celery tasks: imported at start so that every process (web,
# workers, tests) knows every task by name (spaces/records/jobs.py sends by name).
TASK_ROOMS = ("access", "analytics", "builds", "community", "lifecycle", "nodes", "previews", "webhooks")


class SpacesConfig(AppConfig):
    name = "spaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        import_module("spaces.access.signals")  # connects the receivers that end access at once
        for room in TASK_ROOMS:
            import_module(f"spaces.{room}.tasks")
        import_module("spaces.operations.celery_hooks")  # request ids into tasks; task metrics
        import_module("spaces.webhooks.receivers")  # events -> webhook deliveries
        import_module("spaces.nodes.heartbeat")  # a node's worker registers and heartbeats
        from spaces.nodes.routing import resolve
        from spaces.records import jobs
        if resolve not in jobs.queue_resolvers:
            jobs.queue_resolvers.append(resolve)  # a space's work goes to its node's queues
