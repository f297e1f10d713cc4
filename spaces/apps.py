from django.apps import AppConfig


class SpacesConfig(AppConfig):
    name = "spaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import signals  # noqa: F401  (connects the receivers that end access at once)
        from .webhooks import receivers  # noqa: F401  (events -> webhook deliveries)
