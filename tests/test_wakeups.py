"""Wake-ups after commit: one pending wake-up per key, none for work that rolled back."""

import uuid

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from config.wakeups import wake_after_commit, woken

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingTask:
    """Stands in for a Celery task: records apply_async calls."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[list, float | None]] = []

    def apply_async(self, args, countdown=None):
        self.calls.append((args, countdown))


@pytest.fixture
def key():
    key = f"wake-test:{uuid.uuid4().hex}"
    yield key
    cache.delete(key)


def test_many_wake_ups_in_one_transaction_make_one(key):
    task = RecordingTask()
    with transaction.atomic():
        for _ in range(50):
            wake_after_commit(task, "s1", key=key)
        wake_after_commit(task, "s2", key=key + "-other")
        assert task.calls == []  # nothing before commit
        # One hook per key, so one cache call per key at commit, not fifty.
        assert len(connection.run_on_commit) == 2
    assert task.calls == [(["s1"], None), (["s2"], None)]
    cache.delete(key + "-other")
    task.calls.pop()
    # Until the task starts (woken), later transactions add nothing either.
    with transaction.atomic():
        wake_after_commit(task, "s1", key=key)
    assert len(task.calls) == 1
    woken(key)
    with transaction.atomic():
        wake_after_commit(task, "s1", key=key)
    assert len(task.calls) == 2


def test_a_rolled_back_savepoint_does_not_swallow_a_later_wake_up(key):
    task = RecordingTask()
    with transaction.atomic():
        try:
            with transaction.atomic():
                wake_after_commit(task, "s1", key=key)
                raise RuntimeError("this event failed")
        except RuntimeError:
            pass
        wake_after_commit(task, "s1", key=key)  # the next event's work
    assert task.calls == [(["s1"], None)]


def test_a_rolled_back_transaction_wakes_nothing(key):
    task = RecordingTask()
    with pytest.raises(RuntimeError), transaction.atomic():
        wake_after_commit(task, "s1", key=key)
        raise RuntimeError
    assert task.calls == []
    assert cache.get(key) is None


def test_delayed_or_undeduplicated_wake_ups_are_each_sent(key):
    task = RecordingTask()
    with transaction.atomic():
        wake_after_commit(task, "s1", key=key, countdown=5)
        wake_after_commit(task, "s1", key=key, countdown=5)
        wake_after_commit(task, "s1", key=key, dedupe=False)
    assert task.calls == [(["s1"], 5), (["s1"], 5), (["s1"], None)]
