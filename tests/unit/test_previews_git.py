"""Branch previews through the real `git` client against a live hub (issue 10 item 8): a pushed
branch becomes a preview, the push after the last allowed one is refused before any ref moves
with a `remote:` line naming the limit, and `git push origin :branch` removes the preview."""
from __future__ import annotations

import pytest

from spaces.records.models import Preview, Space
from spaces.repos import store
from tests.git_client import run_git
from tests.unit.test_git_http import commit_files, url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hub")]
README = "---\ntitle: Site\nsdk: static\n---\n# hi\n"


def pushed_site(live_server, space, token: str, tmp_path):
    """(space, its git remote as its owner, a work tree) once `main` (a static site) is pushed."""
    remote = url(live_server, space.owner.username, space.name, space.owner.username, token)
    d = tmp_path / "w"
    d.mkdir()
    run_git(d, "init", "-q", "-b", "main")
    commit_files(d, {"README.md": README, "index.html": "<h1>main</h1>\n"}, "main")
    run_git(d, "push", "-q", remote, "main")
    return space, remote, d


def test_branches_become_previews_up_to_the_limit_and_go_with_their_branch(live_server, make_user, make_space,
                                                                           make_token, tmp_path, settings):
    settings.PREVIEW_MAX_PER_SPACE = 2
    olive = make_user("olive")
    space, remote, d = pushed_site(live_server, make_space(olive, "site", sdk="static"), make_token(olive), tmp_path)
    run_git(d, "checkout", "-q", "-b", "feature/one")
    commit_files(d, {"index.html": "<h1>one</h1>\n"}, "one")
    out = run_git(d, "push", remote, "feature/one")
    assert "branch feature/one builds as a preview" in out.stderr, out.stderr
    one = Preview.objects.get(space=space, branch="feature/one")
    assert (one.status, one.commit) == (Preview.Status.RUNNING, run_git(d, "rev-parse", "HEAD").stdout.strip())
    assert (settings.SITES_DIR / one.label / "index.html").read_text() == "<h1>one</h1>\n"
    # main is untouched: its revision and site.
    main = Space.objects.get(pk=space.pk)
    assert main.running_revision.number == 1 and (settings.SITES_DIR / main.label / "index.html").read_text() == \
        "<h1>main</h1>\n"
    # Two more new branches in one push: the second of them would be one too many; nothing moves.
    run_git(d, "branch", "two")
    run_git(d, "branch", "three")
    out = run_git(d, "push", remote, "two", "three", check=False)
    assert out.returncode != 0
    assert "remote: Demohub refused this push: branch 'three' would be preview number 3" in out.stderr, out.stderr
    assert "PREVIEW_MAX_PER_SPACE" in out.stderr
    assert set(store.branches(space)) == {"main", "feature/one"}
    # Deleting the branch removes its preview: row, route, site.
    run_git(d, "push", "-q", remote, ":feature/one")
    assert not Preview.objects.filter(space=space).exists()
    assert not (settings.PROXY_ROUTES_DIR / f"{one.label}.conf").exists()
    assert not (settings.SITES_DIR / one.label).exists()
    run_git(d, "push", "-q", remote, "two", "three")   # room again
    assert set(Preview.objects.filter(space=space).values_list("branch", flat=True)) == {"two", "three"}


def test_a_branch_over_the_owner_s_storage_quota_is_refused_before_its_ref_moves(live_server, make_user, make_space,
                                                                               make_token, tmp_path, settings):
    from spaces.lifecycle.quotas import storage_used

    olive = make_user("olive")
    space, remote, d = pushed_site(live_server, make_space(olive, "site", sdk="static"), make_token(olive), tmp_path)
    run_git(d, "checkout", "-q", "-b", "small")
    commit_files(d, {"a.txt": "a" * 10_000}, "small")
    run_git(d, "push", "-q", remote, "small")
    used = storage_used(olive.pk)
    preview = Preview.objects.get(space=space, branch="small")
    assert preview.snapshot_bytes > 10_000 and used > preview.snapshot_bytes   # main's revision and the preview
    settings.QUOTA_STORAGE_PER_USER = used + 5_000
    run_git(d, "checkout", "-q", "-b", "big")
    commit_files(d, {"b.txt": "b" * 20_000}, "big")
    out = run_git(d, "push", remote, "big", check=False)
    assert out.returncode != 0
    assert "remote: Demohub refused this push: big:" in out.stderr and "one user may store" in out.stderr, out.stderr
    assert set(store.branches(space)) == {"main", "small"}
    assert not Preview.objects.filter(space=space, branch="big").exists()
    # Updating a preview counts what it adds to the files it replaces.
    run_git(d, "checkout", "-q", "small")
    commit_files(d, {"a.txt": "a" * 12_000}, "a little more")
    run_git(d, "push", "-q", remote, "small")
    assert Preview.objects.get(space=space, branch="small").snapshot_bytes == preview.snapshot_bytes + 2_000
