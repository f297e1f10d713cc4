"""Migration 0009_repos on data made by the code before it: one commit per revision, in order,
failed ones included, empty when the tree did not change, a pruned snapshot's commit saying so;
running it again changes nothing."""
from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from importlib import import_module

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from runner.archive import snapshot_archive
from spaces.repos import store
from tests.archives import make_archive

BEFORE = [("spaces", "0008_webhooks")]
AFTER = [("spaces", "0009_repos")]


def _git(path, *args):
    return subprocess.run(["git", "--git-dir", str(path), *args], capture_output=True, check=True,
                          text=True).stdout.strip()


@pytest.mark.django_db(transaction=True)
def test_existing_revisions_become_one_commit_each(settings, tmp_path):
    settings.SNAPSHOTS_DIR = tmp_path / "snapshots"
    settings.REPOS_DIR = tmp_path / "repos"
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    User, Space, Revision = (apps.get_model(*m) for m in (("auth", "User"), ("spaces", "Space"),
                                                           ("spaces", "Revision")))
    olive = User.objects.create(username="olive", email="olive@example.org")
    space = Space.objects.create(owner=olive, name="demo", sdk="static", label="olive-demo", address_index=1)
    empty = Space.objects.create(owner=olive, name="empty", sdk="static", label="olive-empty", address_index=2)
    # Snapshots as the upload code before git made them.
    one = snapshot_archive(io.BytesIO(make_archive({"index.html": "one\n"})), settings.SNAPSHOTS_DIR)
    two = snapshot_archive(io.BytesIO(make_archive({"index.html": "two\n", "a/b.txt": "b\n"})), settings.SNAPSHOTS_DIR)
    pruned = snapshot_archive(io.BytesIO(make_archive({"gone.txt": "x\n"})), settings.SNAPSHOTS_DIR)
    shutil.rmtree(pruned.path)
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for number, snap, status in ((1, one, "succeeded"), (2, two, "failed"), (3, two, "succeeded"),
                                 (4, pruned, "succeeded")):
        rev = Revision.objects.create(space=space, number=number, content_hash=snap.content_hash,
                                      snapshot_path=str(snap.path), created_by=olive, status=status)
        Revision.objects.filter(pk=rev.pk).update(created_at=start + timedelta(days=number))

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    Revision = apps.get_model("spaces", "Revision")
    revs = list(Revision.objects.filter(space_id=space.pk).order_by("number"))
    path = settings.REPOS_DIR / f"{space.pk}.git"
    log = _git(path, "log", "--reverse", "--format=%H|%P|%an <%ae>|%ad|%s", "--date=iso-strict", "main").splitlines()
    assert [line.split("|")[0] for line in log] == [r.commit for r in revs]
    assert all(line.split("|")[2] == "olive <olive@example.org>" for line in log)
    assert log[0].split("|")[3] == "2026-01-03T03:04:05+00:00"
    assert [r.message for r in revs][:3] == ["Revision 1", "Revision 2", "Revision 3"]
    assert "pruned" in revs[3].message
    # Revision 3 has revision 2's tree (an empty commit), the pruned one keeps the previous tree.
    trees = [_git(path, "rev-parse", f"{r.commit}^{{tree}}") for r in revs]
    assert trees[1] == trees[2] == trees[3] != trees[0]
    assert _git(path, "show", f"{revs[0].commit}:index.html") == "one"
    assert [_git(path, "rev-parse", f"refs/demohub/revisions/{r.number}") for r in revs] == [r.commit for r in revs]
    assert not (settings.REPOS_DIR / f"{empty.pk}.git").exists()   # no revision, no repository yet

    # Idempotent: running the data step again adds nothing.
    migration = import_module("spaces.migrations.0009_repos")
    migration.commit_revisions(apps, None)
    assert _git(path, "rev-parse", "main") == revs[-1].commit
    assert store.head(space) == revs[-1].commit

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
