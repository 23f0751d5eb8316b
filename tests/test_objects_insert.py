"""`objects_insert`: new objects written by COPY on PostgreSQL must be stored exactly as
`bulk_create` stores them (the receipts' batches and the webhook runs use it)."""

from datetime import UTC, datetime

import pytest
from django.forms.models import model_to_dict

from infra.sql import objects_insert
from messaging.models import Message, MessageStatusChange
from sessions_app.models import Session
from webhooks.models import Delivery, DeliveryAttempt, Event, Webhook

pytestmark = pytest.mark.django_db

AWKWARD = "tab\there, newline\nthere, back\\slash, \"quotes\", 'single', \\N, é ✓ 😀"


@pytest.fixture
def world(alice):
    session = Session.objects.create(account=alice.account, name="s")
    message = Message.objects.create(account=alice.account, session=session,
                                     direction="outbound", type="text",
                                     to_number="14155550123", text="hello")
    webhook = Webhook.objects.create(account=alice.account, url="https://example.com/h",
                                     events=["message.status"], secret="s")
    return alice.account, session, message, webhook


def test_rows_match_bulk_create_for_every_model_it_writes(world):
    account, session, message, webhook = world
    at = datetime(2026, 2, 3, 4, 5, 6, 789, tzinfo=UTC)

    def events():
        return [Event(account=account, type="message.status", session_id=session.id,
                      data={"text": AWKWARD, "nested": [1, 2.5, None, True, {}]}),
                Event(account=account, type="session.status", session_id="", data={})]

    def deliveries(of):
        return [Delivery(webhook=webhook, event=event, next_attempt_at=at) for event in of]

    def attempts(of):
        return [DeliveryAttempt(delivery=of[0], attempted_at=at, status_code=200,
                                latency_ms=12, response_snippet=AWKWARD),
                DeliveryAttempt(delivery=of[1], attempted_at=at, status_code=None,
                                latency_ms=0, error="refused")]

    def history():
        return [MessageStatusChange(message=message, status="sent", detail=AWKWARD),
                MessageStatusChange(message=message, status="delivered", detail="")]

    by_copy, by_orm = events(), events()
    objects_insert(by_copy)
    Event.objects.bulk_create(by_orm)
    fields = ("account", "type", "session_id", "data")
    assert [model_to_dict(Event.objects.get(pk=e.pk), fields=fields) for e in by_copy] == \
        [model_to_dict(Event.objects.get(pk=e.pk), fields=fields) for e in by_orm]
    assert all(e.created_at == Event.objects.get(pk=e.pk).created_at for e in by_copy)
    # saved, as bulk_create leaves them: saving again updates the row
    by_copy[1].type = "message.received"
    by_copy[1].save()
    assert Event.objects.get(pk=by_copy[1].pk).type == "message.received"
    by_copy[1].type = "session.status"
    by_copy[1].save()

    copied_deliveries, orm_deliveries = deliveries(by_copy), deliveries(by_orm)
    objects_insert(copied_deliveries)
    Delivery.objects.bulk_create(orm_deliveries)
    exclude = ("id", "event", "created_at")
    assert [model_to_dict(Delivery.objects.get(pk=d.pk), exclude=exclude)
            for d in copied_deliveries] == [model_to_dict(Delivery.objects.get(pk=d.pk),
                                                          exclude=exclude)
                                            for d in orm_deliveries]

    objects_insert(attempts(copied_deliveries))
    DeliveryAttempt.objects.bulk_create(attempts(orm_deliveries))
    rows = [model_to_dict(row, exclude=("id", "delivery"))
            for row in DeliveryAttempt.objects.order_by("delivery__event__type", "id")]
    # ordered by event type: the two 200s, then the two refusals
    assert rows[0] == rows[1] and rows[2] == rows[3] and rows[0]["response_snippet"] == AWKWARD
    assert rows[2]["status_code"] is None and rows[2]["error"] == "refused"

    objects_insert(history())
    MessageStatusChange.objects.bulk_create(history())
    rows = [model_to_dict(row, exclude=("id",))
            for row in MessageStatusChange.objects.filter(message=message).order_by("id")]
    assert len(rows) == 4
    assert [(r["status"], r["detail"]) for r in rows[:2]] == [(r["status"], r["detail"])
                                                               for r in rows[2:]]
    assert rows[0]["detail"] == AWKWARD


def test_nothing_to_insert_makes_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        objects_insert([])
