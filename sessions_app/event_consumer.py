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
BatchHandler = Callable[[list[EngineEvent]], None]


def _handlers() -> dict[str, list[Handler]]:
    """Each app's handlers, sessions first (a `connected` session before its queued sends)."""
    from messaging import event_handlers as message_handlers
    from sessions_app import event_handlers as session_handlers

    handlers: dict[str, list[Handler]] = {}
    for module in (session_handlers, message_handlers):
        for event_type, handler in module.HANDLERS.items():
            handlers.setdefault(event_type, []).append(handler)
    return handlers


def _batch_handlers(handlers: dict[str, list[Handler]]) -> dict[str, BatchHandler]:
    """Types whose only handler also has a form for a run of events (receipts)."""
    from messaging import event_handlers as message_handlers

    return {event_type: batch for event_type, batch in message_handlers.BATCH_HANDLERS.items()
            if len(handlers.get(event_type, ())) == 1}


def engine_events_drain(*, max_events: int = 10_000) -> int:
    """Apply pending events until the bus is empty (or `max_events`). Returns how many."""
    bus = get_event_bus()
    handlers = _handlers()
    batch_handlers = _batch_handlers(handlers)
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
            for run in _runs([event for _entry_id, event in batch], batch_handlers):
                if len(run) > 1:
                    _apply_run(handlers, batch_handlers[run[0].type], run)
                else:
                    _apply(handlers, run[0])
        bus.ack([entry_id for entry_id, _ in batch])
        done += len(batch)
    return done


def _runs(events: list[EngineEvent], batch_handlers: dict[str, BatchHandler]):
    """The events in order, cut into runs: consecutive events of a type that has a batch
    handler go together; every other event is a run of its own. Order is kept across runs,
    so a session's `connected` is still applied before the receipts that follow it."""
    run: list[EngineEvent] = []
    for event in events:
        if run and (event.type != run[0].type or event.type not in batch_handlers):
            yield run
            run = []
        run.append(event)
    if run:
        yield run


def _apply_run(handlers: dict[str, list[Handler]], batch_handler: BatchHandler,
               run: list[EngineEvent]) -> None:
    """A run in one savepoint; if it fails, its events one by one, so that a bad event
    loses only itself."""
    try:
        with transaction.atomic():
            batch_handler(run)
    except UNAVAILABLE_ERRORS:
        raise
    except Exception:
        logger.warning("a run of %d %s events failed; applying them one by one", len(run),
                       run[0].type, exc_info=True)
        for event in run:
            _apply(handlers, event)


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
