"""Pages about access: share links (`/s/<token>`), entering a space's host (`/go/<label>`),
and the owner's page for collaborators and share links."""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, pgettext
from django.views.decorators.clickjacking import xframe_options_sameorigin

from spaces.access import services as access
from spaces.access.models import Collaborator, ShareLink
from spaces.access.proxy_gate import host_target, safe_next, ticket_mint, ticket_url
from spaces.access.selectors import Action, Role, can, space_get_for_viewer
from spaces.access.viewer import space_for_page


def share_redeem(request, token: str):
    """One use of a share link: remember it in this browser session, open the space page.

    The redirect drops the token from the address bar; no-referrer keeps it out of the
    Referer of whatever the landing page loads.
    """
    link = access.share_link_redeem(token)
    if link is None:
        response = render(request, "spaces/share_invalid.html", status=404)
    else:
        access.share_link_remember(request, link)
        response = HttpResponseRedirect(f"/spaces/{link.space.owner.username}/{link.space.name}")
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


@xframe_options_sameorigin  # the hub page's iframe starts here for a private space
def go_to_space(request, label: str):
    """Into a space's host: a public space directly; a private one with a one-time ticket.

    A host that does not exist and one the caller may not see answer alike: log in first
    (anonymous), or 404.
    """
    next_path = safe_next(request.GET.get("next"))
    # A branch preview's host too: only its space's editors get a ticket there (issue 10 item 8).
    space, preview = host_target(f"{label}.{settings.SPACES_DOMAIN}") if "." not in label else (None, None)
    try:
        if space is None:
            raise Http404("No such space.")
        space, role = space_get_for_viewer(owner=space.owner.username, name=space.name, user=request.user,
                                           share_link_ids=access.share_links_in_session(request))
        if preview is not None and not can(role, Action.OPEN_PREVIEW, user=request.user, space=space):
            raise Http404("No such space.")
    except Http404:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        raise
    if preview is not None:
        ticket = ticket_mint(space, user=request.user, session=request.session, preview=preview)
        response = HttpResponseRedirect(ticket_url(preview, ticket, next_path))
        response["Referrer-Policy"] = "no-referrer"
        response["Cache-Control"] = "no-store"
        return response
    if not space.is_private:
        return HttpResponseRedirect(space.url.rstrip("/") + next_path)
    if role == Role.SHARE_LINK:
        link = access.share_link_valid_for(space.pk, access.share_links_in_session(request))
        ticket = ticket_mint(space, share_link_id=link.pk)
    else:
        ticket = ticket_mint(space, user=request.user, session=request.session)
    response = HttpResponseRedirect(ticket_url(space, ticket, next_path))
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


# ----------------------------------------------------------------------------- owner's page
class CollaboratorForm(forms.Form):
    username = forms.CharField(label=gettext_lazy("Username"), max_length=150)
    role = forms.ChoiceField(label=gettext_lazy("Role"), choices=[(Collaborator.Role.VIEWER, gettext_lazy("Viewer")),
                                                                  (Collaborator.Role.EDITOR, gettext_lazy("Editor"))])


class ShareLinkForm(forms.Form):
    note = forms.CharField(max_length=200, required=False)
    expires_in_days = forms.IntegerField(min_value=1, max_value=access.SHARE_MAX_DAYS, required=False,
                                         help_text=gettext_lazy("empty: never expires"))
    max_uses = forms.IntegerField(min_value=1, max_value=access.SHARE_MAX_USES, required=False,
                                  help_text=gettext_lazy("empty: unlimited"))


def space_access_page(request, owner: str, name: str):
    """Visibility, collaborators and share links (the owner only, design.md §6)."""
    space, role = space_for_page(request, owner, name, Action.ADMIN)
    base = f"/spaces/{space.owner.username}/{space.name}/access"
    collab_form = CollaboratorForm(prefix="c")
    link_form = ShareLinkForm(prefix="l")
    new_link_url = None
    if request.method == "POST":
        what = request.POST.get("what")
        if what == "collaborator":
            collab_form = CollaboratorForm(request.POST, prefix="c")
            if collab_form.is_valid():
                try:
                    collab, created = access.collaborator_set(space=space, **collab_form.cleaned_data)
                except access.AccessError as exc:
                    collab_form.add_error(None, str(exc))
                else:
                    done = (gettext("%(user)s added as %(role)s.") if created else gettext("%(user)s is now %(role)s."))
                    messages.success(request, done % {"user": collab.user.username,
                                                      "role": pgettext("role", collab.role)})
                    return redirect(base)
        elif what == "remove-collaborator":
            access.collaborator_remove(space=space, username=request.POST.get("username", ""))
            messages.success(request, gettext("%(user)s no longer has access.")
                             % {"user": request.POST.get("username", "")})
            return redirect(base)
        elif what == "share-link":
            link_form = ShareLinkForm(request.POST, prefix="l")
            if link_form.is_valid():
                data = link_form.cleaned_data
                try:
                    _, raw = access.share_link_create(space=space, by=request.user, note=data["note"] or "",
                                                      expires_in_days=data["expires_in_days"],
                                                      max_uses=data["max_uses"])
                except ValidationError as exc:
                    link_form.add_error(None, "; ".join(exc.messages))
                else:
                    # Shown once, in this response only: the hub keeps only its hash.
                    new_link_url = access.share_link_url(raw)
                    link_form = ShareLinkForm(prefix="l")
        elif what == "revoke":
            link = get_object_or_404(ShareLink, space=space, pk=request.POST.get("link_id") or 0)
            access.share_link_revoke(link=link)
            messages.success(request, gettext("The link is revoked: nobody can use it any more."))
            return redirect(base)
    return render(request, "spaces/access.html", {
        "space": space, "role": role, "can_edit": True, "can_admin": True, "can_logs": True,
        "collaborators": space.collaborators.select_related("user").order_by("user__username"),
        "share_links": space.share_links.select_related("created_by").order_by("-created_at"),
        "collab_form": collab_form, "link_form": link_form, "new_link_url": new_link_url, "now": timezone.now(),
    })
