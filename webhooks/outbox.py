"""The event outbox: how the other apps tell customers about a change. Call `event_record` (or
`events_record` for many) inside the transaction that made the change: the event and its
deliveries, one per matching webhook, exist if and only if the change does, and each
webhook's delivery run is woken after commit. This is the one way into webhooks from the apps
that make events (sessions, messaging); webhooks imports neither of them."""

import functools
import json
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from infra.local_cache import LocalTTLCache
from infra.sql import objects_insert
from infra.wakeups import wake_after_commit
from webhooks.models import Delivery, Event, Webhook

EVENT_TYPES = ("message.received", "message.status", "session.status")
# The task of a webhook's delivery run (webhooks/tasks.py), and its one pending wake-up.
DELIVERY_TASK = "webhooks.deliver"


def delivery_wake_key(webhook_id: str) -> str:
    return f"delivery-scheduled:{webhook_id}"


def delivery_wake(webhook_id: str, *, countdown: float | None = None,
                  dedupe: bool = True) -> None:
    """Wake the webhook's delivery run after commit (one pending wake-up per webhook)."""
    wake_after_commit(DELIVERY_TASK, webhook_id, key=delivery_wake_key(webhook_id),
                      countdown=countdown, dedupe=dedupe)


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_record(*, account_id: str, type: str, session_id: str, data: dict[str, Any]) -> Event:
    """Record an event and queue one delivery per matching webhook. Call it inside the
    transaction that made the change: the event and its deliveries exist if and only if the
    change does (a durable outbox), and delivery starts after commit."""
    return events_record([EventSpec(account_id, type, session_id, data)])[0]


@dataclass(frozen=True)
class EventSpec:
    account_id: str
    type: str
    session_id: str
    data: dict[str, Any]


def events_record(specs: list[EventSpec]) -> list[Event]:
    """`event_record` for many events at once, in order: one COPY for the events, one query
    for the accounts' webhooks, one COPY for the deliveries (a batch of receipts is a few
    statements, not a few per receipt)."""
    events, deliveries = events_prepare(specs)
    objects_insert(events)
    objects_insert(deliveries)
    deliveries_schedule(deliveries)
    return events


_EVENTS_FIELD = Webhook._meta.get_field("events")
# (id, event types, session id): what matching an event needs of a webhook.
Hook = tuple[str, list[str], str | None]


@functools.cache
def _columns() -> dict[str, str]:
    quote = connection.ops.quote_name
    column = {name: quote(Webhook._meta.get_field(name).column)
              for name in ("id", "account", "events", "session", "is_active", "deleted_at")}
    return {"table": quote(Webhook._meta.db_table), **column,
            "active": f"{column['is_active']} AND {column['deleted_at']} IS NULL"}


def _active_webhooks_of(account_ids: list[str]) -> dict[str, list[Hook]]:
    """The accounts' active webhooks, the few columns matching needs, in plain SQL (this runs
    for every event recorded, and the ORM spends more CPU building the query than the
    database spends answering it)."""
    c = _columns()
    sql = (f"SELECT {c['id']}, {c['account']}, {c['events']}, {c['session']} "  # noqa: S608
           f"FROM {c['table']} WHERE {c['account']} IN ({', '.join('%s' for _ in account_ids)})"
           f" AND {c['active']}")
    hooks_of: dict[str, list[Hook]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, account_ids)
        for webhook_id, account_id, types, session_id in cursor.fetchall():
            hooks_of.setdefault(account_id, []).append(
                (webhook_id, _EVENTS_FIELD.from_db_value(types, None, connection), session_id))
    return hooks_of


@functools.cache
def webhooks_fingerprint_sql() -> str:
    """PostgreSQL: one value that changes whenever anything matching looks at changes among an
    account's active webhooks (one is added, removed, disabled, or given other event types or
    another session). Its one parameter is the account's id."""
    c = _columns()
    return (f"SELECT md5(string_agg({c['id']} || ' ' || {c['events']}::text || ' ' || "  # noqa: S608
            f"coalesce({c['session']}, ''), ',' ORDER BY {c['id']})) AS fingerprint "
            f"FROM {c['table']} WHERE {c['account']} = %s AND {c['active']}")


@dataclass(frozen=True)
class AccountWebhooks:
    fingerprint: str | None  # webhooks_fingerprint_sql's answer when `hooks` were read
    hooks: list[Hook]


# Per process: the webhooks of the accounts whose events this process records. A copy is
# never trusted: the statement that uses it checks its fingerprint (see message_sent_record).
_webhooks_seen = LocalTTLCache(ttl=3600, max_size=10_000)


def account_webhooks_seen(account_id: str) -> AccountWebhooks:
    """PostgreSQL: this process's copy of the account's active webhooks, read if it has none
    (rows and fingerprint in one statement, so they agree)."""
    seen = _webhooks_seen.get(account_id)
    if seen is None:
        c = _columns()
        sql = (f"SELECT {c['id']}, {c['events']}, {c['session']}, "  # noqa: S608
               f"({webhooks_fingerprint_sql()}) FROM {c['table']} WHERE {c['account']} = %s "
               f"AND {c['active']} ORDER BY {c['id']}")
        with connection.cursor() as cursor:
            cursor.execute(sql, [account_id, account_id])
            rows = cursor.fetchall()
        seen = AccountWebhooks(
            fingerprint=rows[0][3] if rows else None,  # of no webhooks: NULL
            hooks=[(webhook_id, _EVENTS_FIELD.from_db_value(types, None, connection), session)
                   for webhook_id, types, session, _fingerprint in rows])
        _webhooks_seen.set(account_id, seen)
    return seen


def account_webhooks_forget(account_id: str) -> None:
    _webhooks_seen.delete(account_id)


def events_prepare(specs: list[EventSpec], *, hooks_of: dict[str, list[Hook]] | None = None,
                   ) -> tuple[list[Event], list[Delivery]]:
    """The events and their deliveries (one per matching webhook), built but not saved: for a
    caller that writes them in a statement of its own, then calls `deliveries_schedule`.
    `hooks_of`: the accounts' webhooks if the caller has them (read here otherwise)."""
    for spec in specs:
        if spec.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {spec.type!r}")
    events = [Event(account_id=spec.account_id, type=spec.type, session_id=spec.session_id,
                    data=spec.data) for spec in specs]
    if hooks_of is None:
        hooks_of = _active_webhooks_of(list(dict.fromkeys(spec.account_id for spec in specs)))
    now = timezone.now()
    deliveries = [
        Delivery(webhook_id=webhook_id, event=event, next_attempt_at=now)
        for event in events
        for webhook_id, types, session_id in hooks_of.get(event.account_id, ())
        if event.type in types and session_id in (None, event.session_id)
    ]
    return events, deliveries


def deliveries_schedule(deliveries: list[Delivery]) -> None:
    """Wake the delivery run of each webhook that got a delivery, after commit."""
    for webhook_id in dict.fromkeys(delivery.webhook_id for delivery in deliveries):
        delivery_wake(webhook_id)


def event_body(event: Event) -> str:
    """The delivered JSON body, the same bytes on every retry."""
    return json.dumps(
        {"id": event.id, "event": event.type, "createdAt": iso(event.created_at),
         "sessionId": event.session_id or None, "data": event.data},
        separators=(",", ":"), sort_keys=True,
    )
