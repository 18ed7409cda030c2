"""Set-based writes that Django's ORM does not offer cheaply.

``bulk_update`` builds one huge ``CASE WHEN`` per column in Python and is about ten times too slow for the
dunning tick, and ``bulk_create`` spends most of its time building model instances. These helpers send one
statement per batch instead:

- on PostgreSQL the whole batch travels as a single JSON parameter, an array per row, unpacked by
  ``jsonb_array_elements``:
  the query text stays tiny, so the driver does not tokenise thousands of placeholders;
- on SQLite (3.33+) a plain ``VALUES`` list, bound by the C driver.

:func:`update_from_values` returns the primary keys it actually updated, so an optimistic guard
(``state = 'open'``) can refuse rows without a separate read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

import orjson
from django.db import connections, models, router
from django.db.models.base import ModelState
from django.utils.functional import Promise

ModelT = TypeVar("ModelT", bound=models.Model)

# SQLite (3.32+) accepts 32,766 parameters per statement; stay below.
MAX_SQLITE_PARAMS = 30_000


def _json_default(value: object) -> object:
    """What orjson does not write itself: lazy translation strings. Anything else is refused."""
    if isinstance(value, Promise):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} in a bulk statement")


def _column_type(field: models.Field, connection: Any) -> str:
    target = field.target_field if field.is_relation else field
    db_type = target.db_type(connection) or "text"
    # Serial types are for column definitions only; the values are plain integers.
    return {"serial": "integer", "bigserial": "bigint", "smallserial": "smallint"}.get(db_type, db_type)


def _from_json_array(fields: Sequence[models.Field], names: Sequence[str], connection: Any) -> str:
    """The select list reading one JSON array per row (``e``) into typed columns.

    Casts drop the type modifier (``varchar(100)`` becomes ``varchar``): an explicit cast would cut a
    long value silently, whereas assigning the value to the column refuses it.
    """
    quote = connection.ops.quote_name
    columns = []
    for index, (field, name) in enumerate(zip(fields, names, strict=True)):
        target = field.target_field if field.is_relation else field
        if isinstance(target, models.JSONField):
            value = f"NULLIF(e->{index}, 'null'::jsonb)"  # JSON null is SQL NULL, as Django stores None
        else:
            value = f"(e->>{index})::{_column_type(field, connection).split('(')[0]}"
        columns.append(f"{value} AS {quote(name)}")
    return ", ".join(columns)


# Values the drivers (and JSON) take as they are: Django's per-field preparation is skipped for them, which
# matters at a few hundred thousand values per tick.
_PLAIN_TYPES = (str, int, float, bool, datetime, date)
# Fields whose values go into a JSON batch untouched: the database casts the JSON text to the column type,
# and orjson writes timestamps (``_json_objects`` refuses naive ones), dates and UUIDs.
# Exact types only: a subclass may prepare its values differently.
_JSON_AS_IS = frozenset(
    {
        models.CharField,
        models.EmailField,
        models.SlugField,
        models.URLField,
        models.TextField,
        models.IntegerField,
        models.BigIntegerField,
        models.SmallIntegerField,
        models.PositiveIntegerField,
        models.PositiveSmallIntegerField,
        models.PositiveBigIntegerField,
        models.BooleanField,
        models.DateTimeField,
        models.DateField,
        models.UUIDField,
        models.JSONField,
        models.AutoField,
        models.BigAutoField,
    }
)


def _as_is_in_json(field: models.Field) -> bool:
    target = field.target_field if field.is_relation else field
    return type(target) in _JSON_AS_IS


def _prepare(field: models.Field, value: Any, connection: Any, *, for_json: bool) -> Any:
    if isinstance(field, models.JSONField):
        # In a JSON batch the value nests as it is; through SQLite it is bound as JSON text.
        return value if for_json else json.dumps(value)
    if isinstance(value, datetime | date):
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError(f"naive datetime for {field.name}: timestamps must be timezone-aware")
        # SQLite stores Django's own text format.
        return value if for_json else field.get_db_prep_save(value, connection)
    if value is None or isinstance(value, _PLAIN_TYPES):
        return value
    return field.get_db_prep_save(value, connection)


def _json_rows(
    fields: Sequence[models.Field], rows: Sequence[Sequence[Any]], connection: Any
) -> Sequence[Sequence[Any]]:
    """Rows ready to travel as JSON arrays. Only fields of other types are prepared one value at a time:
    a tick sends about a million values, and a call per value was a tenth of its time."""
    slow = [i for i, field in enumerate(fields) if not _as_is_in_json(field)]
    stamps = [i for i, field in enumerate(fields) if type(field) is models.DateTimeField]
    for i in stamps:
        for row in rows:
            value = row[i]
            if value is not None and value.tzinfo is None:
                raise ValueError(f"naive datetime for {fields[i].name}: timestamps must be timezone-aware")
    if not slow:
        return rows
    prepared = []
    for row in rows:
        values = list(row)
        for i in slow:
            values[i] = _prepare(fields[i], values[i], connection, for_json=True)
        prepared.append(values)
    return prepared


def _json_text(rows: Sequence[Sequence[Any]]) -> str:
    """One JSON parameter for a whole batch, an array per row. orjson writes timestamps, dates and UUIDs
    itself (aware timestamps with their offset; ``_json_rows`` has refused naive ones)."""
    return orjson.dumps(rows, default=_json_default).decode()


def update_from_values(
    model: type[models.Model],
    rows: Mapping[Any, Mapping[str, Any]],
    *,
    fields: Sequence[str],
    match: Mapping[str, Mapping[Any, Any]] | None = None,
    guard_sql: str = "",
    guard_params: Sequence[Any] = (),
) -> list[Any]:
    """Set ``fields`` of each row to its own values, in one statement per batch.

    ``rows`` maps primary key -> {field name: value}; every row must give every field (foreign keys by id).
    ``match`` gives, per field name, the value each row must still have for the update to apply
    (optimistic concurrency: ``match={"state": {pk: "open"}}``). ``guard_sql`` is an extra condition on
    the target table, written against the alias ``t`` (e.g. ``"t.status = %s"``). Returns the primary keys
    actually updated.
    """
    if not rows:
        return []
    match = match or {}
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    meta = model._meta
    pk_field = meta.pk
    set_fields = [meta.get_field(name) for name in fields]
    match_fields = [meta.get_field(name) for name in match]
    value_fields = [pk_field, *set_fields, *match_fields]
    value_names = ["v_pk", *[f"v_{f.column}" for f in set_fields], *[f"m_{f.column}" for f in match_fields]]
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f'v_{f.column}')}" for f in set_fields)
    conditions = [f"t.{quote(pk_field.column)} = v.{quote('v_pk')}"]
    conditions += [f"t.{quote(f.column)} = v.{quote(f'm_{f.column}')}" for f in match_fields]
    if guard_sql:
        conditions.append(f"({guard_sql})")
    table = quote(meta.db_table)
    returning = f"RETURNING {quote(pk_field.column)}"
    is_postgres = connection.vendor == "postgresql"

    set_names = [f.name for f in set_fields]
    match_values = [match[f.name] for f in match_fields]

    def raw_values(pk: Any, values: Mapping[str, Any]) -> list[Any]:
        return [pk, *[values[name] for name in set_names], *[by_pk[pk] for by_pk in match_values]]

    def values_of(pk: Any, values: Mapping[str, Any]) -> list[Any]:
        return [
            _prepare(f, value, connection, for_json=False)
            for f, value in zip(value_fields, raw_values(pk, values), strict=True)
        ]

    updated: list[Any] = []
    with connection.cursor() as cursor:
        if is_postgres:
            batch = _json_rows(
                value_fields, [raw_values(pk, values) for pk, values in rows.items()], connection
            )
            sql = (
                f"UPDATE {table} AS t SET {assignments} "
                f"FROM (SELECT {_from_json_array(value_fields, value_names, connection)} "
                f"FROM jsonb_array_elements(%s::jsonb) AS e) AS v "
                f"WHERE {' AND '.join(conditions)} {returning}"
            )
            cursor.execute(sql, [_json_text(batch), *guard_params])
            return [row[0] for row in cursor.fetchall()]
        items = list(rows.items())
        chunk_size = max(1, MAX_SQLITE_PARAMS // (len(value_fields) + 1))
        placeholders = "(" + ", ".join(["%s"] * len(value_fields)) + ")"
        names = ", ".join(quote(name) for name in value_names)
        for start in range(0, len(items), chunk_size):
            chunk = items[start : start + chunk_size]
            params = [param for pk, values in chunk for param in values_of(pk, values)]
            sql = (
                f"WITH v({names}) AS (VALUES {', '.join([placeholders] * len(chunk))}) "
                f"UPDATE {table} AS t SET {assignments} FROM v WHERE {' AND '.join(conditions)} {returning}"
            )
            cursor.execute(sql, [*params, *guard_params])
            updated.extend(row[0] for row in cursor.fetchall())
    return updated


def insert_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    on_conflict_do_nothing: bool = False,
    returning: Sequence[str] = (),
    followup_sql: str = "",
    followup_params: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """INSERT many rows given as tuples in ``fields`` order (foreign keys by id), in one statement per batch.

    The fast path for append-only tables (case events, audit rows, attempts): no model instances are built.
    Model defaults are not applied, so give every column. Returns the ``returning`` columns of the rows
    actually inserted (rows skipped by ``on_conflict_do_nothing`` are missing).

    ``followup_sql`` (PostgreSQL only) is a second data-modifying statement run in the same statement, reading
    the inserted rows' ``returning`` columns from the CTE ``ins`` (one round trip instead of two).
    """
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    meta = model._meta
    model_fields = [meta.get_field(name) for name in fields]
    columns = ", ".join(quote(f.column) for f in model_fields)
    table = quote(meta.db_table)
    conflict = " ON CONFLICT DO NOTHING" if on_conflict_do_nothing else ""
    returning_sql = (
        " RETURNING " + ", ".join(quote(meta.get_field(name).column) for name in returning)
        if returning
        else ""
    )
    is_postgres = connection.vendor == "postgresql"
    result: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        if is_postgres:
            names = [f"c{index}" for index in range(len(model_fields))]
            batch = _json_rows(model_fields, rows, connection)
            sql = (
                f"INSERT INTO {table} ({columns}) SELECT {_from_json_array(model_fields, names, connection)} "
                f"FROM jsonb_array_elements(%s::jsonb) AS e{conflict}{returning_sql}"
            )
            params = [_json_text(batch)]
            if followup_sql:
                if not returning:
                    raise ValueError("a follow-up statement reads the inserted rows: give returning columns")
                sql = f"WITH ins AS ({sql}), followup AS ({followup_sql}) SELECT * FROM ins"
                params += list(followup_params)
            cursor.execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()] if returning else []
        if followup_sql:
            raise ValueError("follow-up statements need PostgreSQL")
        chunk_size = max(1, MAX_SQLITE_PARAMS // len(model_fields))
        placeholders = "(" + ", ".join(["%s"] * len(model_fields)) + ")"
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start : start + chunk_size]
            params = [
                _prepare(field, value, connection, for_json=False)
                for row in chunk
                for field, value in zip(model_fields, row, strict=True)
            ]
            sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(chunk))}{conflict}{returning_sql}"
            cursor.execute(sql, params)
            if returning:
                result.extend(tuple(row) for row in cursor.fetchall())
    return result


def instances_from_values(
    model: type[ModelT], attnames: Sequence[str], rows: Iterable[Sequence[Any]], *, db: str = "default"
) -> list[ModelT]:
    """Model instances for rows read with ``values_list``: what ``Model.from_db`` gives, a few times faster.

    ``Model.__init__`` runs a descriptor per field; a tick batch builds tens of thousands of instances
    and that was its largest single cost. Fields left out behave as deferred (read on first access), as
    with ``only()``. No ``post_init`` signal is sent: use this only for models nothing listens to.
    """
    instances = []
    new = model.__new__
    for row in rows:
        instance = new(model)
        instance.__dict__.update(zip(attnames, row, strict=True))
        state = ModelState()
        state.db, state.adding = db, False
        instance._state = state
        instances.append(instance)
    return instances
