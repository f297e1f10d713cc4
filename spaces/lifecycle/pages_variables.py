"""The "Variables and secrets" section of a space's settings page (editors and the owner).

The section is rendered by views.space_settings with `settings_context`; its forms post here,
and every answer redirects back to the settings page with a message. A secret's value is never
rendered, not even back into a form that failed.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from spaces.access.selectors import Action, can, space_get_for_viewer
from spaces.access.services import share_links_in_session
from spaces.lifecycle import variables
from spaces.records.errors import ServiceError
from spaces.records.models import Space

KINDS = [("variable", "Variable"), ("secret", "Secret")]


class VariableForm(forms.Form):
    kind = forms.ChoiceField(choices=KINDS, initial="variable", widget=forms.RadioSelect)
    key = forms.CharField(max_length=128, help_text="Letters, digits and '_', not starting with a digit.")
    value = forms.CharField(required=False, strip=False,
                            widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off", "spellcheck": "false"}))


class VariableDeleteForm(forms.Form):
    kind = forms.ChoiceField(choices=KINDS)
    key = forms.CharField(max_length=128)


def settings_context(space: Space) -> dict:
    """What templates/spaces/_variables.html needs (secrets without their values)."""
    return {
        "space_variables": variables.variable_list(space=space, secret=False),
        "space_secrets": variables.variable_list(space=space, secret=True).values("key", "updated_at"),
        "variable_form": VariableForm(),
    }


def _space_to_edit(request, owner: str, name: str) -> Space:
    # With the session's share links: a link holder sees the space and is refused (403), as on
    # the settings page, rather than told it does not exist.
    space, role = space_get_for_viewer(owner=owner, name=name, user=request.user,
                                       share_link_ids=share_links_in_session(request))
    if not can(role, Action.EDIT, user=request.user, space=space):
        raise PermissionDenied
    return space


def _back(space: Space):
    return redirect(f"/spaces/{space.owner.username}/{space.name}/settings#variables")


def _applied(restarting: bool) -> str:
    return " The app restarts to use it." if restarting else " It applies when the app next starts."


@require_POST
def space_variable_set(request, owner, name):
    space = _space_to_edit(request, owner, name)
    form = VariableForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
        return _back(space)
    secret = form.cleaned_data["kind"] == "secret"
    key = form.cleaned_data["key"].strip()
    try:
        change = variables.variable_set(space=space, key=key, value=form.cleaned_data["value"], secret=secret,
                                        by=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
        return _back(space)
    if not change.changed:
        done = "unchanged."
    else:
        done = ("added." if change.created else "updated.") + _applied(change.restarting)
    messages.success(request, f"{'Secret' if secret else 'Variable'} {key} {done}")
    return _back(space)


@require_POST
def space_variable_delete(request, owner, name):
    space = _space_to_edit(request, owner, name)
    form = VariableDeleteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a variable or secret to delete.")
        return _back(space)
    secret = form.cleaned_data["kind"] == "secret"
    key = form.cleaned_data["key"]
    try:
        restarting = variables.variable_delete(space=space, key=key, secret=secret, by=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
        return _back(space)
    messages.success(request, f"{'Secret' if secret else 'Variable'} {key} deleted.{_applied(restarting)}")
    return _back(space)
