"""Celery tasks of the sessions app: thin, they call services."""

from celery import shared_task

# Registers the sandbox's delayed-receipt task with the worker (autodiscovery looks only here).
from config.wakeups import wake_after_commit, woken
from sessions_app.engines.sandbox import tasks as _sandbox_tasks  # noqa: F401

_DRAIN_SCHEDULED = "engine-events:drain-scheduled"


def schedule_event_drain() -> None:
    """Wake the event consumer after commit (one pending wake-up however many events)."""
    wake_after_commit(drain_engine_events, key=_DRAIN_SCHEDULED, timeout=30)


@shared_task(name="sessions.drain_engine_events", acks_late=True, ignore_result=True)
def drain_engine_events() -> int:
    from sessions_app.event_consumer import engine_events_drain

    woken(_DRAIN_SCHEDULED)  # an event published from now on schedules another run
    return engine_events_drain()


@shared_task(name="sessions.expire_overdue_qr_codes", ignore_result=True)
def expire_overdue_qr_codes() -> int:
    from sessions_app.services import sessions_expire_overdue

    return sessions_expire_overdue()
