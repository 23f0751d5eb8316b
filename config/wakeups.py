"""Waking a Celery task after the current transaction commits, at most one pending wake-up per
key: a burst of work makes one task, not one per row. The task clears its key when it starts,
so work arriving after that wakes it again; a periodic sweeper covers a wake-up that was lost
(the broker was down)."""

import logging

from django.core.cache import cache
from django.db import connection, transaction

logger = logging.getLogger(__name__)


def wake_after_commit(task, *args, key: str, countdown: float | None = None,
                      dedupe: bool = True, timeout: int = 60) -> None:
    """Enqueue `task(*args)` after commit; deduplicated on `key` unless a delay is asked for
    or `dedupe` is off."""

    deduplicated = countdown is None and dedupe
    if deduplicated and _already_pending(key):
        return

    def enqueue() -> None:
        try:
            if not deduplicated:
                task.apply_async(args=list(args), countdown=countdown)
            elif cache.add(key, 1, timeout=timeout):
                task.apply_async(args=list(args))
        except Exception:  # broker or cache down: the sweeper picks the work up later
            logger.warning("could not wake %s for %s", task.name, key, exc_info=True)

    enqueue.wake_key = key if deduplicated else None
    transaction.on_commit(enqueue)


def _already_pending(key: str) -> bool:
    """Whether this transaction already holds a deduplicated wake-up for `key`: a batch of
    100 events for one webhook then makes one wake-up, not 100 cache calls. Safe with
    savepoints: a hook dropped by a savepoint rollback can only be one registered inside that
    savepoint, which also undoes the work of any call that skipped because of it."""
    if not connection.in_atomic_block:
        return False
    return any(getattr(hook, "wake_key", None) == key
               for _sids, hook, _robust in connection.run_on_commit)


def woken(key: str) -> None:
    """Called by the task as it starts: from now on, new work wakes it again."""
    cache.delete(key)
