"""The Files and History tabs of a space, in Hugging Face's web layout:
/tree/<rev>/<path>, /blob/<rev>/<path>, /resolve/<rev>/<path> (download), /commits/<rev>,
/commit/<sha>, and /edit/<rev>/<path> (the browser editor, editors only).

Who may read: design.md §6 "files, history, clone, download" (Action.READ_FILES: anyone who
may see the space, but not through a share link). Raw files are untrusted content on the
hub's own origin: they are only ever sent as attachments, never rendered.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy

from runner.exceptions import ArchiveError
from spaces.access.selectors import Action, Role
from spaces.access.viewer import space_for_page
from spaces.records.errors import ServiceError
from spaces.repos import files, highlight, reading, store

COMMITS_PER_PAGE = 30


def _page(request, owner: str, name: str, action: Action = Action.READ_FILES):
    try:
        return space_for_page(request, owner, name, action)
    except reading.ReadError as exc:
        raise Http404 from exc


def _context(space, role, **extra) -> dict:
    return {"space": space, "role": role, "can_edit": role >= Role.EDITOR, "can_admin": role >= Role.OWNER,
            "can_logs": role >= Role.EDITOR, "base": f"/spaces/{space.owner.username}/{space.name}", **extra}


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) for each directory above and including `path`."""
    parts = [p for p in path.split("/") if p]
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def _rev_and_path(request, space, rest: str) -> tuple[str, str, str]:
    try:
        rev, sha, path = files.split_rev_path(request, space, rest)
        return rev, sha, reading.clean_path(path)
    except reading.ReadError as exc:
        raise Http404 from exc


def _no_files_yet(request, space, role, template: str, tab: str):
    """main of a space nothing was uploaded or pushed to yet: an empty page, not a 404."""
    return render(request, template, _context(space, role, tab=tab, rev="main", sha="", path="", crumbs=[],
                                              entries=[], rows=[], head=None, parent="", page=None))


def tree_page(request, owner, name, rest="main"):
    space, role = _page(request, owner, name)
    if rest == "main" and not store.head(space):
        return _no_files_yet(request, space, role, "spaces/files_tree.html", "files")
    rev, sha, path = _rev_and_path(request, space, rest)
    try:
        if reading.stat(space, sha, path).type == "file":  # a file's URL under /tree/: its page
            return redirect(f"/spaces/{space.owner.username}/{space.name}/blob/{rest}")
        entries = reading.tree(space, sha, path)
        head = reading.commit(space, sha)
    except reading.ReadError as exc:
        raise Http404 from exc
    return render(request, "spaces/files_tree.html", _context(
        space, role, tab="files", rev=rev, sha=sha, path=path, crumbs=_crumbs(path), entries=entries,
        head=head, parent=path.rsplit("/", 1)[0] if "/" in path else ""))


def blob_page(request, owner, name, rest):
    space, role = _page(request, owner, name)
    rev, sha, path = _rev_and_path(request, space, rest)
    try:
        view = files.file_view(space, sha, path)
    except reading.ReadError as exc:
        raise Http404 from exc
    return render(request, "spaces/files_blob.html", _context(
        space, role, tab="files", rev=rev, sha=sha, path=path, crumbs=_crumbs(path), view=view,
        may_edit=role >= Role.EDITOR and not view.binary and not view.too_big
        and (view.entry.size or 0) <= files.EDIT_MAX_BYTES))


def resolve_file(request, owner, name, rest):
    """The file itself, as a download: never rendered by the browser on the hub's origin."""
    space, _ = _page(request, owner, name)
    _, sha, path = _rev_and_path(request, space, rest)
    try:
        data = reading.blob(space, sha, path)
    except reading.ReadError as exc:
        raise Http404 from exc
    return files.attachment(data, path)


def commits_page(request, owner, name, rev="main"):
    space, role = _page(request, owner, name)
    if rev == "main" and not store.head(space):
        return _no_files_yet(request, space, role, "spaces/history.html", "history")
    try:
        sha = reading.resolve(space, rev)
        total = reading.commit_count(space, sha)
        page = Paginator(range(total), COMMITS_PER_PAGE).get_page(request.GET.get("page"))
        found = reading.commits(space, sha, limit=COMMITS_PER_PAGE, offset=page.start_index() - 1 if total else 0)
    except reading.ReadError as exc:
        raise Http404 from exc
    revisions = files.revisions_for_commits(space, [c.sha for c in found])
    rows = [(c, revisions.get(c.sha, [])) for c in found]
    return render(request, "spaces/history.html", _context(
        space, role, tab="history", rev=rev, sha=sha, rows=rows, page=page,
        running_id=space.running_revision_id))


def commit_page(request, owner, name, sha):
    space, role = _page(request, owner, name)
    try:
        found = reading.commit(space, sha)
        text = reading.diff(space, found.sha)
    except reading.ReadError as exc:
        raise Http404 from exc
    return render(request, "spaces/commit.html", _context(
        space, role, tab="history", commit=found, diff=highlight.diff_html(text) if text.strip() else "",
        revisions=files.revisions_for_commits(space, [found.sha]).get(found.sha, []),
        running_id=space.running_revision_id))


class EditForm(forms.Form):
    content = forms.CharField(label=gettext_lazy("Content"), strip=False, required=False,
                              widget=forms.Textarea(attrs={"rows": 28, "spellcheck": "false", "class": "code-edit"}))
    message = forms.CharField(label=gettext_lazy("Commit message"), max_length=files.MESSAGE_MAX, required=False)
    base = forms.CharField(widget=forms.HiddenInput)


def edit_page(request, owner, name, rest):
    space, role = _page(request, owner, name, Action.EDIT)
    rev, sha, path = _rev_and_path(request, space, rest)
    base_url = f"/spaces/{space.owner.username}/{space.name}"
    if rev != "main":  # the editor commits on main, the branch that deploys
        return redirect(f"{base_url}/edit/main/{path}")
    try:
        original = files.editable_text(space, sha, path)
    except reading.ReadError as exc:
        raise Http404 from exc
    except ServiceError as exc:
        messages.error(request, str(exc))
        return redirect(f"{base_url}/blob/main/{path}")
    crlf = "\r\n" in original
    form = EditForm(request.POST or None, initial={"content": original, "base": sha,
                                                   "message": gettext("Update %(path)s") % {"path": path}})
    status, conflict = 200, None
    if request.method == "POST" and form.is_valid():
        content = form.cleaned_data["content"]
        if not crlf:  # browsers send CRLF; keep the file's own line endings
            content = content.replace("\r\n", "\n")
        try:
            revision = files.file_commit(space=space, path=path, content=content.encode(),
                                         message=form.cleaned_data["message"], base=form.cleaned_data["base"],
                                         by=request.user)
        except files.EditConflict as exc:
            # Nothing is lost: the text stays in the form, now based on the new head, and the
            # page links what changed meanwhile.
            conflict = exc.head
            data = request.POST.copy()
            data["base"] = exc.head
            form = EditForm(data)
            form.is_valid()
            form.add_error(None, gettext("Someone committed to main since you opened this file. Your text is "
                                         "kept below: compare it with the latest version, then commit again."))
            status = 409
        except (ServiceError, ArchiveError) as exc:  # the upload checks: shown, text kept
            form.add_error(None, str(exc))
            status = getattr(exc, "http_status", 400)
        else:
            messages.success(request, gettext("Committed; revision %(number)s is building.") %
                             {"number": revision.number})
            return redirect(base_url)
    return render(request, "spaces/files_edit.html", _context(
        space, role, tab="files", rev=rev, sha=sha, path=path, crumbs=_crumbs(path), form=form,
        conflict=conflict), status=status)
