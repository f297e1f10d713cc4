"""manage.py analytics_rollup: roll up the proxy's access log now (what the beat does every
ANALYTICS_INTERVAL seconds); prints what it read. --path reads another file (bench/)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand

from spaces.analytics import services


class Command(BaseCommand):
    help = "Roll up the proxy's access log into the analytics tables, erase what was read, prune."

    def add_arguments(self, parser):
        parser.add_argument("--path", type=Path, default=None, help="access log (default: <proxy dir>/analytics.log)")

    def handle(self, *args, path=None, **options):
        started = time.monotonic()
        result = services.rollup(path=path)
        self.stdout.write(json.dumps({"lines": result.lines, "counted": result.counted, "skipped": result.skipped,
                                      "bytes": result.bytes, "seconds": round(time.monotonic() - started, 3)}))
