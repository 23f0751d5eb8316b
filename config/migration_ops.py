"""Migration operations that more than one app's migrations use."""

from django.db import migrations


def drop_pattern_indexes(*indexes: tuple[str, str, str]) -> migrations.RunPython:
    """Drop PostgreSQL's second index on indexed varchar columns, the one for LIKE prefix
    searches (varchar_pattern_ops), given as (index name, table, column): nothing here searches
    ids by prefix, and each was one more index to write on every insert and status change.
    Other databases have none of them. Reversible."""

    def drop(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for name, _table, _column in indexes:
                schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")

    def restore(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            quote = schema_editor.quote_name
            for name, table, column in indexes:
                schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON "
                                      f"{quote(table)} ({quote(column)} varchar_pattern_ops)")

    return migrations.RunPython(drop, restore)
