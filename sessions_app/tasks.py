"""Celery tasks of the sessions app: thin, they call services."""

from celery import shared_task

from infra.wakeups import woken
from sessions_app.engines import CONSUMER_TASK, CONSUMER_WAKEUP_KEY

# The sandbox's delayed receipts are a task too; Celery's autodiscovery looks only here.
from sessions_app.engines.sandbox import tasks as _sandbox_tasks  # noqa: F401
from sessions_app.event_consumer import engine_events_drain
from sessions_app.services import sessions_expire_overdue


@shared_task(name=CONSUMER_TASK, acks_late=True, ignore_result=True)
def drain_engine_events() -> int:
    woken(CONSUMER_WAKEUP_KEY)  # an event published from now on schedules another run
    return engine_events_drain()


@shared_task(name="sessions.expire_overdue_qr_codes", ignore_result=True)
def expire_overdue_qr_codes() -> int:
    return sessions_expire_overdue()
