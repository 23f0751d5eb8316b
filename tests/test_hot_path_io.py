"""The hot paths' I/O budgets: every extra round trip on them shows up in the throughput, so a
change that adds one per message fails here, not only in a benchmark run.

- Accept: once a key, its session and the number are known to the web process,
  `POST /v1/messages/text` makes one database statement (the quota taken and the message
  inserted together) and four Redis round trips (the key's record read; its slot taken; the
  slot given back; the sender's wake-up marker, already set while a sender runs).
- Send: a sender run makes one statement per message (its `sent` with history, event and
  deliveries) and four Redis round trips per message with the sandbox (count the attempt;
  read its state; publish the receipts; mark it delivered), plus a few per claim (the
  account's webhooks read once, the wake-ups) and per run.
- Receipts and webhook posts: per batch, not per message."""

import types

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from infra import local_cache
from messaging.models import Message
from messaging.sender import CLAIM_BATCH, session_sender_run
from tests.conftest import connected_session

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def frozen_local_caches(monkeypatch):
    """The per-process caches (the session's row lives 1 s) kept from expiring between two
    requests of a slow run."""
    monkeypatch.setattr(local_cache, "time", types.SimpleNamespace(monotonic=lambda: 1000.0))


def test_a_send_of_a_known_key_makes_one_statement_and_four_redis_round_trips(
        alice, frozen_local_caches, redis_round_trips):
    session = connected_session(alice)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {alice.raw_key}")

    def send(text: str):
        return client.post("/v1/messages/text", {"sessionId": session["id"],
                                                  "to": "14155550123", "text": text},
                           content_type="application/json")

    assert send("first: the key, the session and the number become known").status_code == 201
    redis_round_trips.clear()
    with CaptureQueriesContext(connection) as statements:
        response = send("counted")
    assert response.status_code == 201, response.content
    assert [query["sql"].split()[:5] for query in statements] == [
        ["WITH", "changed", "AS", "(", "INSERT"]]  # the quota, then the message from it
    assert len(redis_round_trips) == 4, [command[:100] for command in redis_round_trips]
    assert [b"EVALSHA" in command for command in redis_round_trips] == [
        False, True, False, False]
    assert Message.objects.filter(text="counted", status="queued").count() == 1


def test_a_sender_run_makes_one_statement_and_four_redis_round_trips_per_message(
        alice, settings, redis_round_trips):
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    session = connected_session(alice)
    n = 2 * CLAIM_BATCH + 5  # three claims, the last one short
    Message.objects.bulk_create([
        Message(account=alice.account, session_id=session["id"], direction="outbound",
                type="text", to_number="14155550123", text=f"m{i}", status="queued")
        for i in range(n)])
    redis_round_trips.clear()
    with CaptureQueriesContext(connection) as captured:
        assert session_sender_run(session_id=session["id"]) == "idle"
    assert Message.objects.filter(status="queued").count() == 0
    statements = [query["sql"] for query in captured]
    sent = [sql for sql in statements if sql.startswith("WITH changed AS (UPDATE")]
    hooks = [sql for sql in statements if "FROM webhooks_webhook" in sql]
    claims = [sql for sql in statements if sql.lstrip().startswith("WITH head AS")]
    assert len(sent) == n
    assert len(claims) == 4  # 20, 20, 5, then the one that finds the queue empty
    assert len(hooks) == 3  # the account's webhooks, read once per claim
    # The run's own: the lease taken and let go, why the last claim found nothing (the
    # session and the head of the queue, one statement), one look at the queue once the lease
    # is free.
    assert len(statements) - len(sent) - len(hooks) - len(claims) <= 5, statements
    # The sandbox's four per message; per claim, the wake-ups it holds (the event consumer's,
    # the webhooks'); the run's wake-up marker let go; at most one wake-up task published.
    assert 4 * n <= len(redis_round_trips) <= 4 * n + 2 * len(claims) + 2, [
        command[:60] for command in redis_round_trips]


def test_receipts_and_webhook_posts_cost_statements_per_batch_not_per_message(
        alice, settings, receiver, redis_round_trips):
    """The event consumer applies a batch of receipts, and a delivery run posts a batch of
    deliveries, in as many statements and round trips for 30 events as for 90: the receipts'
    changes are written a round at a time (every message's `delivered`, then every
    message's `read`), one statement each."""
    from sessions_app.event_consumer import engine_events_drain
    from webhooks.delivery import webhook_deliver_due

    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    session = connected_session(alice)
    webhook = alice.http.post("/v1/webhooks", json={
        "url": receiver.url("/hook"), "events": ["message.status"]}).json()["data"]
    engine_events_drain()  # the session's own events

    def round_of(n: int) -> tuple[int, int, int, int]:
        Message.objects.bulk_create([
            Message(account=alice.account, session_id=session["id"], direction="outbound",
                    type="text", to_number="14155550123", text=f"m{i}", status="queued")
            for i in range(n)])
        assert session_sender_run(session_id=session["id"]) == "idle"
        receiver.hits.clear()
        redis_round_trips.clear()
        with CaptureQueriesContext(connection) as receipts:
            assert engine_events_drain() == 3 * n  # sent, delivered, read
        receipts_redis = len(redis_round_trips)
        redis_round_trips.clear()
        with CaptureQueriesContext(connection) as posts:
            assert webhook_deliver_due(webhook_id=webhook["id"]) == "idle"
        assert len(receiver.hits_for("/hook")) == 3 * n
        assert Message.objects.exclude(status="read").count() == 0
        return len(receipts), receipts_redis, len(posts), len(redis_round_trips)

    round_of(3)  # what a process reads once
    assert round_of(10) == round_of(30)
