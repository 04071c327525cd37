"""The first-run setup's record and the login lockouts. An install that has users was set
up already: its record is written, so that deleting every user later cannot reopen the
setup. The Admin role gets the new models' permissions."""

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from accounts import roles


def setup_record_for_installs_with_users(apps, schema_editor) -> None:
    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    first = user_model.objects.order_by("-is_superuser", "pk").first()
    if first is not None:
        record_model = apps.get_model("accounts", "SetupRecord")
        record_model.objects.get_or_create(pk=1, defaults={"first_admin": first.username})


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='LoginLockout',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('scope', models.CharField(choices=[('username_at_address', 'One username from one address'), ('address', 'Every username from one address'), ('username', 'One username from every address'), ('signup', 'Signing up from one address')], max_length=20, verbose_name='what is locked')),
                ('username', models.CharField(blank=True, max_length=150, verbose_name='username')),
                ('address', models.CharField(blank=True, max_length=64, verbose_name='address')),
                ('locked_until', models.DateTimeField(verbose_name='locked until')),
            ],
            options={
                'verbose_name': 'login lockout',
                'verbose_name_plural': 'login lockouts',
                'ordering': ['-locked_until'],
                'constraints': [models.UniqueConstraint(fields=('scope', 'username', 'address'), name='one_lockout_per_scope_and_key')],
            },
        ),
        migrations.CreateModel(
            name='SetupRecord',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ('closed_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('first_admin', models.CharField(help_text="The first admin's username.", max_length=150)),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(('id', 1)), name='one_setup_record')],
            },
        ),
        migrations.RunPython(setup_record_for_installs_with_users, migrations.RunPython.noop),
        migrations.RunPython(roles.role_groups_migrate, migrations.RunPython.noop),
    ]
