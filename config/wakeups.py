"""Waking a Celery task after the current transaction commits, at most one pending wake-up per
key: a burst of work makes one task, not one per row. The task clears its key when it starts,
so work arriving after that wakes it again; a periodic sweeper covers a wake-up that was lost
(the broker was down)."""

import logging

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def wake_after_commit(task, *args, key: str, countdown: float | None = None,
                      dedupe: bool = True, timeout: int = 60) -> None:
    """Enqueue `task(*args)` after commit; deduplicated on `key` unless a delay is asked for
    or `dedupe` is off."""

    def enqueue() -> None:
        try:
            if countdown is not None or not dedupe:
                task.apply_async(args=list(args), countdown=countdown)
            elif cache.add(key, 1, timeout=timeout):
                task.apply_async(args=list(args))
        except Exception:  # broker or cache down: the sweeper picks the work up later
            logger.warning("could not wake %s for %s", task.name, key, exc_info=True)

    transaction.on_commit(enqueue)


def woken(key: str) -> None:
    """Called by the task as it starts: from now on, new work wakes it again."""
    cache.delete(key)
