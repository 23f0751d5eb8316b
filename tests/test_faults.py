"""Fault tests, bounded and on loopback only: Redis going away mid-run, a webhook receiver down
for hours, a Celery worker killed during a 1,000-message run."""

import itertools
import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from messaging.models import Message, MessageStatusChange
from tests.conftest import assert_error, connected_session, http_client
from tests.support.http_server import LocalServer, Route
from tests.support.servers import (
    OwnRedis,
    database_url_of_test_db,
    free_port,
    gunicorn_server,
)
from tests.support.worker import celery_worker as start_worker
from tests.support.worker import wait_until
from webhooks.delivery import RETRY_DELAYS, webhook_deliver_due
from webhooks.models import Delivery, DeliveryAttempt
from webhooks.outbox import event_record

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


def test_redis_going_away_answers_503_then_recovers_and_loses_nothing(alice, tmp_path):
    redis = OwnRedis(tmp_path)
    redis.start()
    namespace = f"fault-{uuid.uuid4().hex[:6]}"
    env = {"DATABASE_URL": database_url_of_test_db(), "REDIS_URL": redis.url,
           "REDIS_NAMESPACE": namespace, "SANDBOX_STATUS_DELAY_SECONDS": "0",
           "SWEEP_INTERVAL_SECONDS": "1"}
    try:
        with gunicorn_server(env, workers=1) as base, \
                http_client(base, alice.raw_key) as client:
            session = connected_session(type("T", (), {"http": client})())
            body = {"sessionId": session["id"], "to": "14155550123", "text": "before"}
            accepted = [client.post("/v1/messages/text", json=body).json()["data"]["id"]
                        for _ in range(5)]
            redis.stop()
            assert_error(client.get("/v1/account"), 503, "service_unavailable")
            assert_error(client.post("/v1/messages/text", json=body), 503, "service_unavailable")
            redis.start()  # empty: the broker's queued tasks are gone with it
            assert wait_until(lambda: client.get("/v1/account").status_code == 200)
        assert Message.objects.filter(pk__in=accepted, status="queued").count() == 5
        # A worker on the new Redis: the sweeper finds the queued messages and sends them.
        queue = f"fault-{uuid.uuid4().hex[:6]}"
        worker_env = {**env, "CELERY_QUEUE": queue}
        with start_worker(queue=queue, namespace=namespace, extra_env=worker_env):
            wait_until(lambda: Message.objects.filter(pk__in=accepted, status="read").count()
                       == 5, timeout=60)
        assert MessageStatusChange.objects.filter(message_id__in=accepted,
                                                  status="sent").count() == 5
    finally:
        redis.stop()


def test_a_receiver_down_for_hours_gets_every_event_once_on_schedule(alice, settings):
    settings.ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    port = free_port()
    with LocalServer(port=port) as receiver:
        receiver.routes["/hook"] = Route(status=200)
        hook = alice.http.post("/v1/webhooks", json={
            "url": receiver.url("/hook"), "events": ["message.status"]}).json()["data"]
    # The receiver is gone (connections refused) when five events happen.
    with transaction.atomic():
        events = [event_record(account_id=alice.account.id, type="message.status",
                               session_id="s", data={"n": n}) for n in range(5)]
    now = timezone.now()
    clock = lambda: now  # noqa: E731

    def run_until_quiet():
        while webhook_deliver_due(webhook_id=hook["id"], clock=clock,
                                  jitter=lambda a, b: 0.0) == "failed":
            pass

    seen: list[str] = []
    back_at = now + timedelta(hours=3)
    receiver = None
    try:
        while Delivery.objects.filter(webhook_id=hook["id"], status="pending").exists():
            if receiver is None and now >= back_at:  # the receiver comes back
                receiver = LocalServer(port=port).__enter__()
                receiver.routes["/hook"] = Route(status=200)
            run_until_quiet()
            following = (Delivery.objects.filter(webhook_id=hook["id"], status="pending")
                         .order_by("next_attempt_at").first())
            if following is not None:
                now = max(following.next_attempt_at, now)
        seen = [hit.headers["webhook-id"] for hit in receiver.hits_for("/hook")]
    finally:
        if receiver is not None:
            receiver.__exit__(None)
    # A receiver deduplicating on webhook-id sees each event exactly once.
    assert sorted(set(seen)) == sorted(e.id for e in events)
    for event in events:
        delivery = Delivery.objects.get(event=event)
        assert delivery.status == "succeeded"
        times = list(DeliveryAttempt.objects.filter(delivery=delivery)
                     .order_by("attempted_at").values_list("attempted_at", flat=True))
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        # every wait follows the schedule (a run may try a due delivery later, never earlier)
        assert all(gap >= RETRY_DELAYS[i] for i, gap in enumerate(gaps)), gaps
        assert times[-1] >= back_at


def test_a_worker_killed_during_a_thousand_messages_sends_each_exactly_once(make_tenant,
                                                                          settings):
    from config.celery import app
    from sessions_app.engines.sandbox.engine import SandboxEngine

    queue = f"kill-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    env = {"SEND_MIN_INTERVAL_SECONDS": "0.004", "MESSAGE_SENDING_TIMEOUT_SECONDS": "2",
           "SWEEP_INTERVAL_SECONDS": "1", "SENDER_LEASE_SECONDS": "3",
           "ENGINE_EVENT_CLAIM_TIMEOUT_SECONDS": "3", "SANDBOX_STATUS_DELAY_SECONDS": "0"}
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    alice = make_tenant("bulk", plan="business")  # 3,000 requests a minute
    session = connected_session(alice)
    body = {"sessionId": session["id"], "to": "14155550123", "text": "load"}
    ids = [alice.http.post("/v1/messages/text", json=body).json()["data"]["id"]
           for _ in range(1000)]

    def sent() -> int:
        return MessageStatusChange.objects.filter(message_id__in=ids, status="sent").count()

    with start_worker(queue=queue, namespace=settings.REDIS_NAMESPACE, extra_env=env) as first:
        wait_until(lambda: sent() >= 100, timeout=60)
        os.killpg(first.pid, signal.SIGKILL)
    assert sent() < 1000, "the worker finished before it could be killed"
    with start_worker(queue=queue, namespace=settings.REDIS_NAMESPACE, extra_env=env):
        wait_until(lambda: sent() == 1000, timeout=120)
        wait_until(lambda: Message.objects.filter(pk__in=ids, status="read").count() == 1000,
                   timeout=60)
    time.sleep(0.5)
    for message_id in ids:
        assert MessageStatusChange.objects.filter(message_id=message_id,
                                                  status="sent").count() == 1
    assert len([i for i in ids if SandboxEngine.send_attempts(i) > 1]) <= 1


def test_a_killed_workers_delayed_tasks_come_back_after_the_visibility_timeout(make_tenant,
                                                                              settings):
    """The sandbox schedules each message's receipts as delayed tasks, which the worker holds
    unacknowledged until they are due. Killed outright, it takes them along: the broker gives
    them to the next worker once they are CELERY_VISIBILITY_TIMEOUT old (kombu's default,
    an hour, left them waiting that long)."""
    from config.celery import app

    queue = f"vis-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    env = {"SANDBOX_STATUS_DELAY_SECONDS": "4", "CELERY_VISIBILITY_TIMEOUT": "8",
           "SWEEP_INTERVAL_SECONDS": "1"}
    alice = make_tenant("delayed", plan="business")
    session = connected_session(alice)
    body = {"sessionId": session["id"], "to": "14155550123", "text": "receipts pending"}
    ids = [alice.http.post("/v1/messages/text", json=body).json()["data"]["id"]
           for _ in range(20)]

    def count(status: str) -> int:
        return MessageStatusChange.objects.filter(message_id__in=ids, status=status).count()

    with start_worker(queue=queue, namespace=settings.REDIS_NAMESPACE, extra_env=env) as first:
        wait_until(lambda: count("sent") == 20, timeout=60)
        os.killpg(first.pid, signal.SIGKILL)
    assert count("read") < 20, "the receipts came before the worker could be killed"
    with start_worker(queue=queue, namespace=settings.REDIS_NAMESPACE, extra_env=env):
        wait_until(lambda: count("read") == 20, timeout=60)
    assert count("sent") == 20
    # Each receipt once. Restored together, a message's `read` may be applied before its
    # `delivered`, which then changes nothing (read implies it): as when WhatsApp skips it.
    changes = MessageStatusChange.objects.filter(message_id__in=ids, status__in=("delivered",
                                                                                 "read"))
    pairs = list(changes.values_list("message_id", "status"))
    assert len(pairs) == len(set(pairs)) and count("read") == 20


def test_postgresql_going_away_answers_503_then_recovers(alice):
    from django.db import connection

    from tests.support.tcp_forwarder import Forwarder

    settings_dict = connection.settings_dict
    forwarder = Forwarder(int(settings_dict["PORT"] or 5432))
    forwarder.up()
    url = (f"postgres://{settings_dict['USER']}@127.0.0.1:{forwarder.port}/"
           f"{settings_dict['NAME']}")
    try:
        with gunicorn_server({"DATABASE_URL": url}, workers=1) as base, \
                http_client(base, alice.raw_key) as client:
            assert client.get("/v1/sessions").status_code == 200
            forwarder.down()
            for _ in range(2):  # the broken connection, then a refused new one
                response = client.get("/v1/sessions")
                assert_error(response, 503, "service_unavailable")
                assert int(response.headers["Retry-After"]) > 0
            health = client.get("/v1/health")
            assert "database" in health.json()["error"]["details"]["reason"]
            forwarder.up()
            assert wait_until(lambda: client.get("/v1/sessions").status_code == 200, timeout=20)
            assert client.get("/v1/health").status_code == 200
    finally:
        forwarder.down()
