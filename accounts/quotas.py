"""The daily message quota: one upsert per acceptance, exact under concurrency.

The row for (account, UTC day) is created or incremented only while the new total stays within
the limit. PostgreSQL locks the conflicting row for `ON CONFLICT DO UPDATE` and re-evaluates the
WHERE on its latest version, so concurrent senders can never take it one message over; SQLite
serialises writers. It is written together with what it counts (the message's row: both or
neither), or runs inside the caller's transaction: if that rolls back, the count does too.
"""

from datetime import date

from django.db import connection
from django.utils import timezone

from accounts.models import DailyUsage
from infra.sql import Statement

_CONSUME_SQL = f"""
INSERT INTO {DailyUsage._meta.db_table} (account_id, day, messages)
SELECT %s, %s, %s WHERE %s <= %s
ON CONFLICT (account_id, day) DO UPDATE
SET messages = {DailyUsage._meta.db_table}.messages + excluded.messages
WHERE {DailyUsage._meta.db_table}.messages + excluded.messages <= %s
RETURNING messages
"""


def utc_today() -> date:
    return timezone.now().date()


def daily_quota_statement(*, account_id: str, limit: int, count: int = 1) -> Statement:
    """The upsert that takes `count` messages from today's quota: it returns the new total, or
    no row when that would exceed `limit` (nothing is taken then)."""
    return Statement(_CONSUME_SQL, [account_id, utc_today(), count, count, limit, limit])


def daily_quota_consume(*, account_id: str, limit: int, count: int = 1) -> int | None:
    """Take `count` messages from today's quota. Returns the new total, or None when it would
    exceed `limit` (nothing is taken then)."""
    upsert = daily_quota_statement(account_id=account_id, limit=limit, count=count)
    with connection.cursor() as cursor:
        cursor.execute(upsert.sql, upsert.params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def daily_messages_used(*, account_id: str) -> int:
    usage = DailyUsage.objects.filter(account_id=account_id, day=utc_today()).first()
    return usage.messages if usage else 0
