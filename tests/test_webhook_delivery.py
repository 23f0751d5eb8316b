"""Webhook delivery: the outbox, signed at-least-once delivery, the retry schedule (time
injected, never slept), 410, auto-disable, replay, and end to end through a real worker."""

import json
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as ReferenceVerifier

from tests.conftest import connected_session
from tests.support.http_server import Gate, Overlaps, Route
from tests.support.worker import wait_until
from webhooks.delivery import MAX_ATTEMPTS, RETRY_DELAYS, webhook_deliver_due
from webhooks.models import Delivery, Event, Webhook
from webhooks.outbox import EventSpec, event_record, events_record

pytestmark = pytest.mark.django_db(transaction=True)


def register(tenant, receiver, path="/hook", events=("message.status", "session.status",
                                                    "message.received"), **extra) -> dict:
    response = tenant.http.post("/v1/webhooks", json={
        "url": receiver.url(path), "events": list(events), **extra})
    assert response.status_code == 201, response.text
    receiver.hits.clear()  # forget the registration's test event
    return response.json()["data"]


def record(account, type="message.status", session_id="ses_x", data=None):
    with transaction.atomic():
        return event_record(account_id=account.id, type=type, session_id=session_id,
                            data=data or {"id": "msg_1", "status": "sent"})


class Clock:
    def __init__(self):
        self.now = timezone.now()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


def no_jitter(low, high):
    return 0.0


def test_an_event_makes_one_delivery_per_matching_webhook(alice, bob, receiver):
    status_hook = register(alice, receiver, events=["message.status"])
    session_hook = register(alice, receiver, events=["session.status"])
    bobs = register(bob, receiver, events=["message.status"])
    event = record(alice.account)
    assert list(Delivery.objects.filter(event=event).values_list("webhook_id", flat=True)) == [
        status_hook["id"]]
    assert not Delivery.objects.filter(webhook_id__in=[session_hook["id"], bobs["id"]]).exists()


def test_a_batch_of_events_stores_every_document_exactly(alice, receiver):
    # A batch is written in one statement, each column an array (infra/sql.py `rows_insert`):
    # the documents must come back as they went in, whatever characters they carry.
    register(alice, receiver, events=["message.status"])
    documents = [{"text": 'say "hi"', "path": "C:\\dir\\", "emoji": "héllo ✓ 😀"},
                 {"nested": {"list": [1, 2.5, None, True], "empty": {}}, "quote": "'"},
                 {"comma,brace}": "{a,b}", "nul-free": "tab\there\nnewline"}]
    with transaction.atomic():
        events = events_record([EventSpec(alice.account.id, "message.status", "ses_x", data)
                                for data in documents])
    stored = {event.id: event.data for event in Event.objects.filter(
        pk__in=[event.id for event in events])}
    assert [stored[event.id] for event in events] == documents
    assert Delivery.objects.filter(event_id__in=stored).count() == len(documents)


def test_a_session_filter_limits_the_events(alice, receiver):
    session = alice.http.post("/v1/sessions", json={}).json()["data"]["id"]
    hook = register(alice, receiver, sessionId=session)
    record(alice.account, session_id="ses_other")
    mine = record(alice.account, session_id=session)
    assert list(Delivery.objects.filter(webhook_id=hook["id"])
                .values_list("event_id", flat=True)) == [mine.id]


def test_a_rolled_back_change_leaves_no_event_and_no_delivery(alice, receiver):
    register(alice, receiver)
    with pytest.raises(RuntimeError), transaction.atomic():
        event_record(account_id=alice.account.id, type="message.status", session_id="s",
                     data={})
        raise RuntimeError("the change failed")
    assert not Delivery.objects.exists()


def test_a_delivery_is_signed_and_carries_the_event(alice, receiver):
    hook = register(alice, receiver)
    event = record(alice.account, data={"id": "msg_9", "status": "delivered"})
    assert webhook_deliver_due(webhook_id=hook["id"]) == "idle"
    (hit,) = receiver.hits_for("/hook")
    headers = {k.lower(): v for k, v in hit.headers.items()}
    payload = ReferenceVerifier(hook["secret"]).verify(hit.body, headers)
    assert payload == {"id": event.id, "event": "message.status",
                       "createdAt": event.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "sessionId": "ses_x", "data": {"id": "msg_9", "status": "delivered"}}
    assert headers["webhook-id"] == event.id
    delivery = Delivery.objects.get(event=event)
    assert delivery.status == "succeeded" and delivery.attempts == 1
    assert delivery.attempt_log.get().status_code == 200


def test_retries_follow_the_schedule_then_dead_letter(alice, receiver):
    hook = register(alice, receiver)
    receiver.routes["/hook"] = Route(status=503, body=b"down")
    event = record(alice.account)
    clock = Clock()
    started = clock.now
    waits = []
    for _ in range(MAX_ATTEMPTS):
        webhook_deliver_due(webhook_id=hook["id"], clock=clock, jitter=no_jitter)
        delivery = Delivery.objects.get(event=event)
        if delivery.next_attempt_at is None:
            break
        waits.append((delivery.next_attempt_at - clock.now).total_seconds())
        clock.now = delivery.next_attempt_at
    assert waits == RETRY_DELAYS
    assert (clock.now - started) >= timedelta(hours=24)
    delivery = Delivery.objects.get(event=event)
    assert delivery.status == "failed" and delivery.attempts == MAX_ATTEMPTS
    assert delivery.attempt_log.count() == MAX_ATTEMPTS
    assert delivery.last_status_code == 503 and delivery.last_error == "HTTP 503"
    # The same webhook-id on every attempt: receivers deduplicate on it.
    assert {hit.headers["webhook-id"] for hit in receiver.hits_for("/hook")} == {event.id}
    assert len(receiver.hits_for("/hook")) == MAX_ATTEMPTS


def test_jitter_stays_within_ten_percent(alice, receiver):
    from webhooks.delivery import retry_delay

    assert retry_delay(2, jitter=lambda a, b: b) == pytest.approx(300 * 1.1)
    assert retry_delay(2, jitter=lambda a, b: a) == pytest.approx(300 * 0.9)


def test_retry_after_is_honoured(alice, receiver):
    hook = register(alice, receiver)
    receiver.routes["/hook"] = Route(status=429, headers={"Retry-After": "900"})
    event = record(alice.account)
    clock = Clock()
    webhook_deliver_due(webhook_id=hook["id"], clock=clock, jitter=no_jitter)
    delivery = Delivery.objects.get(event=event)
    assert (delivery.next_attempt_at - clock.now).total_seconds() == 900


def test_redirects_are_not_followed(alice, receiver):
    hook = register(alice, receiver)
    receiver.routes["/hook"] = Route(status=301, headers={"Location": "/elsewhere"})
    record(alice.account)
    assert webhook_deliver_due(webhook_id=hook["id"]) == "failed"
    assert receiver.hits_for("/elsewhere") == []
    assert Delivery.objects.get().last_status_code == 301


def test_a_410_disables_the_webhook(alice, receiver):
    hook = register(alice, receiver)
    receiver.routes["/hook"] = Route(status=410)
    record(alice.account)
    webhook_deliver_due(webhook_id=hook["id"])
    assert Delivery.objects.get().status == "failed"
    data = alice.http.get(f"/v1/webhooks/{hook['id']}").json()["data"]
    assert data["enabled"] is False and "410" in data["disabledReason"]
    record(alice.account)
    assert Delivery.objects.count() == 1  # a disabled webhook gets no new deliveries


def test_five_days_of_failures_disable_the_webhook(alice, receiver):
    hook = register(alice, receiver)
    receiver.routes["/hook"] = Route(status=500)
    record(alice.account)
    clock = Clock()
    webhook_deliver_due(webhook_id=hook["id"], clock=clock, jitter=no_jitter)
    first_failure = Webhook.objects.get(pk=hook["id"])
    assert first_failure.is_active and first_failure.failing_since == clock.now
    clock.advance(5 * 86400)
    record(alice.account)
    Delivery.objects.update(next_attempt_at=clock.now)
    webhook_deliver_due(webhook_id=hook["id"], clock=clock, jitter=no_jitter)
    webhook = Webhook.objects.get(pk=hook["id"])
    assert not webhook.is_active and "Every delivery failed since" in webhook.disabled_reason


def test_a_success_clears_the_failing_streak(alice, receiver):
    hook = register(alice, receiver)
    receiver.routes["/hook"] = Route(status=500)
    record(alice.account)
    webhook_deliver_due(webhook_id=hook["id"])
    assert Webhook.objects.get(pk=hook["id"]).failing_since is not None
    receiver.routes["/hook"] = Route(status=204)
    Delivery.objects.update(next_attempt_at=timezone.now())
    webhook_deliver_due(webhook_id=hook["id"])
    assert Webhook.objects.get(pk=hook["id"]).failing_since is None


def test_deliveries_api_lists_attempts_and_replays(alice, receiver):
    hook = register(alice, receiver)
    receiver.routes["/hook"] = Route(status=500, body=b"exploded")
    record(alice.account)
    webhook_deliver_due(webhook_id=hook["id"])
    listed = alice.http.get(f"/v1/webhooks/{hook['id']}/deliveries",
                            params={"status": "pending", "event": "message.status"}).json()
    (delivery,) = listed["data"]
    assert delivery["attempts"] == 1 and delivery["lastStatusCode"] == 500
    assert delivery["attemptLog"][0]["responseSnippet"] == "exploded"
    assert alice.http.get(f"/v1/webhooks/{hook['id']}/deliveries",
                          params={"status": "succeeded"}).json()["data"] == []
    receiver.routes["/hook"] = Route(status=200)
    replay = alice.http.post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/retry")
    assert replay.status_code == 202 and replay.json()["data"]["status"] == "pending"
    webhook_deliver_due(webhook_id=hook["id"])
    detail = alice.http.get(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}").json()
    assert detail["data"]["status"] == "succeeded"
    assert [a["statusCode"] for a in detail["data"]["attemptLog"]] == [500, 200]


def test_a_succeeded_delivery_can_be_replayed_on_demand(alice, receiver):
    hook = register(alice, receiver)
    event = record(alice.account)
    webhook_deliver_due(webhook_id=hook["id"])
    delivery = Delivery.objects.get(event=event)
    alice.http.post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery.id}/retry")
    webhook_deliver_due(webhook_id=hook["id"])
    assert [hit.headers["webhook-id"] for hit in receiver.hits_for("/hook")] == [event.id] * 2


def test_delivery_routes_are_isolated(alice, bob, receiver):
    hook = register(alice, receiver)
    record(alice.account)
    delivery = Delivery.objects.get()
    for path in (f"/v1/webhooks/{hook['id']}/deliveries/{delivery.id}",
                 f"/v1/webhooks/{hook['id']}/deliveries/{delivery.id}/retry"):
        method = "POST" if path.endswith("retry") else "GET"
        response = bob.http.request(method, path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "resource_not_found"
    bobs = register(bob, receiver)
    response = bob.http.get(f"/v1/webhooks/{bobs['id']}/deliveries/{delivery.id}")
    assert response.json()["error"]["details"]["reason"] == "No such delivery."


@pytest.mark.parametrize(("params", "field"), [({"status": "lost"}, "status"),
                                               ({"event": "nope"}, "event")])
def test_bad_delivery_filters(alice, receiver, params, field):
    hook = register(alice, receiver)
    response = alice.http.get(f"/v1/webhooks/{hook['id']}/deliveries", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field


# --- several posts in flight to one endpoint -------------------------------------------------


def record_for_sessions(account, sessions: list[str]) -> list[Event]:
    with transaction.atomic():
        return events_record([EventSpec(account.id, "message.status", session,
                                        {"id": f"msg_{n}", "status": "sent"})
                              for n, session in enumerate(sessions)])


def test_different_sessions_events_are_posted_together(alice, receiver, settings):
    settings.WEBHOOK_MAX_IN_FLIGHT = 4
    hook = register(alice, receiver)
    # The gate answers only once four posts are in flight at once: one by one, all fail.
    receiver.routes["/hook"] = Route(status=200, on_request=Gate(4))
    events = record_for_sessions(alice.account, [f"ses_{n}" for n in range(8)])
    assert webhook_deliver_due(webhook_id=hook["id"]) == "idle"
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}
    hits = receiver.hits_for("/hook")
    assert sorted(hit.headers["webhook-id"] for hit in hits) == sorted(e.id for e in events)
    assert len({hit.client_port for hit in hits}) == 4  # four kept-alive connections


def test_an_endpoint_disabled_between_two_batches_gets_no_more(alice, receiver,
                                                              monkeypatch):
    from webhooks import delivery

    hook = register(alice, receiver)
    monkeypatch.setattr(delivery, "BATCH", 3)
    record_for_sessions(alice.account, [f"ses_{n}" for n in range(7)])
    post_batch = delivery._post_batch

    def then_support_disables_it(*args):
        outcome = post_batch(*args)
        Webhook.objects.filter(pk=hook["id"]).update(is_active=False)
        return outcome

    monkeypatch.setattr(delivery, "_post_batch", then_support_disables_it)
    assert webhook_deliver_due(webhook_id=hook["id"]) == "inactive"
    assert len(receiver.hits_for("/hook")) == 3  # the first batch only
    assert Delivery.objects.filter(status="pending").count() == 4


def test_a_run_of_one_batch_renews_and_rereads_nothing(alice, receiver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    hook = register(alice, receiver)
    record_for_sessions(alice.account, [f"ses_{n}" for n in range(3)])
    with CaptureQueriesContext(connection) as queries:
        assert webhook_deliver_due(webhook_id=hook["id"]) == "idle"
    on_webhooks = [q["sql"].split()[0] for q in queries.captured_queries
                   if '"webhooks_webhook"' in q["sql"].split(" WHERE ")[0]]
    # Its lease taken and let go, the endpoint read once: no renewal, no second read.
    assert on_webhooks == ["UPDATE", "SELECT", "UPDATE"]
    assert len(receiver.hits_for("/hook")) == 3


def test_one_messages_events_and_one_sessions_statuses_go_one_at_a_time_in_order(
        alice, receiver, settings):
    settings.WEBHOOK_MAX_IN_FLIGHT = 4
    hook = register(alice, receiver)
    overlaps = Overlaps(lambda hit: json.loads(hit.body)["data"]["id"])
    receiver.routes["/hook"] = Route(status=200, on_request=overlaps)
    specs = [EventSpec(alice.account.id, "message.status", "ses_a", {"id": message, "n": n})
             for n, message in enumerate(["msg_a", "msg_a", "msg_b", "msg_a", "msg_b"])]
    specs += [EventSpec(alice.account.id, "session.status", "ses_a", {"id": "ses_a", "n": n})
              for n in range(3)]
    with transaction.atomic():
        events = events_record(specs)
    assert webhook_deliver_due(webhook_id=hook["id"]) == "idle"
    assert overlaps.one_subject_at_a_time()
    assert overlaps.most_beside() == 2  # the three side by side
    arrived = [json.loads(hit.body)["data"] for hit in receiver.hits_for("/hook")]
    for subject in ("msg_a", "msg_b", "ses_a"):
        assert [data["n"] for data in arrived if data["id"] == subject] == [
            event.data["n"] for event in events if event.data["id"] == subject]


def test_no_post_starts_after_a_failure_and_those_in_flight_are_recorded(alice, receiver,
                                                                        settings):
    settings.WEBHOOK_MAX_IN_FLIGHT = 3
    hook = register(alice, receiver)
    events = record_for_sessions(alice.account, [f"ses_{n}" for n in range(6)])
    failing = events[0].id

    def answer(hit):
        if hit.headers["webhook-id"] == failing:
            return 503
        time.sleep(0.3)  # answered after the failure: nothing new may start meanwhile
        return None

    receiver.routes["/hook"] = Route(status=200, on_request=Gate(3, answer=answer))
    clock = Clock()
    assert webhook_deliver_due(webhook_id=hook["id"], clock=clock, jitter=no_jitter) == "failed"
    assert len(receiver.hits_for("/hook")) == 3
    deliveries = {d.event_id: d for d in Delivery.objects.all()}
    first = deliveries[failing]
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 503)
    assert first.next_attempt_at == clock.now + timedelta(seconds=RETRY_DELAYS[0])
    assert [deliveries[e.id].status for e in events[1:3]] == ["succeeded"] * 2
    assert [deliveries[e.id].attempts for e in events[3:]] == [0] * 3  # never tried


def test_a_success_beside_a_failure_ends_the_failing_streak_before_it(alice, receiver,
                                                                     settings):
    settings.WEBHOOK_MAX_IN_FLIGHT = 2
    hook = register(alice, receiver)
    events = record_for_sessions(alice.account, ["ses_a", "ses_b"])
    clock = Clock()
    # Failing for six days: one more failure alone would disable the webhook.
    Webhook.objects.filter(pk=hook["id"]).update(failing_since=clock.now - timedelta(days=6))
    receiver.routes["/hook"] = Route(status=200, on_request=Gate(
        2, answer=lambda hit: 500 if hit.headers["webhook-id"] == events[0].id else None))
    assert webhook_deliver_due(webhook_id=hook["id"], clock=clock, jitter=no_jitter) == "failed"
    webhook = Webhook.objects.get(pk=hook["id"])
    assert webhook.is_active and webhook.failing_since == clock.now  # a new streak


def test_every_post_in_flight_without_an_answer_in_time_is_a_timeout(alice, receiver,
                                                                    settings, monkeypatch):
    from webhooks import delivery as delivery_module

    settings.WEBHOOK_MAX_IN_FLIGHT = 3
    monkeypatch.setattr(delivery_module, "TIMEOUT_SECONDS", 0.3)
    hook = register(alice, receiver)
    receiver.routes["/hook"] = Route(status=200, delay=1.0)
    events = record_for_sessions(alice.account, [f"ses_{n}" for n in range(5)])
    assert webhook_deliver_due(webhook_id=hook["id"]) == "failed"
    deliveries = {d.event_id: d for d in Delivery.objects.all()}
    assert [deliveries[e.id].last_error for e in events[:3]] == ["no answer in time"] * 3
    assert [deliveries[e.id].attempts for e in events[3:]] == [0, 0]


# --- end to end through a real worker -------------------------------------------------------


def test_a_message_lifecycle_arrives_signed_and_in_order(alice, receiver, celery_worker):
    session = connected_session(alice)
    hook = register(alice, receiver, events=["message.status"])
    message = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": "14155550123", "text": "hi"}).json()["data"]
    wait_until(lambda: len(receiver.hits_for("/hook")) >= 3)
    statuses = []
    for hit in receiver.hits_for("/hook"):
        headers = {k.lower(): v for k, v in hit.headers.items()}
        payload = ReferenceVerifier(hook["secret"]).verify(hit.body, headers)
        assert payload["data"]["id"] == message["id"]
        statuses.append(payload["data"]["status"])
    assert statuses == ["sent", "delivered", "read"]


def test_inbound_messages_and_session_changes_are_pushed(alice, receiver, celery_worker):
    hook = register(alice, receiver, events=["message.received", "session.status"])
    session = connected_session(alice)
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound",
                    json={"from": "447911123456", "text": "hello"})
    # A session's statuses arrive in order; the message may pass them (another subject).
    wait_until(lambda: {("message.received", "received"), ("session.status", "connected")}
               <= {(e["event"], e["data"]["status"])
                   for e in map(json.loads, (h.body for h in receiver.hits_for("/hook")))})
    events = [json.loads(h.body) for h in receiver.hits_for("/hook")]
    session_statuses = [e["data"]["status"] for e in events if e["event"] == "session.status"]
    assert session_statuses[:3] == ["starting", "qr_pending", "connected"]
    received = next(e for e in events if e["event"] == "message.received")
    assert received["data"]["text"] == "hello" and received["sessionId"] == session["id"]
    wait_until(lambda: not Delivery.objects.filter(webhook_id=hook["id"])
               .exclude(status="succeeded").exists())


def test_the_sweeper_delivers_what_no_task_took(alice, receiver, celery_worker):
    hook = register(alice, receiver)
    # A delivery whose wake-up was lost (the broker was down when it was written).
    from webhooks.models import Event

    event = Event.objects.create(account=alice.account, type="message.status", session_id="s",
                                 data={"id": "m"})
    delivery = Delivery.objects.create(webhook_id=hook["id"], event=event,
                                       next_attempt_at=timezone.now())
    wait_until(lambda: Delivery.objects.get(pk=delivery.pk).status == "succeeded", timeout=30)


def test_a_slow_endpoint_does_not_hold_up_another_customer(alice, bob, receiver,
                                                           celery_worker):
    slow = register(alice, receiver)
    fast = register(bob, receiver, path="/hook")
    Webhook.objects.filter(pk=slow["id"]).update(url=receiver.url("/slow"))
    receiver.routes["/slow"] = Route(status=200, delay=4)
    with transaction.atomic():
        event_record(account_id=alice.account.id, type="message.status", session_id="s",
                     data={})
        event_record(account_id=bob.account.id, type="message.status", session_id="s",
                     data={})
    fast_delivery = Delivery.objects.get(webhook_id=fast["id"])
    slow_delivery = Delivery.objects.get(webhook_id=slow["id"])
    wait_until(lambda: Delivery.objects.get(pk=fast_delivery.pk).status == "succeeded")
    # Bob's event went through while Alice's endpoint was still holding its request.
    assert Delivery.objects.get(pk=slow_delivery.pk).status == "pending"
    wait_until(lambda: Delivery.objects.get(pk=slow_delivery.pk).status == "succeeded")


@pytest.mark.subprocess
def test_deliveries_go_to_their_own_queue_for_a_worker_of_threads(alice, receiver, settings):
    # CELERY_WEBHOOK_QUEUE: a worker that sends messages never waits on customers' servers.
    import uuid

    from config.celery import app
    from infra.redis import redis_client
    from messaging.models import Message
    from tests.support.worker import celery_worker as start_worker

    main_queue, webhook_queue = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("main", "hooks"))
    app.conf.task_default_queue = main_queue
    env = {"CELERY_WEBHOOK_QUEUE": webhook_queue, "SANDBOX_STATUS_DELAY_SECONDS": "0",
           "ALLOW_PRIVATE_URLS": "true"}
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    session = connected_session(alice)
    register(alice, receiver, events=["message.status"])
    with start_worker(queue=main_queue, namespace=settings.REDIS_NAMESPACE, extra_env=env):
        message = alice.http.post("/v1/messages/text", json={
            "sessionId": session["id"], "to": "14155550123", "text": "hi"}).json()["data"]
        wait_until(lambda: Message.objects.get(pk=message["id"]).status == "read")
        # Sent, delivered and read: their deliveries wait on the webhook queue, untouched.
        wait_until(lambda: redis_client().llen(webhook_queue) > 0)
        assert receiver.hits_for("/hook") == []
        with start_worker(queue=webhook_queue, namespace=settings.REDIS_NAMESPACE,
                          extra_env=env, beat=False, pool="threads", concurrency=4):
            wait_until(lambda: len(receiver.hits_for("/hook")) == 3)
    assert [json.loads(hit.body)["data"]["status"] for hit in receiver.hits_for("/hook")] == [
        "sent", "delivered", "read"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}


# --- wake-ups of the delivery runs ------------------------------------------------------------


@pytest.fixture
def wakeups(monkeypatch) -> list[tuple]:
    """The delivery runs' tasks enqueued, caught instead of sent."""
    from infra import wakeups
    from webhooks.outbox import DELIVERY_TASK

    caught = []
    enqueue = wakeups.enqueue

    def catch(task, args, countdown=None):
        if task != DELIVERY_TASK:
            return enqueue(task, args, countdown)
        caught.append((list(args), countdown))

    monkeypatch.setattr(wakeups, "enqueue", catch)
    return caught


def test_a_run_that_finds_the_endpoint_busy_leaves_the_wake_up_pending(alice, receiver,
                                                                      wakeups):
    from django.core.cache import cache

    from webhooks.delivery import _lease
    from webhooks.outbox import delivery_wake_key as _scheduled_key
    from webhooks.tasks import deliver_webhook

    hook = register(alice, receiver)
    record(alice.account)  # its wake-up: the marker set, a task enqueued
    assert len(wakeups) == 1
    assert _lease(hook["id"], "another run", timezone.now())
    assert deliver_webhook(hook["id"]) == "busy"
    # The marker stays: more deliveries while the other run holds the endpoint start nothing.
    assert cache.get(_scheduled_key(hook["id"])) is not None
    record(alice.account)
    assert len(wakeups) == 1


def test_a_run_that_ends_lets_the_wake_up_go_and_wakes_what_came_meanwhile(
        alice, receiver, wakeups, monkeypatch):
    from django.core.cache import cache

    from webhooks import tasks
    from webhooks.outbox import delivery_wake_key as _scheduled_key
    from webhooks.tasks import deliver_webhook

    hook = register(alice, receiver)
    record(alice.account)
    assert deliver_webhook(hook["id"]) == "idle"
    assert cache.get(_scheduled_key(hook["id"])) is None
    assert Delivery.objects.get().status == "succeeded"
    # A delivery committed after the run's last look, its wake-up dropped by the marker the
    # run still held: the run's end wakes a new run for it.
    real_run = tasks.webhook_deliver_due

    def run_then_a_delivery_arrives(**kwargs):
        outcome = real_run(**kwargs)
        cache.add(_scheduled_key(hook["id"]), 1)  # the marker, still held
        record(alice.account)  # its wake-up is dropped
        return outcome

    monkeypatch.setattr(tasks, "webhook_deliver_due", run_then_a_delivery_arrives)
    wakeups.clear()
    assert deliver_webhook(hook["id"]) == "idle"
    assert wakeups == [([hook["id"]], None)]
