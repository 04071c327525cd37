from django.db import migrations

from accounts import roles


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

    operations = [migrations.RunPython(roles.role_groups_migrate, role_groups_delete)]
