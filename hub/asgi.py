"""ASGI entry point: the hub runs under uvicorn so log streams (SSE) hold no worker thread."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
# Large bodies are refused before they are read unless the caller may send them
# (spaces/access/body_gate.py): Django's handler would otherwise spool every body first.
from spaces.access.body_gate import BodyGate

application = BodyGate(get_asgi_application())
