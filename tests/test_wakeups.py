"""Wake-ups after commit: one pending wake-up per key, none for work that rolled back."""

import uuid

import pytest
from django.core.cache import cache
from django.db import transaction

from infra.wakeups import wake_after_commit, woken

pytestmark = pytest.mark.django_db(transaction=True)


_recording: dict[str, "RecordingTask"] = {}


class RecordingTask:
    """Stands in for a Celery task: records what is enqueued under its name."""

    def __init__(self) -> None:
        self.name = f"tests.recording-{uuid.uuid4().hex}"
        self.calls: list[tuple[list, float | None]] = []
        _recording[self.name] = self


@pytest.fixture(autouse=True)
def enqueue_recorded(monkeypatch):
    from infra import wakeups

    def record(task, args, countdown=None):
        _recording[task].calls.append((list(args), countdown))

    monkeypatch.setattr(wakeups, "enqueue", record)


@pytest.fixture
def key():
    key = f"wake-test:{uuid.uuid4().hex}"
    yield key
    cache.delete(key)


def test_many_wake_ups_in_one_transaction_make_one(key):
    task = RecordingTask()
    with transaction.atomic():
        for _ in range(50):
            wake_after_commit(task.name, "s1", key=key)
        wake_after_commit(task.name, "s2", key=key + "-other")
        assert task.calls == []  # nothing before commit
    assert task.calls == [(["s1"], None), (["s2"], None)]
    cache.delete(key + "-other")
    task.calls.pop()
    # Until the task starts (woken), later transactions add nothing either.
    with transaction.atomic():
        wake_after_commit(task.name, "s1", key=key)
    assert len(task.calls) == 1
    woken(key)
    with transaction.atomic():
        wake_after_commit(task.name, "s1", key=key)
    assert len(task.calls) == 2


def test_a_rolled_back_savepoint_does_not_swallow_a_later_wake_up(key):
    task = RecordingTask()
    with transaction.atomic():
        try:
            with transaction.atomic():
                wake_after_commit(task.name, "s1", key=key)
                raise RuntimeError("this event failed")
        except RuntimeError:
            pass
        wake_after_commit(task.name, "s1", key=key)  # the next event's work
    assert task.calls == [(["s1"], None)]


def test_a_rolled_back_transaction_wakes_nothing(key):
    task = RecordingTask()
    with pytest.raises(RuntimeError), transaction.atomic():
        wake_after_commit(task.name, "s1", key=key)
        raise RuntimeError
    assert task.calls == []
    assert cache.get(key) is None


def test_delayed_or_undeduplicated_wake_ups_are_each_sent(key):
    task = RecordingTask()
    with transaction.atomic():
        wake_after_commit(task.name, "s1", key=key, countdown=5)
        wake_after_commit(task.name, "s1", key=key, countdown=5)
        wake_after_commit(task.name, "s1", key=key, dedupe=False)
    assert task.calls == [(["s1"], 5), (["s1"], 5), (["s1"], None)]


def test_wake_ups_held_by_a_request_are_sent_when_it_ends(key):
    from infra.wakeups import wakeups_held

    task = RecordingTask()
    with wakeups_held() as held:
        with transaction.atomic():
            wake_after_commit(task.name, "s1", key=key)
        assert task.calls == []  # committed, held until the request ends
        assert [wakeup.key for wakeup in held] == [key]
    assert task.calls == [(["s1"], None)]
    assert held == []


def test_held_wake_ups_sent_with_the_slot_release_wake_only_what_was_not_pending(key):
    from accounts.limits import get_limiter
    from infra.wakeups import wakeups_held

    limiter = get_limiter()
    _outcome, _count, token = limiter.acquire("wake-test-key", 10, 5, 0.0)
    task = RecordingTask()
    cache.add(key + "-pending", 1, timeout=60)  # a wake-up of that key is already pending
    try:
        with wakeups_held() as held:
            with transaction.atomic():
                wake_after_commit(task.name, "s1", key=key)
                wake_after_commit(task.name, "s2", key=key + "-pending")
            limiter.release("wake-test-key", token, held)
            assert held == []
            assert task.calls == [(["s1"], None)]
            assert limiter.in_flight("wake-test-key") == 0
        assert task.calls == [(["s1"], None)]  # nothing sent twice on the way out
        assert cache.get(key) == 1  # the marker is the one cache.add would have set
        assert not cache.add(key, 1, timeout=60)
    finally:
        cache.delete(key + "-pending")


def test_the_memory_limiter_leaves_held_wake_ups_to_their_holder(key):
    from accounts.limits import MemoryLimiter
    from infra.wakeups import Wakeup

    limiter = MemoryLimiter()
    _outcome, _count, token = limiter.acquire("k", 10, 1, 0.0)
    held = [Wakeup(RecordingTask().name, ("s1",), key, 60)]
    limiter.release("k", token, held)
    assert len(held) == 1
    assert limiter.in_flight("k") == 0


def test_held_wake_ups_sent_on_the_way_out_set_their_markers_together(key):
    """The sender holds a message's wake-ups: their markers are set in one pipeline, and
    only the keys that had no pending wake-up wake their task."""
    from infra.wakeups import wakeups_held

    task = RecordingTask()
    cache.add(key + "-pending", 1, timeout=60)
    client = cache._cache.get_client(write=True)
    pipelines = []
    original = client.pipeline
    try:
        client.pipeline = lambda *args, **kwargs: pipelines.append(1) or original(*args,
                                                                                   **kwargs)
        with wakeups_held():
            wake_after_commit(task.name, "s1", key=key)  # autocommit: committed at once
            wake_after_commit(task.name, "s2", key=key + "-pending")
            wake_after_commit(task.name, "s3", key=key + "-third")
            assert task.calls == []
        assert task.calls == [(["s1"], None), (["s3"], None)]
        assert pipelines == [1]
        assert cache.get(key) == 1 and cache.get(key + "-third") == 1
    finally:
        del client.pipeline
        cache.delete_many([key + "-pending", key + "-third"])


def test_letting_a_wake_up_go_with_the_cache_down_does_not_fail_the_task(monkeypatch,
                                                                         caplog):
    # The marker then runs out by its timeout; meanwhile the sweepers pick the work up.
    def cache_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(cache, "delete", cache_down)
    woken(f"wake-test:{uuid.uuid4().hex}")
    assert "could not let the wake-up" in caplog.text
