"""Hand-built SQL for hot paths that write several rows in one statement (PostgreSQL's
data-modifying WITH clauses). Table and column names come from the models; every value is a
parameter, prepared by its field exactly as the ORM would prepare it."""

import functools

from django.db import connection
from django.db.models import AutoField, Field, Model


@functools.cache
def insert_select_sql(model: type[Model], source: str) -> tuple[str, tuple[Field, ...]]:
    """`INSERT INTO <model's table> (...) SELECT %s, ... FROM <source>` and the fields whose
    values fill the placeholders, in order: the row is written only if `source`, the name of
    an earlier WITH clause, yields a row. (The database makes auto-incremented ids.)"""
    if not source.isidentifier():
        raise ValueError(f"not a WITH clause's name: {source!r}")
    fields = tuple(field for field in model._meta.concrete_fields
                   if not isinstance(field, AutoField))
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join("%s" for _ in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    sql = f"INSERT INTO {table} ({columns}) SELECT {placeholders} FROM {source}"  # noqa: S608
    return sql, fields


def insert_from_sql(obj: Model, *, source: str) -> tuple[str, list]:
    """`insert_select_sql` for one unsaved object, with its values as the ORM would save them
    (defaults are already set; `auto_now_add` is done here)."""
    sql, fields = insert_select_sql(type(obj), source)
    return sql, [field.get_db_prep_save(field.pre_save(obj, add=True), connection)
                 for field in fields]
