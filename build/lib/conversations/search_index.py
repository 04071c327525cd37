"""The full-text index of message text and conversation titles (queried by search.py).

SQLite: two FTS5 tables with external content (the text stays in its own table, the
index holds only the words), kept in step by triggers on insert, update and delete.
PostgreSQL: GIN indexes on ``to_tsvector('simple', ...)`` of the same two columns, which
the database keeps in step by itself, punctuation first made spaces: PostgreSQL's parser
would keep "os.path.join", "foo/bar.py" or an e-mail address as one word, and skip what
looks like an HTML tag, where FTS5 (and the search's own reading of a query) sees plain
words. Migration 0006 creates them.

Django rebuilds a SQLite table for many schema changes (copy, drop, rename), and dropping
a table drops its triggers; so after every ``migrate`` the missing triggers are put back
and the index rebuilt from the text (``sqlite_triggers_ensure``).
"""

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

MESSAGE_FTS = "conversations_message_fts"
TITLE_FTS = "conversations_conversation_fts"
MESSAGE_INDEX = "conversations_message_search"
TITLE_INDEX = "conversations_conversation_search"
# Letters and digits make words, case is folded, accents are kept (as PostgreSQL's
# 'simple' configuration does); two- and three-character prefixes have their own index,
# so the first letters typed find words fast.
FTS_OPTIONS = "tokenize='unicode61 remove_diacritics 0', prefix='2 3'"

# (indexed table, its text column, FTS table)
_SQLITE_SOURCES = [
    ("conversations_message", "content", MESSAGE_FTS),
    ("conversations_conversation", "title", TITLE_FTS),
]


def postgresql_document(column: str) -> str:
    """The ``tsvector`` of a text column, as indexed; a query must use it verbatim."""
    return f"to_tsvector('simple', regexp_replace({column}, '[[:punct:]]', ' ', 'g'))"


def _sqlite_tables() -> list[str]:
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5({column}, content='{table}', "
        f"content_rowid='id', {FTS_OPTIONS})"
        for table, column, fts in _SQLITE_SOURCES
    ]


def _sqlite_triggers() -> dict[str, str]:
    """Trigger name -> its CREATE statement. An external-content index must be told the
    old text to forget it, so updates and deletes pass ``old`` values."""
    triggers = {}
    for table, column, fts in _SQLITE_SOURCES:
        add = f"INSERT INTO {fts}(rowid, {column}) VALUES (new.id, new.{column});"
        forget = (
            f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column});"
        )
        triggers[f"{fts}_insert"] = f"AFTER INSERT ON {table} BEGIN {add} END"
        triggers[f"{fts}_delete"] = f"AFTER DELETE ON {table} BEGIN {forget} END"
        triggers[f"{fts}_update"] = f"AFTER UPDATE OF {column} ON {table} BEGIN {forget} {add} END"
    return {name: f"CREATE TRIGGER IF NOT EXISTS {name} {body}" for name, body in triggers.items()}


def _sqlite_rebuild(cursor) -> None:
    for _table, _column, fts in _SQLITE_SOURCES:
        cursor.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")


def index_create(schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in [*_sqlite_tables(), *_sqlite_triggers().values()]:
            schema_editor.execute(statement)
        with schema_editor.connection.cursor() as cursor:
            _sqlite_rebuild(cursor)
    elif vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX {MESSAGE_INDEX} ON conversations_message "
            f"USING gin (({postgresql_document('content')}))"
        )
        schema_editor.execute(
            f"CREATE INDEX {TITLE_INDEX} ON conversations_conversation "
            f"USING gin (({postgresql_document('title')}))"
        )


def index_drop(schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for name in _sqlite_triggers():
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
        for _table, _column, fts in _SQLITE_SOURCES:
            schema_editor.execute(f"DROP TABLE IF EXISTS {fts}")
    elif vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {MESSAGE_INDEX}")
        schema_editor.execute(f"DROP INDEX IF EXISTS {TITLE_INDEX}")


def sqlite_triggers_ensure(connection: BaseDatabaseWrapper) -> list[str]:
    """Put back the triggers a table rebuild dropped, then rebuild the index, whose
    text may have changed meanwhile. Returns the names of the triggers put back."""
    if connection.vendor != "sqlite":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'trigger')")
        existing = {name for name, _type in cursor.fetchall()}
        if MESSAGE_FTS not in existing:
            return []  # migrated to a state before the index
        missing = {
            name: statement
            for name, statement in _sqlite_triggers().items()
            if name not in existing
        }
        for statement in missing.values():
            cursor.execute(statement)
        if missing:
            _sqlite_rebuild(cursor)
    return list(missing)
