from celery import shared_task

from sessions_app.engines import get_engine
from sessions_app.engines.base import EngineEvent
from sessions_app.engines.sandbox.engine import PUBLISH_TASK


@shared_task(name=PUBLISH_TASK, acks_late=True)
def sandbox_publish_event(event: dict) -> None:
    """A sandbox receipt that is due now (the sandbox paces sent/delivered/read)."""
    get_engine().publish(EngineEvent.from_dict(event))
