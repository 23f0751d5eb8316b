"""Celery's Redis transport keeps its publishing client (config/broker.py): every wake-up,
continuation and delivery run is an `apply_async`, and a client built for each cost an eighth
of it."""

import uuid

import pytest
import redis
from django.conf import settings

from config.celery import app
from infra.broker import Transport


@pytest.fixture
def throwaway_queue():
    """A queue no worker reads, dropped afterwards with kombu's binding of it."""
    name = f"broker-test-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(name, f"_kombu.binding.{name}")


def test_the_broker_is_the_transport_that_keeps_its_client():
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)


def test_publishing_tasks_builds_no_client_after_the_first(throwaway_queue, monkeypatch):
    app.send_task("tests.never_run", queue=throwaway_queue)  # the channel's first client
    built = []
    construct = redis.Redis.__init__
    monkeypatch.setattr(redis.Redis, "__init__",
                        lambda self, *args, **kwargs: built.append(1)
                        or construct(self, *args, **kwargs))
    for _ in range(5):
        app.send_task("tests.never_run", queue=throwaway_queue)
    monkeypatch.undo()
    assert built == []
    assert redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(throwaway_queue) == 6


def test_a_channel_whose_pools_were_dropped_publishes_through_a_client_of_the_new_pool():
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        channel._disconnect_pools()  # as kombu does after a fork
        second = channel._create_client()
        assert second is not first and second.connection_pool is channel.pool
        assert channel._create_client(asynchronous=True) is not second
