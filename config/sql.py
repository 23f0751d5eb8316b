"""Hand-built SQL for hot paths that write several rows in one statement (PostgreSQL's
data-modifying WITH clauses). Table and column names come from the models; every value is a
parameter, prepared by its field exactly as the ORM would prepare it."""

from django.db import connection
from django.db.models import AutoField, Model


def insert_from_sql(obj: Model, *, source: str) -> tuple[str, list]:
    """`INSERT INTO <obj's table> (...) SELECT <obj's values> FROM <source>`: the row is
    written only if `source`, the name of an earlier WITH clause, yields a row. Fills the
    values the ORM fills on insert (defaults are already set; `auto_now_add` is done here)."""
    if not source.isidentifier():
        raise ValueError(f"not a WITH clause's name: {source!r}")
    meta = obj._meta
    fields = [field for field in meta.concrete_fields if not isinstance(field, AutoField)]
    values = [field.get_db_prep_save(field.pre_save(obj, add=True), connection)
              for field in fields]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join("%s" for _ in fields)
    table = connection.ops.quote_name(meta.db_table)
    sql = f"INSERT INTO {table} ({columns}) SELECT {placeholders} FROM {source}"  # noqa: S608
    return sql, values
