"""{% embed_snippets space as embed %}: what templates/spaces/_embed.html shows."""
from __future__ import annotations

from django import template

from spaces.embeds.selectors import embed_snippets as _snippets

register = template.Library()


@register.simple_tag
def embed_snippets(space):
    return _snippets(space)
