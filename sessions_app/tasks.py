"""Celery tasks of the sessions app: thin, they call services."""

import logging

from celery import shared_task
from django.core.cache import cache
from django.db import transaction

# Registers the sandbox's delayed-receipt task with the worker (autodiscovery looks only here).
from sessions_app.engines.sandbox import tasks as _sandbox_tasks  # noqa: F401

logger = logging.getLogger(__name__)

_DRAIN_SCHEDULED = "engine-events:drain-scheduled"


def schedule_event_drain() -> None:
    """Wake the event consumer, at most one pending wake-up at a time (a burst of events makes
    one task, not one per event). The periodic drain covers a wake-up that was lost."""

    def enqueue() -> None:
        try:
            if cache.add(_DRAIN_SCHEDULED, 1, timeout=30):
                drain_engine_events.delay()
        except Exception:  # broker or cache down: the periodic drain will pick the events up
            logger.warning("could not schedule the engine event drain", exc_info=True)

    transaction.on_commit(enqueue)


@shared_task(name="sessions.drain_engine_events", acks_late=True, ignore_result=True)
def drain_engine_events() -> int:
    from sessions_app.event_consumer import engine_events_drain

    # Cleared first: an event published from now on schedules another run, so none waits.
    cache.delete(_DRAIN_SCHEDULED)
    return engine_events_drain()


@shared_task(name="sessions.expire_overdue_qr_codes", ignore_result=True)
def expire_overdue_qr_codes() -> int:
    from sessions_app.services import sessions_expire_overdue

    return sessions_expire_overdue()
