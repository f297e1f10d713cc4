"""The pages' buttons for "Run this revision again" and "Duplicate this space" (history.py)."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_POST

from spaces.access.selectors import Action, Role
from spaces.access.viewer import space_for_page
from spaces.catalog.history import space_duplicate, space_rollback
from spaces.records.errors import ServiceError
from spaces.records.models import Visibility
from spaces.repos import reading


@require_POST
def rollback(request, owner, name, number):
    space, _ = space_for_page(request, owner, name, Action.EDIT)
    revision = get_object_or_404(space.revisions, number=number)
    base = f"/spaces/{space.owner.username}/{space.name}"
    try:
        new = space_rollback(space=space, revision=revision, by=request.user)
    except (ServiceError, reading.ReadError) as exc:
        messages.error(request, str(exc))
        return redirect(f"{base}/commits/main")
    messages.success(request, gettext("Revision %(new)s runs revision %(old)s again.") %
                     {"new": new.number, "old": revision.number})
    return redirect(base)


class DuplicateForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("New name"), max_length=96,
                           help_text=gettext_lazy("Letters, digits, '.', '_' and '-'."))
    visibility = forms.ChoiceField(choices=[(Visibility.PUBLIC, gettext_lazy("Public")),
                                            (Visibility.PRIVATE, gettext_lazy("Private"))],
                                   initial=Visibility.PUBLIC, widget=forms.RadioSelect)


@login_required
def duplicate(request, owner, name):
    source, role = space_for_page(request, owner, name, Action.READ_FILES)
    form = DuplicateForm(request.POST or None, initial={"name": source.name,
                                                        "visibility": source.visibility})
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            copy = space_duplicate(source=source, owner=request.user, name=form.cleaned_data["name"],
                                   visibility=form.cleaned_data["visibility"])
        except ValidationError as exc:
            for field, errors in getattr(exc, "message_dict", {None: exc.messages}).items():
                form.add_error(field if field in form.fields else None, errors)
        except ServiceError as exc:
            form.add_error("name" if exc.code == "exists" else None, str(exc))
            status = 403 if exc.http_status == 403 else 200
        else:
            messages.success(request, gettext("%(copy)s is a copy of %(source)s; its first build has started.") %
                             {"copy": copy.full_name, "source": source.full_name})
            return redirect(f"/spaces/{copy.owner.username}/{copy.name}")
    return render(request, "spaces/duplicate.html", {
        "space": source, "role": role, "form": form, "can_edit": role >= Role.EDITOR,
        "can_admin": role >= Role.OWNER, "can_logs": role >= Role.EDITOR}, status=status)
