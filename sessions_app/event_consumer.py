"""The one consumer of engine events: whatever engine produced them, they become database
changes (and webhook events) here.

Apps register their handlers when they start (`handler_register`, in their AppConfig's
`ready`): the sessions app's own, then messaging's, in INSTALLED_APPS order, so a session's
`connected` is applied before the sends it releases. The consumer imports none of them.

Events are applied in batches, one transaction each, and acknowledged after it committed.
Handlers are idempotent and never move state backwards, so a replay (after a crash between
commit and acknowledgement) or two consumers running at once change nothing twice.
"""

import logging
from collections.abc import Callable

from django.db import transaction

from infra.dependencies import UNAVAILABLE_ERRORS
from infra.wakeups import wakeups_held
from sessions_app.engines.base import EngineEvent
from sessions_app.engines.bus import get_event_bus

logger = logging.getLogger(__name__)

BATCH_SIZE = 200

Handler = Callable[[EngineEvent], None]
BatchHandler = Callable[[list[EngineEvent]], None]

# Each event type's handlers, in the order they were registered.
_handlers: dict[str, list[Handler]] = {}
# Types whose handler also has a form for a run of consecutive events (receipts).
_batch_handlers: dict[str, BatchHandler] = {}


def handler_register(event_type: str, handler: Handler, *,
                     batch: BatchHandler | None = None) -> None:
    """Apply `handler` to each event of `event_type`, after the handlers registered before it.
    `batch`: the same for a run of consecutive events of the type, used while it is the
    type's only handler."""
    handlers = _handlers.setdefault(event_type, [])
    if handler not in handlers:
        handlers.append(handler)
    if batch is not None:
        _batch_handlers[event_type] = batch


def _batch_handler_of(event_type: str) -> BatchHandler | None:
    if len(_handlers.get(event_type, ())) != 1:
        return None
    return _batch_handlers.get(event_type)


def engine_events_drain(*, max_events: int = 10_000) -> int:
    """Apply pending events until the bus is empty (or `max_events`). Returns how many."""
    bus = get_event_bus()
    done = 0
    # The wake-ups that applying events makes (a webhook's delivery run for each event
    # recorded) are sent once per key, however many events a batch holds.
    with wakeups_held():
        while done < max_events:
            batch = bus.read_batch(BATCH_SIZE)
            if not batch:
                break
            # One transaction per batch (one commit, not one per event), a savepoint per event
            # so a failing handler loses only its own event. If the database goes away
            # mid-batch nothing is acknowledged and the whole batch is handed out again
            # (handlers are idempotent).
            with transaction.atomic():
                for run in _runs([event for _entry_id, event in batch]):
                    if len(run) > 1:
                        _apply_run(run)
                    else:
                        _apply(run[0])
            bus.ack([entry_id for entry_id, _ in batch])
            done += len(batch)
    return done


def _runs(events: list[EngineEvent]):
    """The events in order, cut into runs: consecutive events of a type that has a batch
    handler go together; every other event is a run of its own. Order is kept across runs,
    so a session's `connected` is still applied before the receipts that follow it."""
    run: list[EngineEvent] = []
    for event in events:
        if run and (event.type != run[0].type or _batch_handler_of(event.type) is None):
            yield run
            run = []
        run.append(event)
    if run:
        yield run


def _apply_run(run: list[EngineEvent]) -> None:
    """A run in one savepoint; if it fails, its events one by one, so that a bad event
    loses only itself."""
    try:
        with transaction.atomic():
            _batch_handler_of(run[0].type)(run)
    except UNAVAILABLE_ERRORS:
        raise
    except Exception:
        logger.warning("a run of %d %s events failed; applying them one by one", len(run),
                       run[0].type, exc_info=True)
        for event in run:
            _apply(event)


def _apply(event: EngineEvent) -> None:
    handlers = _handlers.get(event.type)
    if not handlers:
        logger.info("no handler for engine event %s (session %s)", event.type, event.session_id)
        return
    try:
        with transaction.atomic():
            for handler in handlers:
                handler(event)
    except UNAVAILABLE_ERRORS:
        raise  # not acknowledged: retried when the database is back
    except Exception:
        # A bug or a malformed event must not block every event behind it.
        logger.exception("engine event %s for %s failed", event.type, event.session_id)
