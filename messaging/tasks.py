"""Celery tasks of messaging: thin, ids in, services do the work."""

from celery import shared_task

from accounts.idempotency import idempotency_records_purge
from messaging.inbound_media import inbound_media_purge
from messaging.sender import messages_sweep, session_sender_run
from messaging.services import SENDER_TASK


@shared_task(name=SENDER_TASK, acks_late=True, ignore_result=True)
def send_session_messages(session_id: str, owner: str | None = None) -> str:
    return session_sender_run(session_id=session_id, owner=owner)


@shared_task(name="messaging.sweep_messages", ignore_result=True)
def sweep_messages() -> dict:
    return messages_sweep()


@shared_task(name="messaging.purge_idempotency_records", ignore_result=True)
def purge_idempotency_records() -> int:
    return idempotency_records_purge()


@shared_task(name="messaging.purge_inbound_media", ignore_result=True)
def purge_inbound_media() -> int:
    return inbound_media_purge()
