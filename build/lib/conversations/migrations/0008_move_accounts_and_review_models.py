"""UserLimits, ModelAccess and Invitation move to the accounts app; Flag, ReviewAccess and
ModelPrice to the review app (accounts 0001 and review 0001 take them into their state).

The tables are renamed to the new apps' default names rather than kept through
Meta.db_table, so the models read as if they had always lived there; a rename keeps every
row and is a cheap metadata change on SQLite and PostgreSQL. Their content types follow
them too, so the permissions granted to the role groups and the admin's log keep pointing
at the right models.
"""

from django.conf import settings
from django.db import migrations

MOVED = {
    "accounts": ["userlimits", "modelaccess", "invitation"],
    "review": ["flag", "reviewaccess", "modelprice"],
}


def _content_types_relabel(apps, *, forwards: bool) -> None:
    """Give each moved model's content type its new app label (or back its old one).

    Where a row for the target label exists already (made by an earlier run of Django's
    post-migrate step), its permissions take over those of the old row, with the groups and
    users holding them, and the old row goes.
    """
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    log_entry_model = apps.get_model("admin", "LogEntry")
    for app_label, models in MOVED.items():
        source, target = ("conversations", app_label) if forwards else (app_label, "conversations")
        for model in models:
            old = content_type_model.objects.filter(app_label=source, model=model).first()
            if old is None:
                continue
            new = content_type_model.objects.filter(app_label=target, model=model).first()
            if new is None:
                old.app_label = target
                old.save(update_fields=["app_label"])
                continue
            for permission in permission_model.objects.filter(content_type=old):
                kept = permission_model.objects.filter(
                    content_type=new, codename=permission.codename
                ).first()
                if kept is None:
                    permission.content_type = new
                    permission.save(update_fields=["content_type"])
                    continue
                for group in group_model.objects.filter(permissions=permission):
                    group.permissions.add(kept)
                for user in user_model.objects.filter(user_permissions=permission):
                    user.user_permissions.add(kept)
                permission.delete()
            log_entry_model.objects.filter(content_type=old).update(content_type=new)
            old.delete()


def content_types_move(apps, schema_editor) -> None:
    _content_types_relabel(apps, forwards=True)


def content_types_move_back(apps, schema_editor) -> None:
    _content_types_relabel(apps, forwards=False)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0007_review_permissions_usage_index"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name=model, table=f"{app_label}_{model}")
                for app_label, models in MOVED.items()
                for model in models
            ],
            state_operations=[
                migrations.DeleteModel(name=model)
                for models in MOVED.values()
                for model in models
            ],
        ),
        migrations.RunPython(content_types_move, content_types_move_back),
    ]
