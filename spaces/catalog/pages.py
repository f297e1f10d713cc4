"""HTML pages of the hub. Each view calls a selector or a service and renders a template."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_POST

from runner.exceptions import ArchiveError
from spaces.access.selectors import Action, Role, can, space_list_visible_to
from spaces.access.viewer import space_for_page
from spaces.accounts import ratelimits
from spaces.accounts.pages import rate_limit_message
from spaces.builds.services import space_rebuild
from spaces.catalog.history import secrets_without_value
from spaces.catalog.pages_browse import space_list_context
from spaces.catalog.services import revision_create, space_create, space_update
from spaces.community import pages as views_social
from spaces.lifecycle import pages_variables as views_variables
from spaces.lifecycle import readiness
from spaces.lifecycle.deletion import space_delete
from spaces.lifecycle.services import space_pause, space_restart
from spaces.lifecycle.space_errors import space_error_for
from spaces.nodes.services import space_set_hardware
from spaces.nodes.tiers import default_tier, tiers
from spaces.records.errors import ServiceError
from spaces.records.models import Preview, Sdk, Visibility
from spaces.records.status import SERVING


class NewSpaceForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=96,
                           help_text=gettext_lazy("Letters, digits, '.', '_' and '-'."))
    sdk = forms.ChoiceField(choices=Sdk.choices, initial=Sdk.GRADIO)
    visibility = forms.ChoiceField(choices=[(Visibility.PUBLIC, gettext_lazy("Public")),
                                            (Visibility.PRIVATE, gettext_lazy("Private"))],
                                   initial=Visibility.PUBLIC, widget=forms.RadioSelect)
    title = forms.CharField(label=gettext_lazy("Title"), max_length=96, required=False)
    short_description = forms.CharField(label=gettext_lazy("Short description"), max_length=200, required=False)
    archive = forms.FileField(label=gettext_lazy("Archive"), required=False,
                              help_text=gettext_lazy("The repo as a .zip or .tar.gz (optional now)."))


class UploadForm(forms.Form):
    archive = forms.FileField(label=gettext_lazy("Archive"), help_text=gettext_lazy("The repo as a .zip or .tar.gz."))


def _form_error(form: forms.Form, exc: ValidationError | ServiceError | ArchiveError) -> None:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, _page_message(form, exc) if not isinstance(exc, ValidationError) else exc.messages)


def _page_message(form: forms.Form, exc: ServiceError | ArchiveError) -> str:
    """A service's refusal on the page: in the page's language where the page knows the case
    (the message is shared with the API, which keeps it English), else as the service said it."""
    if isinstance(exc, ServiceError) and exc.code == "exists":
        return gettext("You already have a space named %(name)s.") % {"name": form.data.get("name", "")}
    return str(exc)


def _quota_status(exc: Exception) -> int:
    """A quota refusal (403, spaces/lifecycle/quotas.py) keeps its status on the page too; other form
    errors re-render the form as before (200)."""
    return 403 if isinstance(exc, ServiceError) and exc.http_status == 403 else 200


def browse(request):
    context = space_list_context(request, space_list_visible_to(request.user))
    return render(request, "spaces/browse.html", context)


@login_required
def new_space(request):
    form = NewSpaceForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        archive = data.pop("archive")
        try:
            # The API's limit and counter (spaces/accounts/ratelimits.py): a page gains nothing over it.
            ratelimits.check_space_create(request, request.user)
            with transaction.atomic():
                space = space_create(owner=request.user, **data)
                if archive is not None:
                    revision_create(space=space, archive=archive, created_by=request.user)
        except ratelimits.RateLimited as exc:
            form.add_error(None, rate_limit_message(exc))
            response = render(request, "spaces/new.html", {"form": form}, status=429)
            response["Retry-After"] = str(exc.retry_after)
            return response
        except (ValidationError, ServiceError, ArchiveError) as exc:
            _form_error(form, exc)
            status = _quota_status(exc)
        else:
            return redirect(f"/spaces/{space.owner.username}/{space.name}")
    return render(request, "spaces/new.html", {"form": form}, status=status)


def space_page(request, owner, name):
    space, role = space_for_page(request, owner, name)
    return render(request, "spaces/space.html", {
        "space": space, "role": role, "can_edit": role >= Role.EDITOR, "can_admin": role >= Role.OWNER,
        "can_logs": role >= Role.EDITOR,
        # A sleeping app is shown too: loading it is what wakes it (spaces/lifecycle/sleep.py).
        "serving": space.status in SERVING or space.status == "SLEEPING",
        "space_error": space_error_for(space, role),
        "secrets_missing": secrets_without_value(space) if role >= Role.EDITOR else [],
        # A private app is entered through the hub, which carries the login (or the share
        # link) to the space's host as a one-time ticket (spaces/access/proxy_gate.py).
        "iframe_src": space.url if not space.is_private else f"/go/{space.label}?next=/",
        # Not "isolated": the host firewall is missing (README "Network isolation").
        "isolation": readiness.isolation(),
        # Branch previews (issue 10 item 8): listed, with their status and a way in, for editors.
        "can_preview": (can_preview := can(role, Action.OPEN_PREVIEW, user=request.user, space=space)),
        "previews": list(Preview.objects.filter(space=space).order_by("branch")) if can_preview else [],
        **views_social.space_social_context(request, space, role),
    })


def space_logs_page(request, owner, name):
    space, role = space_for_page(request, owner, name, Action.READ_LOGS)
    return render(request, "spaces/logs.html", {"space": space, "role": role, "can_edit": True,
                                                "can_admin": role >= Role.OWNER, "can_logs": True})


def space_settings(request, owner, name):
    space, role = space_for_page(request, owner, name, Action.EDIT)
    upload = UploadForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST" and upload.is_valid():
        try:
            rev = revision_create(space=space, archive=upload.cleaned_data["archive"],
                                           created_by=request.user)
        except (ServiceError, ArchiveError) as exc:
            _form_error(upload, exc)
            status = _quota_status(exc)
        else:
            messages.success(request, gettext("Revision %(number)s uploaded.") % {"number": rev.number})
            return redirect(f"/spaces/{space.owner.username}/{space.name}")
    revisions = space.revisions.select_related("created_by")[:20]
    return render(request, "spaces/settings.html", {"space": space, "role": role, "upload": upload,
                                                    "revisions": revisions, "can_edit": True,
                                                    "can_admin": role >= Role.OWNER, "can_logs": True,
                                                    "secrets_missing": secrets_without_value(space),
                                                    "tiers": tiers().values(), "tier_default": default_tier().name,
                                                    **views_variables.settings_context(space)},
                  status=status)


@require_POST
def space_action(request, owner, name, action):
    needs = {"restart": Action.EDIT, "factory": Action.EDIT, "pause": Action.ADMIN, "delete": Action.ADMIN,
             "visibility": Action.ADMIN, "hardware": Action.ADMIN, "force-push": Action.ADMIN}
    if action not in needs:
        raise Http404
    space, _ = space_for_page(request, owner, name, needs[action])
    base = f"/spaces/{space.owner.username}/{space.name}"
    try:
        if action == "restart":
            space_restart(space=space, by=request.user)
        elif action == "factory":
            space_rebuild(space=space, by=request.user)
        elif action == "pause":
            space_pause(space=space)
        elif action == "visibility":
            space_update(space=space, visibility=request.POST.get("visibility", ""))
        elif action == "force-push":
            # Recorded on each forced push (spaces/repos/receive.py); off by default, as a
            # rewritten main loses the history others cloned.
            space_update(space=space, allow_force_push=request.POST.get("allow_force_push") == "on")
            messages.success(request, gettext("Force pushes to main are now allowed.") if space.allow_force_push
                             else gettext("Force pushes to main are now refused."))
        elif action == "hardware":
            space_set_hardware(space=space, hardware=request.POST.get("hardware", ""))
            messages.success(request,
                             gettext("Hardware saved: it applies at the next start (restart to apply it now)."))
        elif action == "delete":
            space_delete(space=space)
            messages.success(request, gettext("%(space)s is being deleted.") % {"space": space.full_name})
            return redirect("/")
    except (ServiceError, ValidationError) as exc:
        messages.error(request, str(exc) if isinstance(exc, ServiceError) else "; ".join(exc.messages))
    return redirect(base)
