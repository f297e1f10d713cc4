"""Keep each space's search vector in its table row (compressed) instead of out of line.

A tsvector over 2 kB is otherwise moved to TOAST storage, and ranking then reads every vector
back at about 3 µs per space, which the planner does not cost: searches over 10,000 spaces
missed their 50 ms p95 (bench/browse_search.py). The data step rewrites existing vectors so
they move into the row.
"""
from django.db import migrations


def rewrite_vectors(apps, schema_editor):
    from spaces.records.search import space_document

    apps.get_model("spaces", "Space").objects.update(search_vector=space_document())


class Migration(migrations.Migration):
    dependencies = [("spaces", "0003_sleep_mode")]

    operations = [
        migrations.RunSQL("ALTER TABLE spaces_space ALTER COLUMN search_vector SET STORAGE MAIN",
                          "ALTER TABLE spaces_space ALTER COLUMN search_vector SET STORAGE EXTENDED"),
        migrations.RunPython(rewrite_vectors, migrations.RunPython.noop),
    ]
