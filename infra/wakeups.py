"""Waking a Celery task after the current transaction commits, at most one pending wake-up per
key: a burst of work makes one task, not one per row. Tasks are named, not imported: the
services that wake a task are the ones the task calls.

The task clears its key when it starts (the event consumer) or when its run ends and before it
looks for work once more (a session's sender and a webhook's delivery run, whose keys a run
that finds the lease taken leaves set), so work arriving after that wakes it again; a periodic
sweeper covers a wake-up that was lost (the broker was down).

A block of work may hold its wake-ups until it ends (`wakeups_held`), each key once: an API
request, a claim of messages being sent, a batch of engine events being applied.
"""

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue(task: str, args: tuple, countdown: float | None = None) -> None:
    """Send the named task to its queue (the task routes of the settings apply).

    A countdown is capped at TASK_COUNTDOWN_MAX_SECONDS: a worker holds a delayed task
    unacknowledged until it runs, and the broker hands it to another worker when it is older
    than the visibility timeout, long or short (that is how a killed worker's tasks come
    back). A task woken early finds nothing due yet and waits again, or leaves the work to
    its periodic sweeper."""
    if countdown is not None:
        countdown = min(countdown, settings.TASK_COUNTDOWN_MAX_SECONDS)
    current_app.send_task(task, args=list(args), countdown=countdown)


@dataclass(frozen=True)
class Wakeup:
    """A deduplicated wake-up that has committed and waits to be sent."""

    task: str
    args: tuple
    key: str
    timeout: int

    def send(self) -> None:
        """Enqueue the task if this wake-up claims its key (none was pending). Never raises:
        with the broker or the cache down, the sweeper picks the work up later."""
        try:
            if cache.add(self.key, 1, timeout=self.timeout):
                enqueue(self.task, self.args)
        except Exception:
            logger.warning("could not wake %s for %s", self.task, self.key, exc_info=True)


# The wake-ups held by the block being run (`wakeups_held`), None outside one.
_held: contextvars.ContextVar[list[Wakeup] | None] = contextvars.ContextVar(
    "held_wakeups", default=None)


def wake_after_commit(task: str, *args, key: str, countdown: float | None = None,
                      dedupe: bool = True, timeout: int = 60) -> None:
    """Enqueue the task named `task` with `args` after commit; deduplicated on `key` unless a
    delay is asked for or `dedupe` is off."""

    def wake() -> None:
        if countdown is None and dedupe:
            wakeup = Wakeup(task, args, key, timeout)
            held = _held.get()
            if held is None:
                wakeup.send()
            elif all(other.key != key for other in held):
                held.append(wakeup)
            return
        try:
            enqueue(task, args, countdown)
        except Exception:  # the broker is down: the sweeper picks the work up later
            logger.warning("could not wake %s for %s", task, key, exc_info=True)

    transaction.on_commit(wake)


@contextlib.contextmanager
def wakeups_held() -> Iterator[list[Wakeup]]:
    """Hold the wake-ups committed inside the block, each key once, and send them on exit.
    Inside another such block, the wake-ups join the outer block's."""
    outer = _held.get()
    if outer is not None:
        yield outer
        return
    held: list[Wakeup] = []
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)
        wakeups_send(held)


def wakeups_send(held: list[Wakeup]) -> None:
    """Send held wake-ups and empty `held`."""
    sent = list(held)
    held.clear()
    for wakeup in sent:
        wakeup.send()


def woken(key: str) -> None:
    """Called by the task (as it starts, or as its run ends): from now on, new work wakes it
    again. Never raises: with the cache down, the marker runs out (its timeout) and the
    sweepers pick the work up meanwhile."""
    try:
        cache.delete(key)
    except Exception:
        logger.warning("could not let the wake-up %s go", key, exc_info=True)
