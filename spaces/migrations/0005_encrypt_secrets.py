"""Encrypt the secrets written in clear before spaces/lifecycle/crypto.py existed (finding 12 of issue 15).

Reversible: going back decrypts them again, so an older release can still read its rows.
"""
from django.db import migrations


def encrypt_clear_secrets(apps, schema_editor):
    from spaces.lifecycle import crypto

    SpaceVariable = apps.get_model("spaces", "SpaceVariable")
    for row in SpaceVariable.objects.filter(secret=True).exclude(value__startswith=crypto.PREFIX).iterator():
        SpaceVariable.objects.filter(pk=row.pk).update(value=crypto.encrypt(row.value))


def decrypt_secrets(apps, schema_editor):
    from spaces.lifecycle import crypto

    SpaceVariable = apps.get_model("spaces", "SpaceVariable")
    for row in SpaceVariable.objects.filter(secret=True, value__startswith=crypto.PREFIX).iterator():
        SpaceVariable.objects.filter(pk=row.pk).update(value=crypto.decrypt(row.value))


class Migration(migrations.Migration):
    dependencies = [("spaces", "0004_search_vector_inline")]

    operations = [migrations.RunPython(encrypt_clear_secrets, decrypt_secrets)]
