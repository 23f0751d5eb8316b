from celery import shared_task

from sessions_app.engines import get_engine
from sessions_app.engines.base import EngineEvent
from sessions_app.engines.sandbox.engine import PUBLISH_TASK, RECONNECT_TASK


@shared_task(name=PUBLISH_TASK, acks_late=True)
def sandbox_publish_event(event: dict) -> None:
    """A sandbox receipt that is due now (the sandbox paces sent/delivered/read)."""
    get_engine().publish(EngineEvent.from_dict(event))


@shared_task(name=RECONNECT_TASK, acks_late=True)
def sandbox_reconnect(session_id: str) -> None:
    """The sandbox's network is back after a simulated drop."""
    get_engine().reconnect(session_id)
