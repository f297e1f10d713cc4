"""{{ role|reads_files }}: whether the header shows the Files and History tabs (design.md §6)."""
from __future__ import annotations

from django import template

from spaces.access.selectors import Action, Role, can

register = template.Library()


@register.filter
def reads_files(role) -> bool:
    return role is not None and can(Role(role), Action.READ_FILES)
