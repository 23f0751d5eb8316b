"""The one consumer of engine events: whatever engine produced them, they become database
changes (and webhook events) here.

Each event is applied in its own transaction and acknowledged on the bus after it committed.
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


def _handlers() -> dict[str, Handler]:
    from sessions_app import event_handlers as session_handlers

    return dict(session_handlers.HANDLERS)


def engine_events_drain(*, max_events: int = 10_000) -> int:
    """Apply pending events until the bus is empty (or `max_events`). Returns how many."""
    bus = get_event_bus()
    handlers = _handlers()
    done = 0
    while done < max_events:
        batch = bus.read_batch(BATCH_SIZE)
        if not batch:
            break
        applied: list[str] = []
        try:
            for entry_id, event in batch:
                _apply(handlers, event)
                applied.append(entry_id)
        finally:
            # What committed is acknowledged even if the database went away mid-batch; the
            # rest stays pending and is handed out again.
            bus.ack(applied)
        done += len(batch)
    return done


def _apply(handlers: dict[str, Handler], event: EngineEvent) -> None:
    handler = handlers.get(event.type)
    if handler is None:
        logger.info("no handler for engine event %s (session %s)", event.type, event.session_id)
        return
    try:
        with transaction.atomic():
            handler(event)
    except UNAVAILABLE_ERRORS:
        raise  # not acknowledged: retried when the database is back
    except Exception:
        # A bug or a malformed event must not block every event behind it.
        logger.exception("engine event %s for %s failed", event.type, event.session_id)
