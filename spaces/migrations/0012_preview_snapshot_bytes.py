import os

from django.db import migrations, models


def sizes_of_existing_previews(apps, schema_editor):
    """The previews made before the field count what their snapshot holds on disk."""
    Preview = apps.get_model("spaces", "Preview")
    for preview in Preview.objects.exclude(snapshot_path=""):
        total = 0
        for root, _dirs, files in os.walk(preview.snapshot_path):
            total += sum(os.lstat(os.path.join(root, name)).st_size for name in files)
        Preview.objects.filter(pk=preview.pk).update(snapshot_bytes=total)


class Migration(migrations.Migration):

    dependencies = [
        ('spaces', '0011_nodes'),
    ]

    operations = [
        migrations.AddField(
            model_name='preview',
            name='snapshot_bytes',
            field=models.BigIntegerField(default=0),
        ),
        migrations.RunPython(sizes_of_existing_previews, migrations.RunPython.noop),
    ]
