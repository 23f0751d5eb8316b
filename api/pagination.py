"""Cursor pagination for list endpoints: newest first, `?limit=` (1..100, default 20) and
`?cursor=` (the `nextCursor` of the previous page). Ids are time-ordered, so the cursor is
simply the last id seen. Unknown query parameters and bad values are `invalid_request`."""

import re
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.db.models.functions import Collate

from api.errors import ApiError, E

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_CURSOR = re.compile(r"^[a-z]{2,4}_[0-9A-Z]{26}$")
_FIELD_CURSOR_MAX = 200

# A filter turns the query value into queryset filter kwargs, or raises ApiError.
Filter = Callable[[str], dict[str, Any]]


def choice_filter(field: str, param: str, choices) -> Filter:
    allowed = list(choices)

    def apply(value: str) -> dict[str, Any]:
        if value not in allowed:
            raise ApiError(E.invalid_request, field=param,
                           reason=f"Must be one of: {', '.join(allowed)}.")
        return {field: value}

    return apply


def _page_key():
    # On PostgreSQL pages are read in `id COLLATE "C"` order (the same order for our ASCII
    # ids): only the (scope, id COLLATE "C") indexes provide it, so the planner cannot walk the
    # primary key backwards past other accounts' newer rows instead, which grows with the
    # table (bench/scale.py). The messages and deliveries have no other (scope, id) index
    # there (messaging migration 0007).
    return Collate("id", "C") if connection.vendor == "postgresql" else None


def newest_first(queryset: QuerySet) -> QuerySet:
    """`queryset` newest first, in the order the (scope, id) indexes hold it."""
    key = _page_key()
    return queryset.order_by(key.desc() if key is not None else "-pk")


def paginate(
    query_params, queryset: QuerySet, *, filters: dict[str, Filter] | None = None,
    oldest_first: bool = False, cursor_param: str = "cursor", key_field: str | None = None,
    newest_key_first: bool = False,
) -> tuple[list, str | None]:
    """A page of `queryset` by its ids (time-ordered: newest first, or oldest first). Or, with
    `key_field`, by that unique field instead, in its order (`newest_key_first`: descending):
    the cursor is then the field's value, any string."""
    filters = filters or {}
    for name in query_params:
        if name not in filters and name not in ("limit", cursor_param):
            raise ApiError(E.invalid_request, field=name, reason="Unknown query parameter.")
    for name, make_filter in filters.items():
        if name in query_params:
            queryset = queryset.filter(**make_filter(query_params[name]))

    raw_limit = query_params.get("limit", str(DEFAULT_LIMIT))
    # ASCII digits only: str.isdigit() also takes "²" and other digits int() refuses.
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise ApiError(E.invalid_request, field="limit",
                       reason=f"Must be an integer from 1 to {MAX_LIMIT}.")
    limit = int(raw_limit)
    cursor = query_params.get(cursor_param)
    if key_field is not None:
        return _page_by_field(queryset, key_field, descending=newest_key_first, cursor=cursor,
                              cursor_param=cursor_param, limit=limit)
    key = _page_key()
    if cursor is not None:
        if not _CURSOR.match(cursor):
            raise ApiError(E.invalid_request, field=cursor_param, reason="Not a cursor.")
        after = "gt" if oldest_first else "lt"
        if key is not None:
            queryset = queryset.alias(page_key=key).filter(**{f"page_key__{after}": cursor})
        else:
            queryset = queryset.filter(**{f"pk__{after}": cursor})

    ordered = (queryset.order_by(key.asc() if key is not None else "pk") if oldest_first
               else newest_first(queryset))
    items = list(ordered[: limit + 1])
    next_cursor = items[limit - 1].pk if len(items) > limit else None
    return items[:limit], next_cursor


def _page_by_field(queryset: QuerySet, field: str, *, descending: bool, cursor: str | None,
                   cursor_param: str, limit: int) -> tuple[list, str | None]:
    if cursor is not None:
        if not cursor or len(cursor) > _FIELD_CURSOR_MAX or not cursor.isprintable():
            raise ApiError(E.invalid_request, field=cursor_param, reason="Not a cursor.")
        queryset = queryset.filter(**{f"{field}__{'lt' if descending else 'gt'}": cursor})
    items = list(queryset.order_by(f"-{field}" if descending else field)[: limit + 1])
    next_cursor = getattr(items[limit - 1], field) if len(items) > limit else None
    return items[:limit], next_cursor
