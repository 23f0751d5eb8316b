"""Writes for webhook events."""

from typing import Any

from webhooks.models import Event

EVENT_TYPES = ("message.received", "message.status", "session.status")


def event_record(
    *, account_id: str, type: str, session_id: str, data: dict[str, Any]
) -> Event:
    """Record an event for the account. Call it inside the transaction that made the change,
    so the event exists if and only if the change does."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    return Event.objects.create(account_id=account_id, type=type, session_id=session_id, data=data)
