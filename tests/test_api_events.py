"""The event feed (GET /v1/events): every event of the account, oldest first after a position,
the same bodies the webhooks deliver, kept EVENT_RETENTION_DAYS; and `*` subscriptions."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.sender import session_sender_run
from sessions_app.event_consumer import engine_events_drain
from tests.conftest import assert_error, connected_session, http_client
from webhooks.delivery import webhook_deliver_due
from webhooks.models import Delivery, Event
from webhooks.services import events_purge

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def activity(alice, settings) -> dict:
    """A session that connected, a text sent and read, and a reply received: events of four
    types, with no webhook at all."""
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    session = connected_session(alice)
    alice.http.post("/v1/messages/text", json={"sessionId": session["id"],
                                               "to": "447911123456", "text": "hi"})
    session_sender_run(session_id=session["id"])
    engine_events_drain()
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound",
                    json={"from": "447911123456", "text": "hello"})
    return session


def feed(tenant, **params) -> dict:
    response = tenant.http.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_event_is_in_the_feed_oldest_first_without_any_webhook(alice, activity):
    events = feed(alice, limit=100)["data"]
    assert [e["id"] for e in events] == list(
        Event.objects.filter(account=alice.account).order_by("id").values_list("id", flat=True))
    kinds = [e["event"] for e in events]
    assert kinds[-4:] == ["message.status", "message.status", "message.status",
                          "message.received"]  # sent, delivered, read; then the reply
    assert set(kinds[:-4]) == {"session.status"}
    stored = Event.objects.get(pk=events[-1]["id"])
    assert events[-1] == {"id": stored.id, "event": "message.received",
                          "createdAt": stored.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "sessionId": activity["id"], "data": stored.data}


def test_a_receiver_catches_up_page_by_page_from_the_last_event_it_processed(alice, activity):
    total = Event.objects.filter(account=alice.account).count()
    first = feed(alice, limit=2)
    assert len(first["data"]) == 2 and first["pagination"]["nextCursor"] == \
        first["data"][-1]["id"]
    rest = feed(alice, after=first["pagination"]["nextCursor"], limit=100)
    assert len(rest["data"]) == total - 2 and rest["pagination"]["nextCursor"] is None
    assert rest["data"][0]["id"] > first["data"][-1]["id"]
    # Its place holds even once that event is no longer kept.
    Event.objects.filter(pk=first["data"][-1]["id"]).delete()
    assert feed(alice, after=first["data"][-1]["id"], limit=100)["data"] == rest["data"]


def test_the_feed_filters_by_type(alice, activity):
    statuses = feed(alice, types="message.status,message.received")["data"]
    assert {e["event"] for e in statuses} == {"message.status", "message.received"}
    assert len(statuses) == 4  # sent, delivered, read; the reply


@pytest.mark.parametrize(("params", "field"), [
    ({"types": "message.sent"}, "types"), ({"types": ","}, "types"),
    ({"after": "not-an-id"}, "after"), ({"cursor": "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "cursor"),
    ({"limit": "0"}, "limit"), ({"since": "yesterday"}, "since"),
])
def test_bad_feed_parameters_are_invalid_request(alice, params, field):
    assert_error(alice.http.get("/v1/events", params=params), 400, "invalid_request", field)


def test_another_accounts_events_are_never_in_the_feed(alice, bob, activity):
    assert feed(bob)["data"] == []
    alices_last = feed(alice, limit=100)["data"][-1]["id"]
    assert feed(bob, after=alices_last)["data"] == []


def test_the_feed_needs_the_webhooks_read_scope(live_server, alice):
    _key, raw = alice.new_key(scopes=["messages:read"])
    with http_client(live_server.url, raw) as client:
        assert_error(client.get("/v1/events"), 403, "insufficient_permissions")


def test_a_webhook_subscribed_to_everything_gets_every_event_as_the_feed_shows_it(
        alice, receiver, settings):
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    hook = alice.http.post("/v1/webhooks", json={"url": receiver.url("/hook"),
                                                 "events": ["*"]})
    assert hook.status_code == 201, hook.text
    assert hook.json()["data"]["events"] == ["*"]
    session = connected_session(alice)
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound",
                    json={"from": "447911123456", "text": "hello"})
    webhook_deliver_due(webhook_id=hook.json()["data"]["id"])
    delivered = [json.loads(hit.body) for hit in receiver.hits_for("/hook")
                 if json.loads(hit.body)["event"] != "webhook.test"]
    # (Posted one subject at a time, not in one global order: compared by id.)
    assert sorted(delivered, key=lambda e: e["id"]) == feed(alice, limit=100)["data"]
    assert {e["event"] for e in delivered} == {"session.status", "message.received"}


def test_events_are_kept_their_retention_and_while_still_being_delivered(alice, activity,
                                                                        receiver, settings):
    hook = alice.http.post("/v1/webhooks", json={"url": receiver.url("/hook"),
                                                 "events": ["message.received"]}).json()
    alice.http.post(f"/v1/sandbox/sessions/{activity['id']}/inbound",
                    json={"from": "447911123456", "text": "pending"})
    pending = Delivery.objects.get(webhook_id=hook["data"]["id"])
    old = timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS, hours=1)
    Event.objects.update(created_at=old)
    total = Event.objects.count()
    assert events_purge() == total - 1
    left = list(Event.objects.values_list("id", flat=True))
    assert left == [pending.event_id]  # still being delivered: kept
    pending.status = "succeeded"
    pending.save()
    assert events_purge() == 1 and not Event.objects.exists()
