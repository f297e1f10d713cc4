"""ASGI entry point: the hub runs under uvicorn so log streams (SSE) hold no worker thread."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
application = get_asgi_application()
