"""Celery tasks of messaging: thin, ids in, services do the work."""

from celery import shared_task

from config.wakeups import wake_after_commit, woken


def _scheduled_key(session_id: str) -> str:
    return f"sender-scheduled:{session_id}"


def schedule_sender(session_id: str, *, countdown: float | None = None,
                    dedupe: bool = True, owner: str | None = None) -> None:
    """Wake the session's sender after commit (one pending wake-up per session). `owner`: the
    continuation of a paused run, which holds the session's lease under that name."""
    args = (session_id,) if owner is None else (session_id, owner)
    wake_after_commit(send_session_messages, *args, key=_scheduled_key(session_id),
                      countdown=countdown, dedupe=dedupe)


def sender_woken(session_id: str) -> None:
    """Called by a run as it lets the session's lease go, before it looks at the queue once
    more: from now on, a message accepted wakes a new run."""
    woken(_scheduled_key(session_id))


@shared_task(name="messaging.send_session_messages", acks_late=True, ignore_result=True)
def send_session_messages(session_id: str, owner: str | None = None) -> str:
    from messaging.sender import session_sender_run

    return session_sender_run(session_id=session_id, owner=owner)


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
