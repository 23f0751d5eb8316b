"""Migration operations that more than one app's migrations use."""

from collections.abc import Callable

from django.db import migrations


def _drop_on_postgresql(indexes: tuple[tuple[str, str, str], ...],
                        columns: Callable[[Callable[[str], str], str], str]
                        ) -> migrations.RunPython:
    """Drop indexes given as (index name, table, column) on PostgreSQL, and make them again on
    the way back, over `columns(quote, column)`. Other databases are left alone."""

    def drop(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for name, _table, _column in indexes:
                schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")

    def restore(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            quote = schema_editor.quote_name
            for name, table, column in indexes:
                schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON "
                                      f"{quote(table)} ({columns(quote, column)})")

    return migrations.RunPython(drop, restore)


def drop_pattern_indexes(*indexes: tuple[str, str, str]) -> migrations.RunPython:
    """Drop PostgreSQL's second index on indexed varchar columns, the one for LIKE prefix
    searches (varchar_pattern_ops), given as (index name, table, column): nothing here searches
    ids by prefix, and each was one more index to write on every insert and status change.
    Other databases have none of them. Reversible."""
    return _drop_on_postgresql(
        indexes, lambda quote, column: f"{quote(column)} varchar_pattern_ops")


def drop_plain_page_indexes(*indexes: tuple[str, str, str]) -> migrations.RunPython:
    """Drop, on PostgreSQL, a model's plain (scope, id DESC) index, given as (index name, table,
    scope column), where its `id COLLATE "C"` twin (messaging migration 0004) is what the list
    pages read: a second index of the same rows, written at every change. The model keeps
    declaring it for SQLite, which has no twin. Reversible."""
    return _drop_on_postgresql(
        indexes, lambda quote, column: f"{quote(column)}, {quote('id')} DESC")
