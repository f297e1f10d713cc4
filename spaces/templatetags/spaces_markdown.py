"""{{ text|markdown }}: user-written Markdown as sanitized HTML (spaces.markdown)."""
from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from spaces.records.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    # Safe to mark: render_markdown escapes raw HTML and sanitizes its own output.
    return mark_safe(render_markdown(text or ""))  # noqa: S308
