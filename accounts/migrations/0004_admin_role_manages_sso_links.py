"""The Admin role gets the permissions of single sign-on's identity provider links."""

from django.db import migrations

from accounts import roles


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_verbose_names'),
        ('socialaccount', '0006_alter_socialaccount_extra_data'),
    ]

    operations = [
        migrations.RunPython(roles.role_groups_migrate, migrations.RunPython.noop),
    ]
