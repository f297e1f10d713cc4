
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('spaces', '0010_previews'),
    ]

    operations = [
        migrations.CreateModel(
            name='Node',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=63, unique=True)),
                ('address', models.CharField(max_length=255)),
                ('docker_endpoint', models.CharField(blank=True, max_length=255)),
                ('registry', models.CharField(blank=True, max_length=255)),
                ('spaces_subnet', models.CharField(blank=True, max_length=64)),
                ('queue', models.CharField(max_length=120)),
                ('starts_queue', models.CharField(max_length=120)),
                ('cpus', models.FloatField(default=1.0)),
                ('memory_bytes', models.BigIntegerField(default=0)),
                ('gpus', models.JSONField(blank=True, default=list)),
                ('labels', models.JSONField(blank=True, default=dict)),
                ('can_build', models.BooleanField(default=True)),
                ('cordoned', models.BooleanField(default=False)),
                ('state', models.CharField(choices=[('ready', 'Ready'), ('draining', 'Draining'), ('lost', 'Lost'), ('removed', 'Removed')], default='ready', max_length=16)),
                ('epoch', models.PositiveIntegerField(default=1)),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                ('registered_at', models.DateTimeField(auto_now_add=True)),
                ('state_changed_at', models.DateTimeField(blank=True, null=True)),
                ('note', models.CharField(blank=True, max_length=300)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.AddField(
            model_name='space',
            name='hardware',
            field=models.CharField(blank=True, max_length=63),
        ),
        migrations.AddField(
            model_name='space',
            name='placement',
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.AddField(
            model_name='space',
            name='tier',
            field=models.CharField(blank=True, max_length=63),
        ),
        migrations.AddField(
            model_name='space',
            name='node',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='spaces', to='spaces.node'),
        ),
        migrations.AddField(
            model_name='space',
            name='node_a',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='spaces.node'),
        ),
        migrations.AddField(
            model_name='space',
            name='node_b',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='spaces.node'),
        ),
    ]
