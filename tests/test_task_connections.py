"""Database connections around Celery tasks (infra/db.py): kept from one task to the
next as Django keeps them between requests, and replaced when they died while idle."""

import time

import psycopg
import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from config.celery import (
    app,
    database_connections_at_task_end,
    database_connections_at_task_start,
)

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def a_task() -> int:
    """What the signals wrap: a task that uses the database."""
    database_connections_at_task_start()
    try:
        return backend_pid()
    finally:
        database_connections_at_task_end()


def test_tasks_one_after_another_use_one_connection():
    assert len({a_task() for _ in range(5)}) == 1


def test_celerys_own_fixup_leaves_the_connection_open():
    # Without CELERY_DB_REUSE_MAX it closed every connection before and after each task.
    first = backend_pid()
    fixup = DjangoWorkerFixup(app)
    for _ in range(10):
        fixup.close_database()
    assert connection.connection is not None and backend_pid() == first


def terminate(pid: int) -> None:
    """The database ends that connection (as a restart or an idle timeout does), and this
    returns once its backend has gone."""
    params = connection.get_connection_params()
    with psycopg.connect(**{name: value for name, value in params.items()
                            if name != "cursor_factory"}, autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]


@pytest.fixture
def asked(monkeypatch) -> list[int]:
    """The liveness questions (SELECT 1) put to the connection, counted."""
    from django.db import connections

    wrapper = type(connections["default"])
    questions = []
    is_usable = wrapper.is_usable

    def counted(self):
        questions.append(1)
        return is_usable(self)

    monkeypatch.setattr(wrapper, "is_usable", counted)
    return questions


def test_a_connection_that_died_between_tasks_is_replaced_before_the_next_one(asked):
    first = a_task()  # (asked if the connection rested long since an earlier test)
    asked.clear()
    terminate(first)
    # A short rest, however long terminating took (another test may have paused the server).
    connection.task_rest_started = time.monotonic()
    second = a_task()  # no error: the dead connection was noticed at the task's start
    assert second != first
    # Noticed by its socket, which had the server's goodbye to read: no question asked.
    assert asked == []


def test_a_connection_that_rested_a_moment_is_not_asked_whether_it_is_alive(asked):
    first = a_task()
    asked.clear()
    assert a_task() == first and asked == []


def test_a_connection_that_rested_long_is_asked_whether_it_is_alive(asked):
    from infra import db

    first = a_task()
    asked.clear()
    connection.task_rest_started -= db.ASK_AFTER_REST_SECONDS + 1  # a long rest
    assert a_task() == first and asked == [1]


def test_a_connection_left_outside_autocommit_is_not_kept():
    first = a_task()
    database_connections_at_task_start()
    connection.set_autocommit(False)  # a task that died inside a transaction
    database_connections_at_task_end()
    assert connection.connection is None
    assert a_task() != first
