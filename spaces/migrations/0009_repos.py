"""Every space becomes a git repository (issue 10): Revision.commit and .message,
Space.allow_force_push, and one commit on `main` per existing revision.

The data migration walks each space's revisions in order, failed and cancelled ones included,
and makes one commit for each (author and date from the revision; an empty commit when the
tree did not change), kept reachable as refs/demohub/revisions/<n>. The tree comes from the
revision's snapshot folder. When housekeeping already pruned that folder, the files are gone
for good: the commit keeps the previous commit's tree (an empty tree for a first revision) and
its message says the files were pruned, so the history still has one commit per revision and
nothing pretends to be what it is not.

Idempotent: a revision that already has its commit is skipped, and a revision whose
refs/demohub/revisions/<n> exists (a run stopped between git and the database) reuses it.
"""
from pathlib import Path

from django.db import migrations, models

PRUNED = ("Revision {n} (its files were pruned before this space had a git repository: "
          "this commit keeps the previous tree)")


def commit_revisions(apps, schema_editor):
    from spaces.repos import store

    Space = apps.get_model("spaces", "Space")
    Revision = apps.get_model("spaces", "Revision")
    for space in Space.objects.order_by("pk").iterator():
        revisions = list(Revision.objects.filter(space_id=space.pk).select_related("created_by").order_by("number"))
        if not revisions:
            continue
        path = store.ensure_repo(space)
        for rev in revisions:
            if rev.commit:
                continue
            ref = f"{store.REVISION_REFS}{rev.number}"
            existing = store.git(path, "rev-parse", "-q", "--verify", ref, check=False).stdout.decode().strip()
            if existing:
                message = store.git(path, "log", "-1", "--format=%B", existing).stdout.decode().strip()
                Revision.objects.filter(pk=rev.pk).update(commit=existing, message=message)
                continue
            parent = store.head(space)
            snapshot = Path(rev.snapshot_path) if rev.snapshot_path else None
            if snapshot is not None and snapshot.is_dir():
                tree = store.write_tree_from_directory(space, snapshot)
                message = f"Revision {rev.number}"
            else:
                tree = store.tree_of(space, parent) if parent else store.write_tree_with_changes(
                    space, None, additions={})
                message = PRUNED.format(n=rev.number)
            sha = store.commit_tree(space, tree, [parent] if parent else [], author=rev.created_by,
                                    message=message, date=rev.created_at)
            store.update_ref(space, "refs/heads/main", sha, parent, reason=f"migration: revision {rev.number}")
            store.set_revision_ref(space, rev.number, sha)
            Revision.objects.filter(pk=rev.pk).update(commit=sha, message=message)


class Migration(migrations.Migration):

    dependencies = [
        ("spaces", "0008_webhooks"),
    ]

    operations = [
        migrations.AddField(
            model_name="revision",
            name="commit",
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.AddField(
            model_name="revision",
            name="message",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="space",
            name="allow_force_push",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(commit_revisions, migrations.RunPython.noop),
    ]
