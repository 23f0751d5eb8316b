"""Hand-built SQL for hot paths that write several rows in one statement (PostgreSQL's
data-modifying WITH clauses, COPY). Table and column names come from the models; every value
is a parameter, prepared by its field as the ORM would prepare it (or read as it is, for the
types where that is the same)."""

import contextlib
import functools
import operator
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import AutoField, Field, Model

Reader = Callable[[Model, BaseDatabaseWrapper], object]

# Field types whose attribute value psycopg adapts exactly as Django's preparation would leave
# it (str, int, bool, aware datetime, a foreign key's id): read as they are.
_PLAIN_TYPES = {"CharField", "TextField", "URLField", "BooleanField", "BigIntegerField",
                "IntegerField", "PositiveIntegerField", "PositiveSmallIntegerField",
                "SmallIntegerField", "DateTimeField", "ForeignKey"}


def _value_reader(field: Field) -> Reader:
    """How to read a new object's value of `field` for the database `db` (the connection
    itself, not Django's `connection` proxy: each attribute read through the proxy looks the
    connection up again, and those lookups were a tenth of the receipts' instructions)."""
    if (field.get_internal_type() in _PLAIN_TYPES and not getattr(field, "auto_now", False)
            and not getattr(field, "auto_now_add", False)):
        read = operator.attrgetter(field.attname)
        return lambda obj, db: read(obj)
    # Everything else as the ORM saves it (JSON, auto_now_add, any other type).
    return lambda obj, db: field.get_db_prep_save(field.pre_save(obj, add=True), db)


def _inserted_fields(model: type[Model]) -> list[Field]:
    return [field for field in model._meta.concrete_fields if not isinstance(field, AutoField)]


@functools.cache
def _value_readers(model: type[Model]) -> tuple[Reader, ...]:
    """A new object's values to insert, in `_inserted_fields` order."""
    return tuple(_value_reader(field) for field in _inserted_fields(model))


@functools.cache
def insert_select_sql(model: type[Model], source: str) -> str:
    """`INSERT INTO <model's table> (...) SELECT %s, ... FROM <source>`, a placeholder per
    field in `_inserted_fields` order: the row is written only if `source`, the name of an
    earlier WITH clause, yields a row. (The database makes auto-incremented ids.)"""
    if not source.isidentifier():
        raise ValueError(f"not a WITH clause's name: {source!r}")
    fields = _inserted_fields(model)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join("%s" for _ in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    return f"INSERT INTO {table} ({columns}) SELECT {placeholders} FROM {source}"  # noqa: S608


def insert_from_sql(obj: Model, *, source: str) -> tuple[str, list]:
    """`insert_select_sql` for one unsaved object, with its values as the ORM would save them
    (defaults are already set; `auto_now_add` is done here)."""
    db = connections[DEFAULT_DB_ALIAS]
    return (insert_select_sql(type(obj), source),
            [read(obj, db) for read in _value_readers(type(obj))])


def objects_update(objs: list[Model], field_names: list[str]) -> None:
    """Save `field_names` of every object (all of one model, already in the database) in one
    statement: on PostgreSQL `UPDATE ... FROM (VALUES ...)`, a row of values per object. Django's
    `bulk_update` builds a CASE expression per field and object, which costs more CPU than the
    database spends on the update; elsewhere it is used as it is."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, field_names)
        return
    meta = model._meta
    fields = [meta.pk, *(meta.get_field(name) for name in field_names)]
    quote = connection.ops.quote_name
    names = [f"c{index}" for index in range(len(fields))]
    # Every value is cast to its column's type: a VALUES list alone would type NULLs as text.
    assignments = ", ".join(
        f"{quote(field.column)} = CAST(v.{name} AS {field.db_type(connection)})"
        for field, name in zip(fields[1:], names[1:], strict=True))
    row = "(" + ", ".join("%s" for _ in fields) + ")"
    sql = (f"UPDATE {quote(meta.db_table)} AS t SET {assignments} "  # noqa: S608
           f"FROM (VALUES {', '.join(row for _ in objs)}) AS v({', '.join(names)}) "
           f"WHERE t.{quote(meta.pk.column)} = CAST(v.c0 AS {meta.pk.db_type(connection)})")
    db = connections[DEFAULT_DB_ALIAS]  # not the proxy, once per value (see _value_reader)
    params = [field.get_db_prep_save(getattr(obj, field.attname), db)
              for obj in objs for field in fields]
    with db.cursor() as cursor:
        cursor.execute(sql, params)


@functools.cache
def _copy_statement(model: type[Model]) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _inserted_fields(model))
    return f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"


def objects_insert(objs: list[Model]) -> None:
    """Insert new objects (all of one model), as `bulk_create` would but for what it sets
    afterwards: the ids of auto-incremented keys are not read back (the callers do not use
    them). On PostgreSQL through COPY, whose rows psycopg formats in C: `bulk_create` spent
    20-40 us of CPU per row preparing fields and quoting parameters (its UNNEST arrays are
    quoted element by element in Python), COPY 6-20; the receipts' batches and the webhook
    runs took 16 % fewer instructions per message (bench/HISTORY.md). Elsewhere
    `bulk_create`."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    readers, db = _value_readers(model), connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor, cursor.cursor.copy(_copy_statement(model)) as copy:
        for obj in objs:
            copy.write_row([read(obj, db) for read in readers])
    for obj in objs:  # saved, as bulk_create leaves them: a later save() updates
        obj._state.adding, obj._state.db = False, db.alias


@functools.cache
def _preparing_cursor_class() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        """Binds its parameters server-side and has every statement prepared: parsed, analysed
        and planned once per connection, then only bound and run."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True, binary=binary)

        def _send_query_prepared(self, name, pgq, *, binary=None):
            # Kept, as an unprepared execution keeps it, for Django's query log (DEBUG, tests).
            super()._send_query_prepared(name, pgq, binary=binary)
            self._query = pgq

    return PreparingCursor


@contextlib.contextmanager
def prepared_cursor() -> Iterator:
    """A cursor for the hot paths' hand-built statements, prepared on PostgreSQL (when
    DATABASE_PREPARED_STATEMENTS is on). Django's cursors bind parameters client-side, so
    PostgreSQL parses, analyses and plans every statement anew; for these statements (WITH
    clauses of several writes) that was a large part of its CPU (bench/HISTORY.md). Wrapped
    as Django wraps its own cursors: the same error classes, and the statement in
    `connection.queries` under DEBUG or a test's query capture. Elsewhere, or with the
    setting off, Django's own cursor."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        with db.cursor() as cursor:
            yield cursor
        return
    from django.db.backends.postgresql import base as postgresql

    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        raw = _preparing_cursor_class()(db.connection)
        # As Django's create_cursor does: timestamps read in the connection's time zone.
        loader = db.connection.adapters.get_loader(postgresql.TIMESTAMPTZ_OID,
                                                   postgresql.Format.TEXT)
        if db.timezone != loader.timezone:
            postgresql.register_tzloader(db.timezone, raw)
    with db._prepare_cursor(raw) as cursor:
        yield cursor
