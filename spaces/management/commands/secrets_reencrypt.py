"""Re-encrypt every stored secret (space secrets, webhook secrets) with the first
SECRETS_ENCRYPTION_KEY (key rotation).

Rotation: put the new key first in SECRETS_ENCRYPTION_KEY (keep the old one after it),
restart the hub and workers, run this command, then drop the old key (README "Secrets at rest").
"""
from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from spaces.lifecycle import crypto
from spaces.lifecycle.models import SpaceVariable
from spaces.webhooks.models import Webhook


class Command(BaseCommand):
    help = "Re-encrypt all space and webhook secrets with the first key of SECRETS_ENCRYPTION_KEY."

    def handle(self, *args, **options):
        done = 0
        for pk in SpaceVariable.objects.filter(secret=True).values_list("pk", flat=True).iterator():
            with transaction.atomic():
                row = SpaceVariable.objects.select_for_update().filter(pk=pk).first()
                if row is None:
                    continue  # deleted meanwhile
                SpaceVariable.objects.filter(pk=pk).update(value=crypto.rotate(row.value))
                done += 1
        hooks = 0
        for pk in Webhook.objects.values_list("pk", flat=True).iterator():
            with transaction.atomic():
                hook = Webhook.objects.select_for_update().filter(pk=pk).first()
                if hook is None:
                    continue
                Webhook.objects.filter(pk=pk).update(secret=crypto.rotate(hook.secret))
                hooks += 1
        self.stdout.write(f"re-encrypted {done} secret(s) and {hooks} webhook secret(s) with the first key")
