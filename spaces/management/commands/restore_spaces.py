"""Rebuild the images of restored spaces (run by scripts/restore.sh; spaces/operations/services.py)."""
from __future__ import annotations

from django.core.management.base import BaseCommand

from spaces.operations import services


class Command(BaseCommand):
    help = "After `make restore`: build again the revision every space ran, so it starts."

    def handle(self, *args, **options):
        outcome = services.spaces_rebuild_after_restore()
        for line in outcome.rebuilding:
            self.stdout.write(f"rebuilding {line}")
        for name in outcome.static:
            self.stdout.write(f"static {name}: served from the restored files")
        for name, why in outcome.left.items():
            self.stdout.write(f"left {name}: {why}")
