from celery import shared_task

from sessions_app.engines.base import EngineEvent


@shared_task(name="sandbox.publish_event", acks_late=True)
def sandbox_publish_event(event: dict) -> None:
    """A sandbox receipt that is due now (the sandbox paces sent/delivered/read)."""
    from sessions_app.engines import get_engine

    get_engine().publish(EngineEvent.from_dict(event))
