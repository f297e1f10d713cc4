"""The Webhooks page of a space (/spaces/<owner>/<name>/webhooks): editors and the owner add,
test and remove webhooks and read each one's delivery log. Forms post here and redirect back
with a message; a new webhook's secret is shown once, on that redirect."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from spaces.access.selectors import Action, Role
from spaces.access.viewer import space_for_page
from spaces.records.errors import ServiceError
from spaces.web.unavailable import answers_503_when_down
from spaces.webhooks import selectors, services
from spaces.webhooks.models import WebhookEvent

DELIVERIES_SHOWN = 20


class WebhookForm(forms.Form):
    url = forms.CharField(label=gettext_lazy("Payload URL"), max_length=2000,
                          widget=forms.URLInput(attrs={"placeholder": "https://example.com/hooks/demohub"}))
    events = forms.MultipleChoiceField(label=gettext_lazy("Events"), choices=WebhookEvent.choices,
                                       initial=WebhookEvent.values, widget=forms.CheckboxSelectMultiple)
    secret = forms.CharField(label=gettext_lazy("Secret"), required=False, strip=False,
                             help_text=gettext_lazy("16 to 256 characters; leave empty and the hub makes one."),
                             widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


def _space(request, owner: str, name: str):
    return space_for_page(request, owner, name, Action.EDIT)


def _back(space):
    return redirect(f"/spaces/{space.owner.username}/{space.name}/webhooks")


@answers_503_when_down
def webhooks_page(request, owner, name):
    space, role = _space(request, owner, name)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            hook, secret = services.webhook_create(space=space, url=form.cleaned_data["url"],
                                                   events=form.cleaned_data["events"],
                                                   secret=form.cleaned_data["secret"], by=request.user)
        except ServiceError as exc:
            form.add_error("url" if "url" in exc.code or "address" in exc.code or "target" in exc.code
                           else None, str(exc))
        else:
            messages.success(request, _("Webhook added. Its secret, shown only now: %(secret)s") % {"secret": secret})
            return _back(space)
    hooks = list(selectors.webhook_list(space=space))
    for hook in hooks:
        hook.recent = list(selectors.delivery_list(webhook=hook)[:DELIVERIES_SHOWN])
    return render(request, "spaces/webhooks.html", {
        "space": space, "role": role, "can_edit": True, "can_admin": role >= Role.OWNER, "can_logs": True,
        "form": form, "hooks": hooks}, status=400 if form.errors else 200)


@require_POST
@answers_503_when_down
def webhook_action(request, owner, name, webhook_id, action):
    space, _role = _space(request, owner, name)
    hook = selectors.webhook_get(space=space, webhook_id=webhook_id)
    if action == "delete":
        services.webhook_delete(webhook=hook)
        messages.success(request, _("Webhook to %(url)s removed.") % {"url": hook.url})
    elif action == "test":
        services.webhook_ping(webhook=hook)
        messages.success(request, _("A ping is on its way to %(url)s; its delivery shows below.") % {"url": hook.url})
    elif action in ("enable", "disable"):
        services.webhook_update(webhook=hook, active=action == "enable")
        messages.success(request, _("Webhook turned on.") if action == "enable" else _("Webhook turned off."))
    else:
        raise Http404
    return _back(space)
