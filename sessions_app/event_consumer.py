"""The one consumer of engine events: whatever engine produced them, they become database
changes (and webhook events) here.

Events are applied in batches, one transaction each, and acknowledged after it committed.
Handlers are idempotent and never move state backwards, so a replay (after a crash between
commit and acknowledgement) or two consumers running at once change nothing twice.
"""

import logging
from collections.abc import Callable

from django.db import transaction

from config.exception_handler import UNAVAILABLE_ERRORS
from sessions_app.engines.base import EngineEvent
from sessions_app.engines.bus import get_event_bus

logger = logging.getLogger(__name__)

BATCH_SIZE = 200

Handler = Callable[[EngineEvent], None]


def _handlers() -> dict[str, list[Handler]]:
    """Each app's handlers, sessions first (a `connected` session before its queued sends)."""
    from messaging import event_handlers as message_handlers
    from sessions_app import event_handlers as session_handlers

    handlers: dict[str, list[Handler]] = {}
    for module in (session_handlers, message_handlers):
        for event_type, handler in module.HANDLERS.items():
            handlers.setdefault(event_type, []).append(handler)
    return handlers


def engine_events_drain(*, max_events: int = 10_000) -> int:
    """Apply pending events until the bus is empty (or `max_events`). Returns how many."""
    bus = get_event_bus()
    handlers = _handlers()
    done = 0
    while done < max_events:
        batch = bus.read_batch(BATCH_SIZE)
        if not batch:
            break
        # One transaction per batch (one commit, not one per event), a savepoint per event so
        # a failing handler loses only its own event. If the database goes away mid-batch
        # nothing is acknowledged and the whole batch is handed out again (handlers are
        # idempotent).
        with transaction.atomic():
            for _entry_id, event in batch:
                _apply(handlers, event)
        bus.ack([entry_id for entry_id, _ in batch])
        done += len(batch)
    return done


def _apply(handlers: dict[str, list[Handler]], event: EngineEvent) -> None:
    if event.type not in handlers:
        logger.info("no handler for engine event %s (session %s)", event.type, event.session_id)
        return
    try:
        with transaction.atomic():
            for handler in handlers[event.type]:
                handler(event)
    except UNAVAILABLE_ERRORS:
        raise  # not acknowledged: retried when the database is back
    except Exception:
        # A bug or a malformed event must not block every event behind it.
        logger.exception("engine event %s for %s failed", event.type, event.session_id)
