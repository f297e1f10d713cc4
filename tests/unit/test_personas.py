"""The persona matrix: design.md §6's role table, cell by cell, on every surface of the hub.

EXPECTED is that table written out per surface: for each surface (an HTML page, an API call,
the proxy's access check or fallback), each visibility and each persona, the answer the
design calls for. Every cell is one generated test case. How to read a cell:

* a status code: the status of the answer. On the API, "no" on a space the caller may see is
  403 when logged in and 401 when anonymous (no credentials, design.md §4); HTML pages answer
  403 either way.
* 404 (HTML, API), and 401 from the proxy's access check of a private host: "no (404)", the
  answer for a space that does not exist, the same to the byte (status, page or JSON body,
  redirect target but for the name): each such cell also asks about a missing space.
* LISTED / UNLISTED: whether a list (browse, search, a profile, GET /api/spaces) shows it.
* SHOWN / HIDDEN: on the space page, whether its comments show; on /go/<label> and the
  proxy's fallback, whether the caller is let through to the space (a ticket or a redirect
  to its host; the space's own status answer) or gets the answer for a missing host.

Personas: the owner, an editor and a viewer (collaborators), a logged-in stranger, an anonymous
caller, a share-link holder (a browser session that redeemed /s/<token> of a valid link to the
space, with the space cookie it then got through /go -> ticket) and a revoked-link holder (the
same, after the owner revoked the link). A share link adds nothing to a public space: there
both holders answer as anonymous callers. On the apps domain a user is tried with each of
their credentials: the API token as Authorization and as X-HF-Authorization, and the cookie
their browser gets through /go.
"""
from __future__ import annotations

import base64
import io
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from spaces.access import proxy_gate as proxy_access
from spaces.access import services as access
from spaces.community import services as comments
from spaces.community.models import Comment
from spaces.records.models import Space
from tests.archives import make_archive

from .conftest import next_ip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]

PERSONAS = ("owner", "editor", "viewer", "stranger", "anonymous", "share", "revoked")
VISIBILITIES = ("public", "private")
LISTED, UNLISTED = "listed", "unlisted"
SHOWN, HIDDEN = "shown", "hidden"
DONE, LOGIN = "done", "login"


def cells(*answers) -> dict:
    """One visibility's row of EXPECTED: the answers in PERSONAS order."""
    return dict(zip(PERSONAS, answers, strict=True))


# The rows of design.md §6, each checked by the surfaces filed under it below.
SEE = "page, app, comments (read)"
INTERACT = "comment, like"
FILES = "files, history, clone, download"
LOGS = "build/run logs, revisions, analytics"
EDIT = "upload revision, restart, variables/secrets"
ADMIN = "visibility, collaborators, share links, pause, delete"
PUSH = "push, edit a file, upload revision"
# Issue 10 item 8: a branch preview is for the space's editors only, whatever its visibility.
PREVIEW = "branch previews: their host, /go to it, their list"
DESIGN_ROWS = (SEE, INTERACT, FILES, LOGS, EDIT, ADMIN, PUSH, PREVIEW)

# surface -> visibility -> persona -> answer.
EXPECTED: dict[str, dict[str, dict]] = {
    # ---------------------------------------------------------------- page, app, comments (read)
    #                                   owner     editor    viewer    stranger  anonymous share     revoked
    "page":             {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      200,      404)},
    # a share link opens the page and the app, not the discussion
    "page_comments":    {"public":  cells(SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN),
                         "private": cells(SHOWN,    SHOWN,    SHOWN,    HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN)},
    # lists show what their caller may see, and a share link is not a way into lists
    "browse":           {"public":  cells(LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED),
                         "private": cells(LISTED,   LISTED,   LISTED,   UNLISTED, UNLISTED, UNLISTED, UNLISTED)},
    "browse_search":    {"public":  cells(LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED),
                         "private": cells(LISTED,   LISTED,   LISTED,   UNLISTED, UNLISTED, UNLISTED, UNLISTED)},
    "owner_profile":    {"public":  cells(LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED),
                         "private": cells(LISTED,   LISTED,   LISTED,   UNLISTED, UNLISTED, UNLISTED, UNLISTED)},
    "api_list":         {"public":  cells(LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED),
                         "private": cells(LISTED,   LISTED,   LISTED,   UNLISTED, UNLISTED, UNLISTED, UNLISTED)},
    "api_search":       {"public":  cells(LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED),
                         "private": cells(LISTED,   LISTED,   LISTED,   UNLISTED, UNLISTED, UNLISTED, UNLISTED)},
    "api_detail":       {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      200,      404)},
    "hf_runtime":       {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      200,      404)},
    "hf_list":          {"public":  cells(LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED,   LISTED),
                         "private": cells(LISTED,   LISTED,   LISTED,   UNLISTED, UNLISTED, UNLISTED, UNLISTED)},
    "api_comments":     {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    # the status badge is for everybody, so a private space has none, whoever asks (issue 14)
    "badge":            {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(404,      404,      404,      404,      404,      404,      404)},
    "go":               {"public":  cells(SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN),
                         "private": cells(SHOWN,    SHOWN,    SHOWN,    HIDDEN,   HIDDEN,   SHOWN,    HIDDEN)},
    "proxy_auth":       {"public":  cells(204,      204,      204,      204,      204,      204,      204),
                         "private": cells(204,      204,      204,      401,      401,      204,      401)},
    "proxy_html":       {"public":  cells(SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN),
                         "private": cells(SHOWN,    SHOWN,    SHOWN,    HIDDEN,   HIDDEN,   SHOWN,    HIDDEN)},
    "proxy_api":        {"public":  cells(SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN,    SHOWN),
                         "private": cells(SHOWN,    SHOWN,    SHOWN,    HIDDEN,   HIDDEN,   SHOWN,    HIDDEN)},
    # ---------------------------------------------------------------- comment, like
    "api_comment_add":  {"public":  cells(201,      201,      201,      201,      401,      401,      401),
                         "private": cells(201,      201,      201,      404,      404,      401,      404)},
    "api_like":         {"public":  cells(200,      200,      200,      200,      401,      401,      401),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    # the hub's forms: DONE (redirected back to the space), LOGIN (sent to log in first)
    "page_comment_add": {"public":  cells(DONE,     DONE,     DONE,     DONE,     LOGIN,    LOGIN,    LOGIN),
                         "private": cells(DONE,     DONE,     DONE,     404,      LOGIN,    LOGIN,    LOGIN)},
    "page_like":        {"public":  cells(DONE,     DONE,     DONE,     DONE,     LOGIN,    LOGIN,    LOGIN),
                         "private": cells(DONE,     DONE,     DONE,     404,      LOGIN,    LOGIN,    LOGIN)},
    # editing a comment is its author's (the viewer wrote the first one), within what one may see
    "api_comment_edit": {"public":  cells(403,      403,      200,      403,      401,      401,      401),
                         "private": cells(403,      403,      200,      404,      404,      401,      404)},
    # ---------------------------------------------------------------- files, history, clone, download
    # viewers and up on a private space; a share link opens the app, not the repository
    # (issue 10: spaces/repos/pages_files.py, api_files.py)
    "files_tree":        {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      403,      404)},
    "files_blob":        {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      403,      404)},
    "files_download":    {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      403,      404)},
    "history_page":      {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      403,      404)},
    "commit_page":       {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      403,      404)},
    "api_tree":          {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    "api_tree_path":     {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    "api_file":          {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    "api_raw":           {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    "api_commits":       {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    "api_commit":        {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    # a duplicate is the caller's own copy: anyone logged in who may read the files (login first on the page)
    "page_duplicate":   {"public":  cells(200,      200,      200,      200,      302,      302,      302),
                         "private": cells(200,      200,      200,      404,      302,      302,      302)},
    "api_duplicate":    {"public":  cells(202,      202,      202,      202,      401,      401,      401),
                         "private": cells(202,      202,      202,      404,      404,      401,      404)},
    # the Hugging Face face under /hf (issue 11): the same check, Hugging Face's shapes
    "hf_info":          {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    "hf_tree":          {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    "hf_resolve":       {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    "hf_duplicate":     {"public":  cells(200,      200,      200,      200,      401,      401,      401),
                         "private": cells(200,      200,      200,      404,      404,      401,      404)},
    # ---------------------------------------------------------------- build/run logs, revisions
    # (the status stays in the detail above: "public: build status only")
    "logs_page":        {"public":  cells(200,      200,      403,      403,      403,      403,      403),
                         "private": cells(200,      200,      403,      404,      404,      403,      404)},
    "hf_logs":          {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "api_revisions":    {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "api_revision":     {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "api_build_log":    {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "api_run_log":      {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    # analytics: the same row of design.md §6 as the logs
    "analytics_page":   {"public":  cells(200,      200,      403,      403,      403,      403,      403),
                         "private": cells(200,      200,      403,      404,      404,      403,      404)},
    "api_analytics":    {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    # ---------------------------------------------------------------- upload, restart, variables
    "settings_page":    {"public":  cells(200,      200,      403,      403,      403,      403,      403),
                         "private": cells(200,      200,      403,      404,      404,      403,      404)},
    "api_upload":       {"public":  cells(202,      202,      403,      403,      401,      401,      401),
                         "private": cells(202,      202,      403,      404,      404,      401,      404)},
    "api_restart":      {"public":  cells(202,      202,      403,      403,      401,      401,      401),
                         "private": cells(202,      202,      403,      404,      404,      401,      404)},
    "api_variables":    {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "api_secrets":      {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "api_variable_put": {"public":  cells(201,      201,      403,      403,      401,      401,      401),
                         "private": cells(201,      201,      403,      404,      404,      401,      404)},
    "api_secret_put":   {"public":  cells(201,      201,      403,      403,      401,      401,      401),
                         "private": cells(201,      201,      403,      404,      404,      401,      404)},
    "page_variable_set": {"public": cells(DONE,     DONE,     403,      403,      403,      403,      403),
                         "private": cells(DONE,     DONE,     403,      404,      404,      403,      404)},
    "page_variable_delete": {"public": cells(DONE,  DONE,     403,      403,      403,      403,      403),
                         "private": cells(DONE,     DONE,     403,      404,      404,      403,      404)},
    "page_restart":     {"public":  cells(DONE,     DONE,     403,      403,      403,      403,      403),
                         "private": cells(DONE,     DONE,     403,      404,      404,      403,      404)},
    # whether main may be rewritten is the owner's to say, not an editor's (issue 10 item 2)
    "page_force_push":  {"public":  cells(DONE,     403,      403,      403,      403,      403,      403),
                         "private": cells(DONE,     403,      403,      404,      404,      403,      404)},
    # editing a file in the browser and running a revision again are an upload's (issue 10)
    "page_edit":        {"public":  cells(200,      200,      403,      403,      403,      403,      403),
                         "private": cells(200,      200,      403,      404,      404,      403,      404)},
    "api_file_commit":  {"public":  cells(202,      202,      403,      403,      401,      401,      401),
                         "private": cells(202,      202,      403,      404,      404,      401,      404)},
    "page_rollback":    {"public":  cells(DONE,     DONE,     403,      403,      403,      403,      403),
                         "private": cells(DONE,     DONE,     403,      404,      404,      403,      404)},
    "api_rollback":     {"public":  cells(202,      202,      403,      403,      401,      401,      401),
                         "private": cells(202,      202,      403,      404,      404,      401,      404)},
    "hf_commit":        {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "hf_variables":     {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "hf_restart":       {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    # webhooks (issue 14): the space's configuration, as variables are
    "webhooks_page":    {"public":  cells(200,      200,      403,      403,      403,      403,      403),
                         "private": cells(200,      200,      403,      404,      404,      403,      404)},
    "page_webhook_off": {"public":  cells(DONE,     DONE,     403,      403,      403,      403,      403),
                         "private": cells(DONE,     DONE,     403,      404,      404,      403,      404)},
    "api_webhooks":     {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "api_webhook_add":  {"public":  cells(201,      201,      403,      403,      401,      401,      401),
                         "private": cells(201,      201,      403,      404,      404,      401,      404)},
    "api_webhook":      {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "api_webhook_test": {"public":  cells(202,      202,      403,      403,      401,      401,      401),
                         "private": cells(202,      202,      403,      404,      404,      401,      404)},
    "api_webhook_log":  {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    # ---------------------------------------------------------------- files, history, clone (issue 10)
    # git sends no cookie: a link holder is anonymous to git (401 asks for credentials), and an
    # anonymous caller of a private repository gets 401 exactly as for a missing one.
    "git_clone":        {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      401,      401,      401)},
    "git_fetch":        {"public":  cells(200,      200,      200,      200,      200,      200,      200),
                         "private": cells(200,      200,      200,      404,      401,      401,      401)},
    # ---------------------------------------------------------------- push (a write token; issue 10)
    "git_push_refs":    {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      401,      401,      401)},
    "git_push":         {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      401,      401,      401)},
    # ---------------------------------------------------------------- visibility, access, pause, delete
    "access_page":      {"public":  cells(200,      403,      403,      403,      403,      403,      403),
                         "private": cells(200,      403,      403,      404,      404,      403,      404)},
    "api_visibility":   {"public":  cells(200,      403,      403,      403,      401,      401,      401),
                         "private": cells(200,      403,      403,      404,      404,      401,      404)},
    "api_share_links":  {"public":  cells(200,      403,      403,      403,      401,      401,      401),
                         "private": cells(200,      403,      403,      404,      404,      401,      404)},
    "api_collaborators": {"public": cells(200,      403,      403,      403,      401,      401,      401),
                         "private": cells(200,      403,      403,      404,      404,      401,      404)},
    "hf_settings":      {"public":  cells(200,      403,      403,      403,      401,      401,      401),
                         "private": cells(200,      403,      403,      404,      404,      401,      404)},
    "hf_delete":        {"public":  cells(200,      403,      403,      403,      401,      401,      401),
                         "private": cells(200,      403,      403,      404,      404,      401,      404)},
    "api_pause":        {"public":  cells(202,      403,      403,      403,      401,      401,      401),
                         "private": cells(202,      403,      403,      404,      404,      401,      404)},
    "api_delete":       {"public":  cells(202,      403,      403,      403,      401,      401,      401),
                         "private": cells(202,      403,      403,      404,      404,      401,      404)},
    "api_collaborator_remove": {"public": cells(204, 403,     403,      403,      401,      401,      401),
                         "private": cells(204,      403,      403,      404,      404,      401,      404)},
    "api_share_link_revoke": {"public": cells(204,  403,      403,      403,      401,      401,      401),
                         "private": cells(204,      403,      403,      404,      404,      401,      404)},
    # ---------------------------------------------------------------- branch previews (issue 10 item 8)
    # On a preview's host everyone but the editors gets a missing host's answer, public space or not.
    "api_previews":     {"public":  cells(200,      200,      403,      403,      401,      401,      401),
                         "private": cells(200,      200,      403,      404,      404,      401,      404)},
    "preview_go":       {"public":  cells(SHOWN,    SHOWN,    HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN),
                         "private": cells(SHOWN,    SHOWN,    HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN)},
    "preview_proxy_auth": {"public": cells(204,     204,      401,      401,      401,      401,      401),
                         "private": cells(204,      204,      401,      401,      401,      401,      401)},
    "preview_proxy_html": {"public": cells(SHOWN,   SHOWN,    HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN),
                         "private": cells(SHOWN,    SHOWN,    HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN)},
    "preview_proxy_api": {"public": cells(SHOWN,    SHOWN,    HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN),
                         "private": cells(SHOWN,    SHOWN,    HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN,   HIDDEN)},
}
# Surfaces asked on the host of the space's branch preview ("docs", see `world`), not its own.
PREVIEW_SURFACES = ("preview_go", "preview_proxy_auth", "preview_proxy_html", "preview_proxy_api")


# ------------------------------------------------------------------------------ who and what
@dataclass(frozen=True)
class Target:
    """The space a case asks about, by the names each surface uses (or a missing one's)."""

    owner: str
    name: str
    label: str
    host: str  # what nginx sends as X-Demohub-Host
    visibility: str
    search_word: str  # a word of its title
    comment: str  # the text of one of its comments

    @property
    def path(self) -> str:
        return f"{self.owner}/{self.name}"

    def missing(self) -> Target:
        """A space of the same owner that does not exist (and a host label nobody has)."""
        label = f"{self.owner}-no-such-space"
        return Target(self.owner, "no-such-space", label, self.host.replace(self.label, label, 1), self.visibility,
                      "", "")


@dataclass
class Caller:
    browser: Client  # HTML pages
    api: Client  # /api/: a Bearer token (users), the browser session (link holders), or nothing
    proxy: dict = field(default_factory=dict)  # the credential headers nginx forwards to the hub
    git: dict = field(default_factory=dict)  # what git sends: Basic user name + API token


def proxy_call(settings, path: str, target: Target, uri: str, caller: Caller, accept: str):
    """What nginx sends the hub for a request to the target's host (runner/proxy.py)."""
    headers = {"X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": target.host,
               "X-Demohub-Uri": uri, "Accept": accept, **caller.proxy}
    return Client().get(path, headers=headers)


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
Call = Callable[[Caller, Target, object], object]  # (caller, target, settings) -> response


@dataclass(frozen=True)
class Surface:
    kind: str  # how to read the answer: see observe()
    row: str  # the row of design.md §6 it checks
    call: Call


def hub_get(path: Callable[[Target], str], query: Callable[[Target], dict] = lambda t: {}) -> Call:
    return lambda c, t, s: c.browser.get(path(t), query(t))


def hub_post(path: Callable[[Target], str], data: Callable[[Target], dict] = lambda t: {}) -> Call:
    return lambda c, t, s: c.browser.post(path(t), data(t))


def first_comment_id(t: Target) -> int:
    """The target's first comment (the viewer's, see `world`); a missing space has none."""
    found = Comment.objects.filter(space__owner__username=t.owner, space__name=t.name).order_by("pk").first()
    return found.pk if found else 999_999


def new_share_link_id(t: Target) -> int:
    """A fresh link of the target's, made by its owner (a missing space has none)."""
    space = Space.objects.filter(owner__username=t.owner, name=t.name).first()
    if space is None:
        return 999_999
    link, _ = access.share_link_create(space=space, by=space.owner, note="to revoke")
    return link.pk


def new_webhook_id(t: Target) -> int:
    """A fresh webhook of the target's, made by its owner (a missing space has none)."""
    from spaces.webhooks import services as webhooks

    from spaces.webhooks.models import Webhook

    space = Space.objects.filter(owner__username=t.owner, name=t.name).first()
    if space is None:
        # The id the real target's call just used, so that the two URLs differ only by name
        # (a 404 page links back to its own path).
        return Webhook.objects.order_by("-pk").values_list("pk", flat=True).first() or 999_999
    hook, _ = webhooks.webhook_create(space=space, url="https://93.184.216.34/hook", by=space.owner)
    return hook.pk


def api_call(method: str, suffix: str = "", body: Callable[[Target], dict] | None = None, fmt: str = "json") -> Call:
    """A call to /api/spaces/<owner>/<name><suffix>."""
    return lambda c, t, s: getattr(c.api, method)(f"/api/spaces/{t.path}{suffix}", body(t) if body else None,
                                                  format=fmt)


def proxy_ask(path: str, uri: str, accept: str) -> Call:
    return lambda c, t, s: proxy_call(s, path, t, uri, c, accept)


def new_revision(_: Target) -> dict:
    files = {"README.md": "---\nsdk: static\n---\n", "index.html": "<h1>v2</h1>\n"}
    return {"archive": SimpleUploadedFile("repo.tar.gz", make_archive(files), content_type="application/gzip")}


def other_visibility(t: Target) -> dict:
    return {"visibility": "private" if t.visibility == "public" else "public"}


def git_call(suffix: str, service: str, method: str = "get") -> Call:
    """git's smart HTTP at the space's URL: an advertisement (GET) or an empty request (POST)."""
    def call(c, t, s):
        client = Client()
        if method == "get":
            return client.get(f"/spaces/{t.path}.git/{suffix}", {"service": service}, **c.git)
        return client.post(f"/spaces/{t.path}/{suffix}", b"0000", content_type=f"application/x-{service}-request",
                           **c.git)
    return call


def space_page(suffix: str = "") -> Call:
    return hub_get(lambda t: f"/spaces/{t.path}{suffix}")


_SHAS: dict[str, str] = {}


def head_sha(t: Target) -> str:
    """main's commit of the target; for a missing space the one the real target's call just
    used, so that the two URLs differ only by name (a 404 page shows its own path)."""
    from spaces.repos import reading

    space = Space.objects.filter(owner__username=t.owner, name=t.name).first()
    if space is None:
        return _SHAS.get("last", "0" * 40)
    _SHAS["last"] = reading.resolve(space, "main")
    return _SHAS["last"]


def new_file_content(_: Target) -> dict:
    return {"content": "<h1>edited</h1>\n", "message": "Edit from the matrix"}


def hf_call(method: str, suffix: str = "", body: Callable[[Target], object] | None = None,
            content_type: str = "application/json") -> Call:
    """A call to the Hugging Face face, /hf/api/spaces/<owner>/<name><suffix> (issue 11)."""
    def call(c, t, s):
        data = body(t) if body else None
        if isinstance(data, dict):
            data = json.dumps(data)
        return c.api.generic(method.upper(), f"/hf/api/spaces/{t.path}{suffix}", data or "", content_type=content_type)
    return call


def hf_commit_body(t: Target) -> str:
    lines = [{"key": "header", "value": {"summary": "From the matrix", "description": ""}},
             {"key": "file", "value": {"path": "notes.txt", "encoding": "base64",
                                       "content": base64.b64encode(b"hello").decode()}}]
    return "\n".join(json.dumps(line) for line in lines)


def hf_repo_body(t: Target) -> dict:
    return {"name": t.name, "organization": t.owner, "type": "space"}


SURFACES: dict[str, Surface] = {
    "page": Surface("html", SEE, space_page()),
    "page_comments": Surface("html_comments", SEE, space_page()),
    "browse": Surface("html_list", SEE, hub_get(lambda t: "/")),
    "browse_search": Surface("html_list", SEE, hub_get(lambda t: "/", lambda t: {"search": t.search_word})),
    "owner_profile": Surface("html_list", SEE, hub_get(lambda t: f"/users/{t.owner}")),
    "api_list": Surface("api_list", SEE, lambda c, t, s: c.api.get("/api/spaces")),
    "api_search": Surface("api_list", SEE, lambda c, t, s: c.api.get("/api/spaces", {"search": t.search_word})),
    "api_detail": Surface("api", SEE, api_call("get")),
    "api_comments": Surface("api", SEE, api_call("get", "/comments")),
    "go": Surface("go", SEE, hub_get(lambda t: f"/go/{t.label}", lambda t: {"next": "/"})),
    "proxy_auth": Surface("proxy_auth", SEE, proxy_ask("/internal/proxy/auth", "/", BROWSER_ACCEPT)),
    "proxy_html": Surface("proxy_fallback", SEE, proxy_ask("/internal/proxy/fallback", "/", BROWSER_ACCEPT)),
    "proxy_api": Surface("proxy_fallback", SEE, proxy_ask("/internal/proxy/fallback", "/config", "*/*")),
    "api_comment_add": Surface("api", INTERACT, api_call("post", "/comments", lambda t: {"body": "Works for me."})),
    "api_like": Surface("api", INTERACT, api_call("post", "/like")),
    "logs_page": Surface("html", LOGS, space_page("/logs")),
    "api_revisions": Surface("api", LOGS, api_call("get", "/revisions")),
    "api_revision": Surface("api", LOGS, api_call("get", "/revisions/1")),
    "api_build_log": Surface("api", LOGS, api_call("get", "/logs/build")),
    "api_run_log": Surface("api", LOGS, api_call("get", "/logs/run")),
    "analytics_page": Surface("html", LOGS, space_page("/analytics")),
    "api_analytics": Surface("api", LOGS, api_call("get", "/analytics")),
    "settings_page": Surface("html", EDIT, space_page("/settings")),
    "api_upload": Surface("api", EDIT, api_call("post", "/revisions", new_revision, fmt="multipart")),
    "api_restart": Surface("api", EDIT, api_call("post", "/restart")),
    "api_variables": Surface("api", EDIT, api_call("get", "/variables")),
    "api_secrets": Surface("api", EDIT, api_call("get", "/secrets")),
    "access_page": Surface("html", ADMIN, space_page("/access")),
    "api_visibility": Surface("api", ADMIN, api_call("patch", "", other_visibility)),
    "api_share_links": Surface("api", ADMIN, api_call("get", "/share-links")),
    "api_collaborators": Surface("api", ADMIN, api_call("get", "/collaborators")),
    "api_pause": Surface("api", ADMIN, api_call("post", "/pause")),
    "api_delete": Surface("api", ADMIN, api_call("delete")),
    "page_comment_add": Surface("form", INTERACT, hub_post(lambda t: f"/spaces/{t.path}/comments",
                                                           lambda t: {"body": "Nice."})),
    "page_like": Surface("form", INTERACT, hub_post(lambda t: f"/spaces/{t.path}/like", lambda t: {"like": "1"})),
    "api_comment_edit": Surface("api", INTERACT, lambda c, t, s: c.api.patch(
        f"/api/spaces/{t.path}/comments/{first_comment_id(t)}", {"body": "Edited."}, format="json")),
    "api_variable_put": Surface("api", EDIT, api_call("put", "/variables/COLOR", lambda t: {"value": "red"})),
    "api_secret_put": Surface("api", EDIT, api_call("put", "/secrets/TOKEN", lambda t: {"value": "s3cret"})),
    "page_variable_set": Surface("form", EDIT, hub_post(lambda t: f"/spaces/{t.path}/settings/variables",
                                                        lambda t: {"kind": "variable", "key": "COLOR", "value": "red"})),
    "page_variable_delete": Surface("form", EDIT, hub_post(lambda t: f"/spaces/{t.path}/settings/variables/delete",
                                                           lambda t: {"kind": "variable", "key": "COLOR"})),
    "page_restart": Surface("form", EDIT, hub_post(lambda t: f"/spaces/{t.path}/actions/restart")),
    "page_force_push": Surface("form", ADMIN, hub_post(lambda t: f"/spaces/{t.path}/actions/force-push",
                                                      lambda t: {"allow_force_push": "on"})),
    "badge": Surface("html", SEE, space_page("/badge.svg")),
    "webhooks_page": Surface("html", EDIT, space_page("/webhooks")),
    "page_webhook_off": Surface("form", EDIT, hub_post(lambda t: f"/spaces/{t.path}/webhooks/{new_webhook_id(t)}/disable")),
    "api_webhooks": Surface("api", EDIT, api_call("get", "/webhooks")),
    "api_webhook_add": Surface("api", EDIT, api_call("post", "/webhooks", lambda t: {"url": "https://93.184.216.34/"})),
    "api_webhook": Surface("api", EDIT, lambda c, t, s: c.api.get(f"/api/spaces/{t.path}/webhooks/{new_webhook_id(t)}")),
    "api_webhook_test": Surface("api", EDIT, lambda c, t, s: c.api.post(
        f"/api/spaces/{t.path}/webhooks/{new_webhook_id(t)}/test")),
    "api_webhook_log": Surface("api", EDIT, lambda c, t, s: c.api.get(
        f"/api/spaces/{t.path}/webhooks/{new_webhook_id(t)}/deliveries")),
    "files_tree": Surface("html", FILES, space_page("/tree/main")),
    "files_blob": Surface("html", FILES, space_page("/blob/main/index.html")),
    "files_download": Surface("html", FILES, space_page("/resolve/main/index.html")),
    "history_page": Surface("html", FILES, space_page("/commits/main")),
    "commit_page": Surface("html", FILES, hub_get(lambda t: f"/spaces/{t.path}/commit/{head_sha(t)}")),
    "api_tree": Surface("api", FILES, api_call("get", "/tree")),
    "api_tree_path": Surface("api", FILES, api_call("get", "/tree/assets")),
    "api_file": Surface("api", FILES, api_call("get", "/files/index.html")),
    "api_raw": Surface("api", FILES, api_call("get", "/raw/index.html")),
    "api_commits": Surface("api", FILES, api_call("get", "/commits")),
    "api_commit": Surface("api", FILES, lambda c, t, s: c.api.get(f"/api/spaces/{t.path}/commits/{head_sha(t)}")),
    "page_duplicate": Surface("html", FILES, space_page("/duplicate")),
    "api_duplicate": Surface("api", FILES, api_call("post", "/duplicate", lambda t: {"name": "my-copy"})),
    "page_edit": Surface("html", PUSH, space_page("/edit/main/index.html")),
    "api_file_commit": Surface("api", PUSH, api_call("post", "/files/index.html", new_file_content)),
    "page_rollback": Surface("form", EDIT, hub_post(lambda t: f"/spaces/{t.path}/revisions/1/rollback")),
    "api_rollback": Surface("api", EDIT, api_call("post", "/revisions/1/rollback")),
    "hf_info": Surface("api", FILES, hf_call("get")),
    "hf_runtime": Surface("api", SEE, hf_call("get", "/runtime")),
    "hf_list": Surface("hf_list", SEE, lambda c, t, s: c.api.get("/hf/api/spaces")),
    "hf_tree": Surface("api", FILES, hf_call("get", "/tree/main")),
    "hf_resolve": Surface("api", FILES, lambda c, t, s: c.api.get(f"/hf/spaces/{t.path}/resolve/main/index.html")),
    "hf_duplicate": Surface("api", FILES, hf_call("post", "/duplicate", lambda t: {"repository": "my-hf-copy"})),
    "hf_logs": Surface("api", LOGS, hf_call("get", "/logs/build")),
    "hf_commit": Surface("api", EDIT, hf_call("post", "/commit/main", hf_commit_body, "application/x-ndjson")),
    "hf_variables": Surface("api", EDIT, hf_call("get", "/variables")),
    "hf_restart": Surface("api", EDIT, hf_call("post", "/restart")),
    "hf_settings": Surface("api", ADMIN, hf_call("put", "/settings", lambda t: {"private": t.visibility == "public"})),
    "hf_delete": Surface("api", ADMIN, lambda c, t, s: c.api.generic("DELETE", "/hf/api/repos/delete",
                                                                      json.dumps(hf_repo_body(t)),
                                                                      content_type="application/json")),
    "api_collaborator_remove": Surface("api", ADMIN, lambda c, t, s: c.api.delete(
        f"/api/spaces/{t.path}/collaborators/{VIEWER_NAME}")),
    "api_share_link_revoke": Surface("api", ADMIN, lambda c, t, s: c.api.delete(
        f"/api/spaces/{t.path}/share-links/{new_share_link_id(t)}")),
    # A preview's surfaces get a Target whose label and host are the preview's (World.target).
    "api_previews": Surface("api", PREVIEW, api_call("get", "/previews")),
    "preview_go": Surface("go", PREVIEW, hub_get(lambda t: f"/go/{t.label}", lambda t: {"next": "/"})),
    "preview_proxy_auth": Surface("proxy_auth", PREVIEW, proxy_ask("/internal/proxy/auth", "/", BROWSER_ACCEPT)),
    "preview_proxy_html": Surface("proxy_fallback", PREVIEW, proxy_ask("/internal/proxy/fallback", "/",
                                                                       BROWSER_ACCEPT)),
    "preview_proxy_api": Surface("proxy_fallback", PREVIEW, proxy_ask("/internal/proxy/fallback", "/config", "*/*")),
    "git_clone": Surface("git", FILES, git_call("info/refs", "git-upload-pack")),
    "git_fetch": Surface("git", FILES, git_call("git-upload-pack", "git-upload-pack", "post")),
    "git_push_refs": Surface("git", PUSH, git_call("info/refs", "git-receive-pack")),
    "git_push": Surface("git", PUSH, git_call("git-receive-pack", "git-receive-pack", "post")),
}
PROXY_KINDS = ("proxy_auth", "proxy_fallback")


def credentials(surface: str, who: str) -> tuple[str | None, ...]:
    """What `who` shows the apps domain (None: not a proxy surface)."""
    if SURFACES[surface].kind not in PROXY_KINDS:
        return (None,)
    if who == "anonymous":
        return ("none",)
    if who in ("share", "revoked"):
        return ("cookie",)
    return ("authorization", "x-hf-authorization", "cookie")


CASES = [(surface, visibility, who, credential)
         for surface in EXPECTED for visibility in VISIBILITIES for who in PERSONAS
         for credential in credentials(surface, who)]
CASE_IDS = ["-".join(filter(None, case)) for case in CASES]


# ------------------------------------------------------------------------------ reading answers
def observe(kind: str, resp, target: Target) -> str | int:
    """The answer in EXPECTED's terms."""
    if kind in ("html", "api", "proxy_auth", "git"):
        return resp.status_code
    if kind == "form":
        # A form post that was taken redirects back to the space's pages; one that needs a
        # login first redirects there.
        if resp.status_code == 302:
            return LOGIN if urlsplit(resp["Location"]).path == "/accounts/login/" else DONE
        return resp.status_code
    if kind == "html_list":
        assert resp.status_code == 200, resp.status_code
        return LISTED if f'data-space="{target.path}"' in resp.content.decode() else UNLISTED
    if kind == "api_list":
        assert resp.status_code == 200, resp.content
        names = {f"{s['owner']}/{s['name']}" for s in resp.json()["results"]}
        return LISTED if target.path in names else UNLISTED
    if kind == "hf_list":
        assert resp.status_code == 200, resp.content
        return LISTED if target.path in {s["id"] for s in resp.json()} else UNLISTED
    if kind == "html_comments":
        return SHOWN if resp.status_code == 200 and target.comment in resp.content.decode() else HIDDEN
    if kind == "go":
        # In: a ticket to the space's host (private) or the host itself (public).
        let_in = resp.status_code == 302 and urlsplit(resp["Location"]).netloc == target.host
        return SHOWN if let_in else HIDDEN
    if kind == "proxy_fallback":
        # The space's own answer: its status page (browsers) or 503 JSON naming it (API clients).
        own = resp.status_code == 503 and target.path in resp.content.decode()
        return SHOWN if own else HIDDEN
    raise AssertionError(f"unknown kind {kind}")


def answers_as_missing(kind: str, expected) -> bool:
    """Whether the cell is "no (404)": the answer must be the one for a missing space."""
    return ((kind in ("html", "api", "form") and expected == 404)
            or (kind == "proxy_auth" and expected == 401)
            or (kind == "git" and expected in (401, 404))
            or (kind in ("go", "proxy_fallback") and expected == HIDDEN))


CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


def shape(resp, target: Target) -> tuple:
    """Everything a caller can read from an answer, with the space's own names blanked out
    (and the CSRF token of a page's logout form, which is new on every page)."""
    def blank(text: str) -> str:
        text = CSRF_FIELD.sub('name="csrfmiddlewaretoken" value="<csrf>"', text)
        return text.replace(target.label, "<label>").replace(target.name, "<name>")

    return (resp.status_code, resp.get("Content-Type"), blank(resp.get("Location", "")),
            blank(resp.get("WWW-Authenticate", "")), blank(resp.content.decode()))


# ------------------------------------------------------------------------------ the world
SPACE_SPECS = {"public": ("public-demo", "Aurora lantern", "lantern"),
               "private": ("private-demo", "Borealis compass", "compass")}


def static_repo(title: str) -> dict:
    return {"README.md": f"---\ntitle: {title}\nsdk: static\nemoji: 🧭\n---\n\n# {title}\n",
            "index.html": "<h1>hello</h1>\n", "assets/site.css": "h1 { color: teal }\n"}


def space_cookie(settings, browser: Client, space: Space, label: str = "") -> str:
    """The space cookie a browser gets on its way in (/go -> ticket -> /.demohub/session), or ""
    when /go hands it no ticket (a public space needs none; a hidden one gives none). With
    `label`, the cookie of that host (a branch preview's)."""
    resp = browser.get(f"/go/{label or space.label}", {"next": "/"})
    if resp.status_code != 302:
        return ""
    ticket_target = urlsplit(resp["Location"])
    if ticket_target.path != proxy_access.SESSION_PATH:
        return ""
    headers = {"X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": ticket_target.netloc,
               "X-Demohub-Uri": f"{ticket_target.path}?{ticket_target.query}"}
    resp = Client().get("/internal/proxy/session", headers=headers)
    assert resp.status_code == 302 and "Set-Cookie" in resp, resp
    name, _, rest = resp["Set-Cookie"].partition("=")
    assert name == proxy_access.cookie_name()
    return rest.split(";", 1)[0]


@dataclass
class World:
    """Two spaces of one owner, each with an editor, a viewer, comments and revision 1."""

    settings: object
    people: dict
    tokens: dict
    spaces: dict
    run_on_commit: Callable
    previews: dict = field(default_factory=dict)

    def target(self, visibility: str, *, preview: bool = False) -> Target:
        """The space's names; with `preview`, the label and host of its branch preview."""
        space = self.spaces[visibility]
        name, _, word = SPACE_SPECS[visibility]
        host = self.previews[visibility] if preview else space
        return Target(space.owner.username, space.name, host.label, urlsplit(host.url).netloc, visibility,
                      word, comment_text(name))

    def owner_api(self) -> APIClient:
        client = APIClient(REMOTE_ADDR=next_ip())
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens['owner']}")
        return client

    def caller(self, who: str, space: Space, credential: str | None, label: str = "") -> Caller:
        """`who` as a caller of `space`'s surfaces, showing the apps domain `credential` (the
        cookie of the host `label`, a branch preview's, when given)."""
        if who in ("share", "revoked"):
            return self._link_holder(space, revoked=who == "revoked", label=label)
        user = self.people[who]
        browser, api_client = Client(), APIClient(REMOTE_ADDR=next_ip())
        if user is None:
            return Caller(browser, api_client)
        browser.force_login(user)
        token = self.tokens[who]
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        git = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user.username}:{token}".encode()).decode()}
        if credential == "authorization":
            proxy = {"Authorization": f"Bearer {token}"}
        elif credential == "x-hf-authorization":
            proxy = {"X-HF-Authorization": f"Bearer {token}"}
        elif credential == "cookie":
            proxy = {"X-Demohub-Space-Cookie": space_cookie(self.settings, browser, space, label)}
        else:
            proxy = {}
        return Caller(browser, api_client, proxy, git)

    def _link_holder(self, space: Space, *, revoked: bool, label: str = "") -> Caller:
        owner = self.owner_api()
        base = f"/api/spaces/{space.owner.username}/{space.name}/share-links"
        link = owner.post(base, {"note": "persona matrix"}, format="json")
        assert link.status_code == 201, link.content
        holder = APIClient(REMOTE_ADDR=next_ip())  # a Django test Client: one session for pages and API
        resp = holder.get(f"/s/{link.json()['url'].rsplit('/', 1)[1]}")
        assert resp.status_code == 302 and resp["Location"] == f"/spaces/{space.owner.username}/{space.name}"
        cookie = space_cookie(self.settings, holder, space)
        assert cookie or not space.is_private, "a valid link must let its holder into the private host"
        if label:
            cookie = space_cookie(self.settings, holder, space, label) or cookie
        if revoked:
            with self.run_on_commit():
                assert owner.delete(f"{base}/{link.json()['id']}").status_code == 204
        return Caller(holder, holder, {"X-Demohub-Space-Cookie": cookie})


def comment_text(space_name: str) -> str:
    return f"Quietly impressive work on {space_name}"


@pytest.fixture
def world(settings, people, make_space, make_token, upload, run_on_commit) -> World:
    from runner.archive import ArchiveLimits, snapshot_archive
    from spaces.previews.services import preview_deploy

    tokens = {who: make_token(user) for who, user in people.items() if user is not None}
    built = World(settings, people, tokens, {}, run_on_commit)
    for visibility, (name, title, _) in SPACE_SPECS.items():
        space = make_space(people["owner"], name, sdk="static", visibility=visibility, title=title,
                           editors=[people["editor"]], viewers=[people["viewer"]])
        assert upload(built.owner_api(), space, static_repo(title)).status_code == 202
        comments.comment_create(space=space, author=people["viewer"], body=comment_text(name))
        comments.comment_create(space=space, author=people["owner"], body="Thanks!")
        space = Space.objects.select_related("owner").get(pk=space.pk)
        assert (space.status, space.title) == ("RUNNING", title)
        built.spaces[visibility] = space
        # A branch preview of it, starting (so its host's fallback answers with a status).
        snap = snapshot_archive(io.BytesIO(make_archive(static_repo(title))), settings.SNAPSHOTS_DIR, ArchiveLimits())
        built.previews[visibility] = preview_deploy(space=space, branch="docs", sha="d" * 40, snapshot=snap.path,
                                                    files=set(snap.files), pushed_by_id=space.owner_id)
    return built


# ------------------------------------------------------------------------------ the matrix
@pytest.mark.parametrize("surface, visibility, who, credential", CASES, ids=CASE_IDS)
def test_persona_matrix(world, surface, visibility, who, credential):
    spec, expected = SURFACES[surface], EXPECTED[surface][visibility][who]
    target = world.target(visibility, preview=surface in PREVIEW_SURFACES)
    caller = world.caller(who, world.spaces[visibility], credential, target.label)
    resp = spec.call(caller, target, world.settings)
    got = observe(spec.kind, resp, target)
    assert got == expected, (f"{who} ({credential or 'default credential'}) on the {visibility} space, "
                             f"{surface}: expected {expected}, got {got}: {resp.status_code} {resp.content[:300]!r}")
    if answers_as_missing(spec.kind, expected):
        missing = target.missing()
        assert shape(resp, target) == shape(spec.call(caller, missing, world.settings), missing), (
            f"{who} on the {visibility} space, {surface}: the answer differs from a missing space's")


def test_the_table_covers_every_row_and_column_of_design_section_6():
    assert set(EXPECTED) == set(SURFACES)
    for surface, by_visibility in EXPECTED.items():
        assert set(by_visibility) == set(VISIBILITIES), surface
        for row in by_visibility.values():
            assert tuple(row) == PERSONAS, surface
    assert {spec.row for spec in SURFACES.values()} == set(DESIGN_ROWS)
    # The generated cases enumerate every surface x visibility x persona (the proxy's, once per
    # credential), each under its own id.
    assert {case[:3] for case in CASES} == set(itertools.product(EXPECTED, VISIBILITIES, PERSONAS))
    assert len(set(CASE_IDS)) == len(CASE_IDS) == len(CASES)
    proxy_cases = [c for c in CASES if SURFACES[c[0]].kind in PROXY_KINDS]
    assert {c[3] for c in proxy_cases} == {"authorization", "x-hf-authorization", "cookie", "none"}


# ------------------------------------------------------------------------------ the error field
ERROR_SCENARIOS = ("first start fails", "newer revision fails to start")
# Who may see the space without reading its logs, by visibility (from the table above).
LOOKERS = [(visibility, who) for visibility in VISIBILITIES for who in PERSONAS
           if EXPECTED["api_detail"][visibility][who] == 200 and EXPECTED["api_run_log"][visibility][who] != 200]


@pytest.fixture
def failing_world(world, people, make_space, upload, app_server, hub):
    """make(visibility, scenario) -> a gradio space whose last start failed, so that its error
    quotes the run log, and the lines of that run log."""

    def make(visibility: str, scenario: str) -> tuple[Space, list[str]]:
        name = f"{visibility}-gradio"
        space = make_space(people["owner"], name, sdk="gradio", visibility=visibility, title="Failing lantern",
                           editors=[people["editor"]], viewers=[people["viewer"]])
        readme = "---\nsdk: gradio\n---\n"
        if scenario == "newer revision fails to start":
            port = app_server(space.slot_address("a"))
            app_server(space.slot_address("b"), port)
            readme = f"---\nsdk: gradio\napp_port: {port}\n---\n"
            assert upload(world.owner_api(), space, {"README.md": readme, "app.py": "print(1)\n"}).status_code == 202
        hub.backend.fail_start = True
        assert upload(world.owner_api(), space, {"README.md": readme, "app.py": "print(2)\n"}).status_code == 202
        status = Space.objects.get(pk=space.pk).status
        assert status == ("RUNTIME_ERROR" if scenario == "first start fails" else "RUNNING"), status
        run_log = world.owner_api().get(f"/api/spaces/olive/{name}/logs/run").content.decode()
        lines = [line for line in run_log.splitlines() if line.strip()]
        owners_view = world.owner_api().get(f"/api/spaces/olive/{name}").json()
        # The precondition that makes the test able to fail: the full error quotes the run log.
        assert lines and any(line in owners_view["error"] for line in lines), (run_log, owners_view)
        return Space.objects.select_related("owner").get(pk=space.pk), lines

    return make


@pytest.mark.parametrize("scenario", ERROR_SCENARIOS)
@pytest.mark.parametrize("visibility, who", LOOKERS, ids=["-".join(v) for v in LOOKERS])
def test_error_shown_below_editor_never_quotes_the_run_log(world, failing_world, settings, scenario, visibility,
                                                           who):
    space, run_log_lines = failing_world(visibility, scenario)
    target = Target(space.owner.username, space.name, space.label, urlsplit(space.url).netloc, visibility,
                    "lantern", "")
    caller = world.caller(who, space, "cookie" if who in ("owner", "editor", "viewer", "stranger") else None)

    detail = caller.api.get(f"/api/spaces/{target.path}").json()
    assert detail["status"] == space.status  # "build status only": the status, yes
    shown = {"API detail": detail["error"]}
    if EXPECTED["api_list"][visibility][who] == LISTED:
        listed = [s for s in caller.api.get("/api/spaces").json()["results"] if s["name"] == space.name]
        found = [s for s in caller.api.get("/api/spaces", {"search": "lantern"}).json()["results"]
                 if s["name"] == space.name]
        assert listed and found
        shown.update({"API list": listed[0]["error"], "API search": found[0]["error"]})
    shown["space page"] = caller.browser.get(f"/spaces/{target.path}").content.decode()
    shown["proxy status page"] = SURFACES["proxy_html"].call(caller, target, settings).content.decode()
    shown["proxy API answer"] = SURFACES["proxy_api"].call(caller, target, settings).content.decode()
    leaks = {where: line for where, text in shown.items() for line in run_log_lines if line in text}
    assert not leaks, f"{who} on the {visibility} space ({scenario}) reads run-log text: {leaks}"


# ------------------------------------------------------------------------------ every route is classified
# Every URL pattern of hub.urls is either checked by surfaces of the matrix above or listed,
# with the reason, among the routes no persona row applies to. A new route fails
# test_every_route_is_in_the_matrix_or_explained until it is one or the other.
S = "spaces/<str:owner>/<str:name>"
A = f"api/{S}"
VIEWER_NAME = "vera"  # the viewer of `people` (conftest.py)

ROUTE_SURFACES: dict[str, tuple[str, ...]] = {
    "": ("browse", "browse_search"),
    "users/<str:username>": ("owner_profile",),
    "go/<str:label>": ("go", "preview_go"),
    S: ("page", "page_comments"),
    f"{S}/logs": ("logs_page",),
    f"{S}/analytics": ("analytics_page",),
    f"{S}/settings": ("settings_page",),
    f"{S}/settings/variables": ("page_variable_set",),
    f"{S}/settings/variables/delete": ("page_variable_delete",),
    f"{S}/actions/<str:action>": ("page_restart", "page_force_push"),
    f"{S}/access": ("access_page",),
    f"{S}/comments": ("page_comment_add",),
    f"{S}/like": ("page_like",),
    "api/spaces": ("api_list", "api_search"),
    A: ("api_detail", "api_visibility", "api_delete"),
    f"{A}/revisions": ("api_revisions", "api_upload"),
    f"{A}/revisions/<int:number>": ("api_revision",),
    f"{A}/logs/<str:kind>": ("api_build_log", "api_run_log"),
    f"{A}/analytics": ("api_analytics",),
    f"{A}/restart": ("api_restart",),
    f"{A}/pause": ("api_pause",),
    f"{A}/variables": ("api_variables",),
    f"{A}/variables/<str:key>": ("api_variable_put",),
    f"{A}/secrets": ("api_secrets",),
    f"{A}/secrets/<str:key>": ("api_secret_put",),
    f"{A}/comments": ("api_comments", "api_comment_add"),
    f"{A}/comments/<int:comment_id>": ("api_comment_edit",),
    f"{A}/like": ("api_like",),
    f"{A}/collaborators": ("api_collaborators",),
    f"{A}/collaborators/<str:username>": ("api_collaborator_remove",),
    f"{A}/share-links": ("api_share_links",),
    f"{A}/share-links/<int:link_id>": ("api_share_link_revoke",),
    f"{A}/previews": ("api_previews",),
    f"{S}/badge.svg": ("badge",),
    f"{S}/webhooks": ("webhooks_page",),
    f"{S}/webhooks/<int:webhook_id>/<str:action>": ("page_webhook_off",),
    f"{A}/webhooks": ("api_webhooks", "api_webhook_add"),
    f"{A}/webhooks/<int:webhook_id>": ("api_webhook",),
    f"{A}/webhooks/<int:webhook_id>/test": ("api_webhook_test",),
    f"{A}/webhooks/<int:webhook_id>/deliveries": ("api_webhook_log",),
    f"{S}/tree/<path:rest>": ("files_tree",),
    f"{S}/blob/<path:rest>": ("files_blob",),
    f"{S}/resolve/<path:rest>": ("files_download",),
    f"{S}/edit/<path:rest>": ("page_edit",),
    f"{S}/commits/<path:rev>": ("history_page",),
    f"{S}/commit/<str:sha>": ("commit_page",),
    f"{S}/revisions/<int:number>/rollback": ("page_rollback",),
    f"{S}/duplicate": ("page_duplicate",),
    f"{A}/tree": ("api_tree",),
    f"{A}/tree/<path:path>": ("api_tree_path",),
    f"{A}/files/<path:path>": ("api_file", "api_file_commit"),
    f"{A}/raw/<path:path>": ("api_raw",),
    f"{A}/commits": ("api_commits",),
    f"{A}/commits/<str:sha>": ("api_commit",),
    f"{A}/revisions/<int:number>/rollback": ("api_rollback",),
    f"{A}/duplicate": ("api_duplicate",),
    "hf/api/spaces": ("hf_list",),
    f"hf/api/{S}": ("hf_info",),
    f"hf/api/{S}/<path:rest>": ("hf_runtime", "hf_tree", "hf_duplicate", "hf_logs", "hf_commit", "hf_variables",
                                "hf_restart", "hf_settings"),
    f"hf/{S}/resolve/<path:rest>": ("hf_resolve",),
    "hf/api/repos/<str:action>": ("hf_delete",),
    "internal/proxy/auth": ("proxy_auth", "preview_proxy_auth"),
    "internal/proxy/fallback": ("proxy_html", "proxy_api", "preview_proxy_html", "preview_proxy_api"),
    # Every "cookie" case of the proxy surfaces gets its cookie here (space_cookie above).
    "internal/proxy/session": ("proxy_auth", "proxy_html", "proxy_api", "preview_proxy_auth", "preview_proxy_html",
                               "preview_proxy_api"),
    f"{S}/info/refs": ("git_clone", "git_push_refs"),
    f"{S}/git-upload-pack": ("git_fetch",),
    f"{S}/git-receive-pack": ("git_push",),
}

ROUTES_OUTSIDE_THE_MATRIX: dict[str, str] = {
    "new": "creates a space of the caller's own: no existing space, no role",
    "accounts/signup/": "the caller's own account",
    "accounts/login/": "the caller's own account (rate limits: test_accounts_pages.py, test_revocation.py)",
    "accounts/logout/": "the caller's own session (its space cookies end: test_revocation.py)",
    "accounts/password/": "the caller's own account",
    "accounts/password/done/": "the caller's own account",
    "settings/": "the caller's own account",
    "settings/tokens": "the caller's own tokens",
    "settings/tokens/<int:token_id>/revoke": "the caller's own tokens (test_accounts_pages.py)",
    "api/users": "sign-up: the caller's own account",
    "api/users/<str:username>": "a user's public profile: no space (test_discovery.py)",
    "api/token": "the caller's own tokens",
    "api/tokens": "the caller's own tokens",
    "api/tokens/<int:token_id>": "the caller's own tokens (test_api_accounts.py)",
    "api/me": "the caller's own account",
    "api/schema": "the OpenAPI schema: public, no space",
    "readyz": "the public readiness probe: no space",
    "i18n/setlang/": "the language selector: a cookie in the caller's own browser, no space, no database "
                     "(test_i18n.py)",
    "healthz": "the public liveness probe: no space, touches nothing (test_operations.py)",
    "metrics": "operators only, by METRICS_TOKEN alone: every persona's session or API token without it gets 401, "
               "and the figures name no space (test_operations.py)",
    "s/<str:token>": "redeems a share link: the matrix's share and revoked personas enter through it "
                     "(World._link_holder); its own rules: test_private_access.py",
    f"{S}/comments/<int:comment_id>/<str:action>": "a comment's author or the space owner acts on it, by the "
                                                   "services api_comment_edit checks; the page answers by a "
                                                   "redirect with a message (test_comments.py)",
    "hf/api/whoami-v2": "the caller's own account, as huggingface_hub's whoami reads it (test_hfapi_clients.py)",
    "hf/api/validate-yaml": "a constant answer about the README text sent: no space, no data (test_hfapi_repo.py)",
    "hf/<path:rest>": "a constant 404 for what the Hugging Face face does not have (models, datasets): no space is "
                      "looked up (test_hfapi_clients.py)",
    "api/hardware": "the hub's hardware tiers: public, no space (test_nodes.py)",
    "api/nodes": "operators only (staff): every persona's session or API token gets 403, none 401 "
                 "(test_every_persona_is_refused_the_node_api below, test_nodes.py)",
    "api/nodes/<str:name>": "operators only (staff), as api/nodes",
    "api/nodes/<str:name>/<str:action>": "operators only (staff), as api/nodes",
    "internal/proxy/wake": "a sleeping space's hold: the proxy's key and the same proxy_role as "
                           "internal/proxy/auth (test_sleep.py)",
}
# Django's admin: staff only, behind its own login (rate limited like the hub's).
ADMIN_PREFIX = "admin/"


def hub_routes() -> list[str]:
    """Every pattern of hub.urls, nested includes joined (`api/` + `spaces/<str:owner>/...`)."""
    from django.urls import URLResolver, get_resolver

    def walk(resolver, prefix: str):
        for pattern in resolver.url_patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern, route)
            else:
                yield route

    return list(walk(get_resolver("hub.urls"), ""))


def test_every_route_is_in_the_matrix_or_explained():
    routes = hub_routes()
    assert any(r.startswith(ADMIN_PREFIX) for r in routes)            # the walk reaches includes
    unclassified = [r for r in routes if not r.startswith(ADMIN_PREFIX)
                    and r not in ROUTE_SURFACES and r not in ROUTES_OUTSIDE_THE_MATRIX]
    assert not unclassified, (
        "routes the persona matrix does not cover: add surfaces and EXPECTED rows for them, or "
        f"(for a route no space role applies to) a reason in ROUTES_OUTSIDE_THE_MATRIX: {unclassified}")
    stale = (set(ROUTE_SURFACES) | set(ROUTES_OUTSIDE_THE_MATRIX)) - set(routes)
    assert not stale, f"classified routes that hub.urls no longer has: {sorted(stale)}"
    assert not set(ROUTE_SURFACES) & set(ROUTES_OUTSIDE_THE_MATRIX)


def test_every_surface_is_filed_under_its_route():
    named = {surface for surfaces in ROUTE_SURFACES.values() for surface in surfaces}
    assert named <= set(SURFACES), sorted(named - set(SURFACES))
    assert set(SURFACES) <= named, f"surfaces filed under no route: {sorted(set(SURFACES) - named)}"


@pytest.mark.parametrize("who", ["owner", "editor", "viewer", "stranger", "anonymous"])
@pytest.mark.parametrize("call", ["get /api/nodes", "get /api/nodes/n1", "post /api/nodes/n1/cordon",
                                  "post /api/nodes/n1/remove"])
def test_every_persona_is_refused_the_node_api(people, api, who, call):
    """The node routes (spaces/nodes/api.py) are the operators': no space role opens them."""
    from spaces.nodes.models import Node

    Node.objects.create(name="n1", address="10.9.0.2", queue="node.n1", starts_queue="node.n1.starts")
    method, path = call.split()
    answer = getattr(api(people[who]), method)(path)
    assert answer.status_code == (401 if who == "anonymous" else 403), answer.content
    assert Node.objects.get(name="n1").state == "ready" and not Node.objects.get(name="n1").cordoned
