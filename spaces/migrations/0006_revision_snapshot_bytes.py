from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("spaces", "0005_encrypt_secrets")]

    operations = [
        migrations.AddField(model_name="revision", name="snapshot_bytes", field=models.BigIntegerField(default=0)),
    ]
