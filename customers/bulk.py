"""Set-based writes that Django's ORM does not offer cheaply.

``bulk_update`` builds one huge ``CASE WHEN`` per column in Python and is about ten times too slow for the
dunning tick; :func:`update_from_values` sends one ``UPDATE … FROM (VALUES …)`` statement instead. It runs
on PostgreSQL and on SQLite (3.33+), and returns the primary keys it actually updated, so a guard in the
WHERE clause (``state = 'open'``) can refuse rows without a separate read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connections, models, router

# PostgreSQL accepts 65,535 parameters per statement; SQLite (3.32+) 32,766. Stay well below both.
MAX_PARAMS_PER_STATEMENT = 30_000


def update_from_values(
    model: type[models.Model],
    rows: Mapping[Any, Mapping[str, Any]],
    *,
    fields: Sequence[str],
    match: Mapping[str, Mapping[Any, Any]] | None = None,
    guard_sql: str = "",
    guard_params: Sequence[Any] = (),
) -> list[Any]:
    """Set ``fields`` of each row to its own values, in as few statements as the parameter limit allows.

    ``rows`` maps primary key -> {field name: value}; every row must give every field. ``match`` gives,
    per field name, the value each row must still have for the update to apply (optimistic concurrency:
    ``match={"state": {pk: "open"}}``). ``guard_sql`` is an extra condition on the target table, written
    against the alias ``t`` (e.g. ``"t.status = %s"``). Returns the primary keys actually updated.
    """
    match = match or {}
    if not rows:
        return []
    db = router.db_for_write(model)
    connection = connections[db]
    quote = connection.ops.quote_name
    meta = model._meta
    pk_field = meta.pk
    model_fields = [meta.get_field(name) for name in fields]
    match_fields = [meta.get_field(name) for name in match]
    columns = [pk_field, *model_fields, *match_fields]
    is_postgres = connection.vendor == "postgresql"

    def placeholder(field: models.Field) -> str:
        # PostgreSQL types VALUES columns as text unless told; SQLite is dynamically typed.
        if not is_postgres:
            return "%s"
        target = field.target_field if field.is_relation else field
        return f"CAST(%s AS {target.cast_db_type(connection)})"

    row_placeholder = "(" + ", ".join(placeholder(f) for f in columns) + ")"
    value_names = ", ".join(
        [quote(f"v_{f.column}") for f in (pk_field, *model_fields)]
        + [quote(f"m_{f.column}") for f in match_fields]
    )
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f'v_{f.column}')}" for f in model_fields)
    match_sql = "".join(f" AND t.{quote(f.column)} = v.{quote(f'm_{f.column}')}" for f in match_fields)
    table = quote(meta.db_table)
    pk_column = quote(pk_field.column)
    chunk_size = max(1, MAX_PARAMS_PER_STATEMENT // (len(columns) + 1))
    items = list(rows.items())
    updated: list[Any] = []
    with connection.cursor() as cursor:
        for start in range(0, len(items), chunk_size):
            chunk = items[start : start + chunk_size]
            params: list[Any] = []
            for pk, values in chunk:
                params.append(pk)
                for field in model_fields:
                    params.append(field.get_db_prep_save(values[field.name], connection))
                for field in match_fields:
                    params.append(field.get_db_prep_save(match[field.name][pk], connection))
            sql = (
                f"WITH v({value_names}) AS (VALUES {', '.join([row_placeholder] * len(chunk))}) "
                f"UPDATE {table} AS t SET {assignments} FROM v "
                f"WHERE t.{pk_column} = v.{quote(f'v_{pk_field.column}')}{match_sql}"
                + (f" AND ({guard_sql})" if guard_sql else "")
                + f" RETURNING {pk_column}"
            )
            cursor.execute(sql, [*params, *guard_params])
            updated.extend(row[0] for row in cursor.fetchall())
    return updated
