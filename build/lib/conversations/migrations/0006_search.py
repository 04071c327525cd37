"""The full-text index for search: FTS5 tables and triggers on SQLite, GIN indexes on
PostgreSQL (see conversations/search_index.py)."""

from django.db import migrations

from conversations import search_index


def index_create(apps, schema_editor):
    search_index.index_create(schema_editor)


def index_drop(apps, schema_editor):
    search_index.index_drop(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0005_message_tree_settings_review")]

    operations = [migrations.RunPython(index_create, index_drop)]
