from django.db import migrations

from accounts.roles import role_groups_migrate


class Migration(migrations.Migration):
    """The Admin role manages API keys too (accounts/roles.py, ADMIN_APPS)."""

    dependencies = [
        ("api", "0001_initial"),
        ("accounts", "0002_setup_record_login_lockouts"),
    ]

    operations = [migrations.RunPython(role_groups_migrate, migrations.RunPython.noop)]
