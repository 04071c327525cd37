"""The admin's log named deleted conversations by their titles (and images and presets by
the names users gave them), which its "recent actions" kept showing; they are now named by
number, as the models' ``__str__`` names them."""

from django.db import migrations
from django.db.models import F, Value
from django.db.models.functions import Concat

NAMES = {"conversation": "Conversation ", "attachment": "Image ", "preset": "Preset "}


def log_entries_name_by_number(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType").objects.filter(
        app_label="conversations", model__in=NAMES
    )
    log_entries = apps.get_model("admin", "LogEntry").objects
    for content_type in content_types:
        log_entries.filter(content_type=content_type).update(
            object_repr=Concat(Value(NAMES[content_type.model]), F("object_id"))
        )


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0002_reviewaccess_image_reads"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(log_entries_name_by_number, migrations.RunPython.noop)]
