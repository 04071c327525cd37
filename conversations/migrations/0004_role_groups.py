from django.contrib.auth.management import create_permissions
from django.db import migrations

from conversations import roles


def role_groups_create(apps, schema_editor):
    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    roles.role_groups_create(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def role_groups_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=[roles.MEMBER, roles.REVIEWER, roles.ADMIN]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0003_users_roles_limits"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("sessions", "0001_initial"),
    ]

    operations = [migrations.RunPython(role_groups_create, role_groups_delete)]
