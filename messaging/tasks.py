"""Celery tasks of messaging: thin, ids in, services do the work."""

import logging

from celery import shared_task
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def _scheduled_key(session_id: str) -> str:
    return f"sender-scheduled:{session_id}"


def schedule_sender(session_id: str, *, countdown: float | None = None,
                    dedupe: bool = True) -> None:
    """Wake the session's sender after commit: at most one pending wake-up per session
    (a burst of sends makes one task), unless `dedupe` is off or a delay is asked for."""

    def enqueue() -> None:
        try:
            if countdown is not None or not dedupe:
                send_session_messages.apply_async(args=[session_id], countdown=countdown)
            elif cache.add(_scheduled_key(session_id), 1, timeout=60):
                send_session_messages.delay(session_id)
        except Exception:  # broker down: the sweeper wakes the sender later
            logger.warning("could not schedule the sender of %s", session_id, exc_info=True)

    transaction.on_commit(enqueue)


@shared_task(name="messaging.send_session_messages", acks_late=True, ignore_result=True)
def send_session_messages(session_id: str) -> str:
    from messaging.sender import session_sender_run

    # Cleared first: a message accepted from now on wakes another run.
    cache.delete(_scheduled_key(session_id))
    return session_sender_run(session_id=session_id)


@shared_task(name="messaging.sweep_messages", ignore_result=True)
def sweep_messages() -> dict:
    from messaging.sender import messages_sweep

    return messages_sweep()


@shared_task(name="messaging.purge_idempotency_records", ignore_result=True)
def purge_idempotency_records() -> int:
    from accounts.idempotency import idempotency_records_purge

    return idempotency_records_purge()


@shared_task(name="messaging.purge_inbound_media", ignore_result=True)
def purge_inbound_media() -> int:
    from messaging.inbound_media import inbound_media_purge

    return inbound_media_purge()
