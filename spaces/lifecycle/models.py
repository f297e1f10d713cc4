"""A space's variables and secrets (a secret's value is stored encrypted: crypto.py).
"""
from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

from spaces.records.models import Space


class SpaceVariable(models.Model):
    """A variable or secret of a space, injected as environment at run time (never at build).

    Secrets are write-only through the API and masked in logs.
    """

    KEY_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="variables")
    key = models.CharField(max_length=128, validators=[RegexValidator(KEY_RE, code="invalid_key")])
    value = models.TextField(max_length=65536, blank=True)
    secret = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "key"], name="variable_key_unique")]
        ordering = ["key"]
