"""DRF fields shared by the API's input serializers."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from spaces.records.tags import MAX_TAGS, TagError, normalize_tags


@extend_schema_field({"type": "array", "items": {"type": "string"}, "maxItems": MAX_TAGS})
class TagsField(serializers.Field):
    """DRF field: a JSON list of tags, validated and normalised by normalize_tags."""

    default_error_messages = {"invalid": "{message}"}

    def to_internal_value(self, data) -> list[str]:
        try:
            return normalize_tags(data)
        except TagError as exc:
            self.fail("invalid", message=str(exc))

    def to_representation(self, value) -> list[str]:
        return list(value)
