"""Rows that belong together, written together: new rows (`rows_insert`); new rows that must
exist if and only if a change was made (`insert_if`: a message and the daily quota it takes);
changes of stored rows each with the new rows that tell of it (`changes_write`: a message's
status, its history entry, its events and their deliveries).

On PostgreSQL each call is one statement, its data-modifying WITH clauses run in one snapshot
and one round trip; new rows travel as one array per column, so a statement's text depends
only on its tables and columns, and it is prepared once per connection (`statements_prepared`)
however many rows each run writes. Elsewhere (SQLite) each call is one transaction of the
same writes, one by one. Table and column names come from the models; every value is a
parameter, prepared by its field as the ORM prepares it."""

import contextlib
import functools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import AutoField, Field, Model


@dataclass(frozen=True)
class Statement:
    sql: str
    params: list


@dataclass(frozen=True)
class RowChange:
    """An update of one stored row: `obj` holds its new values, `fields` are those it changes,
    and it is made only if the stored `guard` field still holds `expected` (so a concurrent
    change is never overwritten). `rows`: new objects written only if it is made."""

    obj: Model
    fields: tuple[str, ...]
    guard: str
    expected: Any
    rows: tuple[Model, ...] = ()


@contextlib.contextmanager
def statements_prepared() -> Iterator[None]:
    """On PostgreSQL (unless DATABASE_PREPARED_STATEMENTS is off), the statements run in the
    block are prepared on the connection at their first run and reused after it: PostgreSQL
    parses and plans each once per connection, not at every run. For the hot paths' own
    statements, whose text depends only on tables and columns and whose plans suit any values
    (rows found by primary key, queue conditions written literally). Not for the ORM's: a
    plan made once for any value cannot use the partial indexes the queues are read through.
    psycopg's `prepare_threshold`, set on the connection for the block."""
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    before, raw.prepare_threshold = raw.prepare_threshold, 0
    try:
        yield
    finally:
        raw.prepare_threshold = before


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


@functools.cache
def _inserted_fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(field for field in model._meta.concrete_fields
                 if not isinstance(field, AutoField))


# Fields whose attribute is already what the database driver takes, as the ORM would prepare
# it (a string, a number, a boolean, an aware datetime, a foreign key's id): read as they are.
_TAKEN_AS_THEY_ARE = {"CharField", "TextField", "URLField", "BooleanField", "BigIntegerField",
                      "IntegerField", "PositiveIntegerField", "PositiveSmallIntegerField",
                      "SmallIntegerField", "DateTimeField", "ForeignKey"}


def _reader(field: Field, add: bool):
    """How to read an object's value of `field` for the database, as the ORM saves it."""
    if (field.get_internal_type() in _TAKEN_AS_THEY_ARE and connection.vendor == "postgresql"
            and not (add and getattr(field, "auto_now_add", False))
            and not getattr(field, "auto_now", False)):
        return attrgetter(field.attname)
    return lambda obj: field.get_db_prep_save(field.pre_save(obj, add=add), connection)


@functools.cache
def _readers(model: type[Model], field_names: tuple[str, ...], add: bool) -> tuple:
    return tuple(_reader(model._meta.get_field(name), add) for name in field_names)


def _db_values(obj: Model, fields: tuple[Field, ...] | list[Field], *, add: bool) -> list:
    readers = _readers(type(obj), tuple(field.name for field in fields), add)
    return [read(obj) for read in readers]


@functools.cache
def _insert_one_sql(model: type[Model]) -> str:
    fields = _inserted_fields(model)
    columns = ", ".join(_quote(field.column) for field in fields)
    placeholders = ", ".join("%s" for _ in fields)
    return f"INSERT INTO {_quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608


def _insert_one_by_one(cursor, rows) -> None:
    for row in rows:
        cursor.execute(_insert_one_sql(type(row)),
                       _db_values(row, _inserted_fields(type(row)), add=True))


def _stored(rows) -> None:
    """Mark inserted objects as the ORM marks the ones it saves (`Model._state`): a later
    `save()` updates their row instead of inserting it again."""
    for row in rows:
        row._state.adding, row._state.db = False, connection.alias


def rows_insert(rows: list[Model]) -> None:
    """Insert new objects (of any models), in one write."""
    insert_if(None, rows)


def insert_if(change: Statement | None, rows: list[Model]) -> bool:
    """Insert new objects only if `change` (a statement that returns the row it wrote)
    writes a row, or always without one; False, and nothing written, when it wrote none."""
    if connection.vendor != "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            if change is not None:
                cursor.execute(change.sql, change.params)
                if not cursor.fetchall():
                    return False
            _insert_one_by_one(cursor, rows)
        _stored(rows)
        return True
    clauses, params = [], []
    if change is not None:
        clauses.append(f"changed AS ({change.sql})")
        params += change.params
    for number, (model, of_model) in enumerate(_by_model(rows).items()):
        clauses.append(_insert_sql(model, number, len(of_model) == 1,
                                   after="changed" if change else None))
        params += _source_params([_db_values(row, _inserted_fields(model), add=True)
                                  for row in of_model])
    if not clauses:
        return True
    outcome = "(SELECT count(*) FROM changed)" if change is not None else "1"
    with statements_prepared(), connection.cursor() as cursor:
        cursor.execute("WITH " + ", ".join(clauses) + f" SELECT {outcome}", params)
        inserted = cursor.fetchone()[0] > 0
    if inserted:
        _stored(rows)
    return inserted


def changes_write(changes: list[RowChange]) -> list[bool]:
    """Make the changes (of rows of one model, each row once: a statement's clauses see one
    snapshot, and a row changed twice would keep one change) and write their rows; for each,
    whether it was made. On PostgreSQL one statement: one UPDATE from arrays of values, and an
    INSERT per model of new rows, each row joined to the change it belongs to."""
    if not changes:
        return []
    if connection.vendor != "postgresql":
        return _changes_one_by_one(changes)
    model, guard = type(changes[0].obj), changes[0].guard
    field_names = tuple(dict.fromkeys(name for change in changes for name in change.fields))
    fields = [model._meta.get_field(name) for name in field_names]
    guard_field = model._meta.get_field(guard)
    clauses = [_update_sql(model, guard, field_names, len(changes) == 1)]
    params = _source_params([[change.obj.pk,
                              guard_field.get_db_prep_save(change.expected, connection),
                              *_db_values(change.obj, fields, add=False)]
                             for change in changes])
    keyed = [(change.obj.pk, row) for change in changes for row in change.rows]
    for number, (row_model, of_model) in enumerate(_by_model(keyed).items()):
        clauses.append(_insert_sql(row_model, number, len(of_model) == 1, after="changed",
                                   keyed_by=model))
        inserted = _inserted_fields(row_model)
        params += _source_params([[key, *_db_values(row, inserted, add=True)]
                                  for key, row in of_model])
    pk = _quote(model._meta.pk.column)
    with statements_prepared(), connection.cursor() as cursor:
        cursor.execute("WITH " + ", ".join(clauses) + f" SELECT {pk} FROM changed",  # noqa: S608
                       params)
        made = {key for (key,) in cursor.fetchall()}
    outcome = [change.obj.pk in made for change in changes]
    _stored(row for change, done in zip(changes, outcome, strict=True) if done
            for row in change.rows)
    return outcome


def _changes_one_by_one(changes: list[RowChange]) -> list[bool]:
    made = []
    with transaction.atomic(), connection.cursor() as cursor:
        for change in changes:
            meta = change.obj._meta
            fields = [meta.get_field(name) for name in change.fields]
            guard = meta.get_field(change.guard)
            cursor.execute(
                f"UPDATE {_quote(meta.db_table)} SET "  # noqa: S608
                + ", ".join(f"{_quote(field.column)} = %s" for field in fields)
                + f" WHERE {_quote(meta.pk.column)} = %s AND {_quote(guard.column)} = %s"
                + f" RETURNING {_quote(meta.pk.column)}",
                [*_db_values(change.obj, fields, add=False), change.obj.pk,
                 guard.get_db_prep_save(change.expected, connection)])
            made.append(bool(cursor.fetchall()))
            if made[-1]:
                _insert_one_by_one(cursor, change.rows)
    _stored(row for change, done in zip(changes, made, strict=True) if done
            for row in change.rows)
    return made


def _by_model(rows: list) -> dict[type[Model], list]:
    """Rows (or (key, row) pairs) grouped by model, in the order the models first come."""
    grouped: dict[type[Model], list] = defaultdict(list)
    for item in rows:
        grouped[type(item[1] if isinstance(item, tuple) else item)].append(item)
    return grouped


def _source_params(rows: list[list]) -> list:
    """The parameters of `_source`: one row's values, or an array per column."""
    if len(rows) == 1:
        return rows[0]
    return [list(column) for column in zip(*rows, strict=True)]


def _source(fields: list[Field] | tuple[Field, ...], one: bool) -> str:
    """A table `v` of a column per field (c0, c1, ...): one row of parameters, or as many rows
    as the arrays (a parameter per column) hold. Every value is cast to its column's type."""
    names = [f"c{index}" for index in range(len(fields))]
    if one:
        return "(SELECT " + ", ".join(f"%s::{field.db_type(connection)} AS {name}"
                                      for field, name in zip(fields, names, strict=True)) + ") AS v"
    # Arrays travel in binary when parameters are bound server-side: as text, psycopg would
    # quote and escape every element in Python (each quote of each JSON document).
    binary = connection.settings_dict["OPTIONS"].get("server_side_binding") is True
    placeholder = "%b" if binary else "%s"
    columns = ", ".join(f"{placeholder}::{field.db_type(connection)}[]" for field in fields)
    return f"unnest({columns}) AS v({', '.join(names)})"


@functools.cache
def _update_sql(model: type[Model], guard: str, field_names: tuple[str, ...], one: bool
                ) -> str:
    """The `changed` clause: the rows updated from (pk, expected guard, values) rows."""
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    pk, guard_field = _quote(meta.pk.column), meta.get_field(guard)
    assignments = ", ".join(f"{_quote(field.column)} = v.c{index}"
                            for index, field in enumerate(fields, start=2))
    return (f"changed AS (UPDATE {_quote(meta.db_table)} AS t SET {assignments} "  # noqa: S608
            f"FROM {_source([meta.pk, guard_field, *fields], one)} WHERE t.{pk} = v.c0 "
            f"AND t.{_quote(guard_field.column)} = v.c1 RETURNING t.{pk})")


@functools.cache
def _insert_sql(model: type[Model], number: int, one: bool, *, after: str | None,
                keyed_by: type[Model] | None = None) -> str:
    """A clause inserting new `model` rows: only if the clause `after` returned a row, or,
    `keyed_by` a model, only the rows whose first value is the key of a `keyed_by` row that
    the clause `after` returned."""
    inserted = _inserted_fields(model)
    columns = ", ".join(_quote(field.column) for field in inserted)
    if keyed_by is None:
        values = ", ".join(f"v.c{index}" for index in range(len(inserted)))
        source = _source(inserted, one) + (f" CROSS JOIN {after}" if after else "")
    else:
        values = ", ".join(f"v.c{index}" for index in range(1, len(inserted) + 1))
        key = _quote(keyed_by._meta.pk.column)
        source = (f"{_source([keyed_by._meta.pk, *inserted], one)} "
                  f"JOIN {after} ON {after}.{key} = v.c0")
    return (f"rows{number} AS (INSERT INTO {_quote(model._meta.db_table)} ({columns}) "  # noqa: S608
            f"SELECT {values} FROM {source})")
