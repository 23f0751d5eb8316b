"""The event outbox: how the other apps tell customers about a change, the one way into webhooks
from the apps that make events (sessions, messaging); webhooks imports neither of them.

An event and its deliveries, one per matching webhook, exist if and only if the change that
caused it does: record them inside the transaction that made the change (`event_record`), or
hand the changes themselves over and have them made together with their events
(`changes_record`: one statement on PostgreSQL). Each webhook's delivery run is woken after
commit.
"""

import contextlib
import contextvars
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from django.db import connection
from django.utils import timezone

from api.serializers import iso
from infra.sql import RowChange, changes_write, rows_insert
from infra.wakeups import wake_after_commit
from webhooks.models import Delivery, Event, Webhook

EVENT_TYPES = ("message.received", "message.status", "session.status", "message.reaction",
               "message.edited", "message.revoked", "group.participants")
# A webhook subscribed to this gets every event, those added later included.
ALL_EVENTS = "*"
# The task of a webhook's delivery run (webhooks/tasks.py), and its one pending wake-up.
DELIVERY_TASK = "webhooks.deliver"

# What matching an event needs of a webhook: (id, event types, session id or None).
Hook = tuple[str, list[str], str | None]


def delivery_wake_key(webhook_id: str) -> str:
    return f"delivery-scheduled:{webhook_id}"


def delivery_wake(webhook_id: str, *, countdown: float | None = None,
                  dedupe: bool = True) -> None:
    """Wake the webhook's delivery run after commit (one pending wake-up per webhook)."""
    wake_after_commit(DELIVERY_TASK, webhook_id, key=delivery_wake_key(webhook_id),
                      countdown=countdown, dedupe=dedupe)


@dataclass(frozen=True)
class EventSpec:
    account_id: str
    type: str
    session_id: str
    data: dict[str, Any]


def event_record(*, account_id: str, type: str, session_id: str, data: dict[str, Any]) -> Event:
    """Record an event and its deliveries. Call it inside the transaction that made the change
    it tells of: delivery starts after commit."""
    return events_record([EventSpec(account_id, type, session_id, data)])[0]


def events_record(specs: list[EventSpec]) -> list[Event]:
    """`event_record` for many events, in order, in one write."""
    events, deliveries = _events_and_deliveries(specs)
    rows_insert([*events, *deliveries])
    _wake(deliveries)
    return events


def changes_record(changes: list[RowChange], events: list[tuple[int, EventSpec]]
                   ) -> list[list[Event] | None]:
    """Make row changes (`infra.sql.changes_write`) together with the events they tell, each
    event with one delivery per matching webhook (one statement on PostgreSQL). `events`:
    (the index of the change it tells of, the event), in the order the events happened, which
    their ids keep. For each change, its events, or None when it was not made (and nothing of
    it was written)."""
    made_events, deliveries = _events_and_deliveries([spec for _index, spec in events])
    events_of: list[list[Event]] = [[] for _ in changes]
    for (index, _spec), event in zip(events, made_events, strict=True):
        events_of[index].append(event)
    deliveries_of: list[list[Delivery]] = [[] for _ in changes]
    index_of = {id(event): index for (index, _spec), event in zip(events, made_events,
                                                                   strict=True)}
    for delivery in deliveries:
        deliveries_of[index_of[id(delivery.event)]].append(delivery)
    writes = [replace(change, rows=(*change.rows, *events_of[index], *deliveries_of[index]))
              for index, change in enumerate(changes)]
    outcome = []
    for made, change_events, change_deliveries in zip(changes_write(writes), events_of,
                                                      deliveries_of, strict=True):
        outcome.append(change_events if made else None)
        if made:
            _wake(change_deliveries)
    return outcome


def _events_and_deliveries(specs: list[EventSpec]) -> tuple[list[Event], list[Delivery]]:
    for spec in specs:
        if spec.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {spec.type!r}")
    hooks_of = _active_webhooks_of({spec.account_id for spec in specs})
    events = [Event(account_id=spec.account_id, type=spec.type, session_id=spec.session_id,
                    data=spec.data) for spec in specs]
    now = timezone.now()
    deliveries = [
        Delivery(webhook_id=webhook_id, event=event, next_attempt_at=now)
        for event in events
        for webhook_id, types, session_id in hooks_of.get(event.account_id, ())
        if (event.type in types or ALL_EVENTS in types)
        and session_id in (None, event.session_id)
    ]
    return events, deliveries


def _wake(deliveries: list[Delivery]) -> None:
    """Wake the delivery run of each webhook that got a delivery, after commit."""
    for webhook_id in dict.fromkeys(delivery.webhook_id for delivery in deliveries):
        delivery_wake(webhook_id)


# The accounts' webhooks as read in the current `webhooks_read_once` block, if any.
_read_once: contextvars.ContextVar[dict[str, list[Hook]] | None] = contextvars.ContextVar(
    "webhooks_read_once", default=None)


@contextlib.contextmanager
def webhooks_read_once() -> Iterator[None]:
    """Within the block, each account's webhooks are read once: for a batch of events recorded
    together (a run of receipts, a claim of messages being sent), as if read at its start.
    Inside another such block, the outer block's reads serve."""
    if _read_once.get() is not None:
        yield
        return
    token = _read_once.set({})
    try:
        yield
    finally:
        _read_once.reset(token)


# The accounts' active webhooks, the columns matching needs: read for every event recorded, and
# written out because building it with the ORM cost more than answering it.
_ACTIVE_WEBHOOKS_SQL = (
    f"SELECT id, account_id, events, session_id FROM {Webhook._meta.db_table} "  # noqa: S608
    "WHERE account_id IN ({accounts}) AND is_active AND deleted_at IS NULL")
_EVENTS_FIELD = Webhook._meta.get_field("events")


def _active_webhooks_of(account_ids: set[str]) -> dict[str, list[Hook]]:
    known = _read_once.get()
    missing = account_ids if known is None else account_ids - known.keys()
    hooks_of: dict[str, list[Hook]] = {account_id: [] for account_id in missing}
    if missing:
        with connection.cursor() as cursor:
            cursor.execute(_ACTIVE_WEBHOOKS_SQL.format(
                accounts=", ".join("%s" for _ in missing)), list(missing))
            for webhook_id, account_id, types, session_id in cursor.fetchall():
                hooks_of[account_id].append(
                    (webhook_id, _EVENTS_FIELD.from_db_value(types, None, connection),
                     session_id))
    if known is None:
        return hooks_of
    known.update(hooks_of)
    return {account_id: known[account_id] for account_id in account_ids}


def event_body(event: Event) -> str:
    """The delivered JSON body, the same bytes on every retry."""
    return json.dumps(
        {"id": event.id, "event": event.type, "createdAt": iso(event.created_at),
         "sessionId": event.session_id or None, "data": event.data},
        separators=(",", ":"), sort_keys=True,
    )
