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


def test_held_wake_ups_wake_only_what_was_not_pending(key):
    from infra.wakeups import wakeups_held

    task = RecordingTask()
    cache.add(key + "-pending", 1, timeout=60)  # a wake-up of that key is already pending
    try:
        with wakeups_held() as held:
            wake_after_commit(task.name, "s1", key=key)  # autocommit: committed at once
            wake_after_commit(task.name, "s2", key=key + "-pending")
            wake_after_commit(task.name, "s1", key=key)  # held once
            assert task.calls == [] and len(held) == 2
        assert task.calls == [(["s1"], None)]
        assert cache.get(key) == 1  # the marker, until the task lets it go
    finally:
        cache.delete(key + "-pending")


def test_a_block_inside_another_holds_its_wake_ups_for_the_outer_one(key):
    from infra.wakeups import wakeups_held

    task = RecordingTask()
    with wakeups_held():
        with wakeups_held():
            wake_after_commit(task.name, "s1", key=key)
        assert task.calls == []
    assert task.calls == [(["s1"], None)]


def test_letting_a_wake_up_go_with_the_cache_down_does_not_fail_the_task(monkeypatch,
                                                                         caplog):
    # The marker then runs out by its timeout; meanwhile the sweepers pick the work up.
    def cache_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(cache, "delete", cache_down)
    woken(f"wake-test:{uuid.uuid4().hex}")
    assert "could not let the wake-up" in caplog.text


def test_a_countdown_is_capped_under_the_brokers_visibility_timeout(monkeypatch, settings):
    from celery import current_app

    from infra import wakeups

    monkeypatch.undo()  # the real `enqueue`, down to Celery's own send_task
    sent = []
    monkeypatch.setattr(current_app, "send_task",
                        lambda name, args, countdown: sent.append((name, countdown)))
    wakeups.enqueue("some.task", ("x",), countdown=5 * 3600)
    wakeups.enqueue("some.task", ("x",), countdown=2.0)
    wakeups.enqueue("some.task", ("x",))
    assert sent == [("some.task", settings.TASK_COUNTDOWN_MAX_SECONDS), ("some.task", 2.0),
                    ("some.task", None)]
    assert settings.TASK_COUNTDOWN_MAX_SECONDS + settings.CELERY_TASK_TIME_LIMIT \
        < settings.CELERY_VISIBILITY_TIMEOUT
