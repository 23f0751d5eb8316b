"""The sender's `sent` in one statement (`message_sent_record`) writes what the generic
`message_status_apply` writes: the same message row, history, event and deliveries."""

import pytest
from django.db import transaction
from django.utils import timezone

from messaging import services
from messaging.models import Message, MessageStatusChange
from messaging.serializers import MessageOutput
from messaging.services import message_sent_record, message_status_apply
from sessions_app.models import Session
from tests.conftest import connected_session
from webhooks import outbox as webhook_services
from webhooks.models import Delivery, Event, Webhook

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session(alice, settings) -> dict:
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    return connected_session(alice)


@pytest.fixture
def webhooks(alice, bob, session) -> dict[str, Webhook]:
    other_session = Session.objects.create(account=alice.account, name="other")

    def hook(name, account=alice.account, **fields):
        # Nothing is posted (wake-ups are recorded, not sent); loopback all the same.
        return Webhook.objects.create(account=account, url=f"http://127.0.0.1:9/{name}",
                                      secret="whsec_test", **{"events": ["message.status"],
                                                              **fields})

    return {
        "all statuses": hook("all"),
        "this session": hook("this", session_id=session["id"]),
        "received only": hook("received", events=["message.received"]),
        "another session": hook("another", session=other_session),
        "disabled": hook("disabled", is_active=False),
        "deleted": hook("deleted", deleted_at=timezone.now()),
        "another account": hook("bob", account=bob.account),
    }


@pytest.fixture
def scheduled(monkeypatch) -> list[str]:
    """The wake-ups of delivery runs, recorded instead of sent (both paths)."""
    woken: list[str] = []

    def record(deliveries):
        woken.extend(dict.fromkeys(d.webhook_id for d in deliveries))

    monkeypatch.setattr(services, "deliveries_schedule", record)
    monkeypatch.setattr(webhook_services, "deliveries_schedule", record)
    return woken


def sending(alice, session, **fields) -> Message:
    message = Message.objects.create(
        account=alice.account, session_id=session["id"], direction="outbound", type="text",
        to_number="14155550123", text="hello", status="sending", attempts=1, **fields)
    return Message.objects.get(pk=message.pk)  # as the sender's claim returns it


def written(message: Message) -> dict:
    message.refresh_from_db()
    events = list(Event.objects.filter(data__id=message.id))
    return {
        "message": (message.status, message.sent_at is not None, message.whatsapp_id[:3]),
        "history": list(MessageStatusChange.objects.filter(message=message)
                        .values_list("status", "detail")),
        "events": [(event.type, event.account_id, event.session_id) for event in events],
        "event is the row": [event.data == MessageOutput(message).data for event in events],
        "deliveries": sorted(Delivery.objects.filter(event__in=events)
                             .values_list("webhook__url", "status", "attempts")),
    }


def test_one_statement_writes_what_the_generic_path_writes(alice, session, webhooks,
                                                           scheduled):
    generic, fast = sending(alice, session), sending(alice, session)
    assert message_status_apply(message_id=generic.id, status="sent", whatsapp_id="wa-1")
    assert message_sent_record(message=fast, whatsapp_id="wa-2")
    assert written(fast) == written(generic)
    assert written(fast) == {
        "message": ("sent", True, "wa-"),
        "history": [("sent", "")],
        "events": [("message.status", alice.account.id, session["id"])],
        "event is the row": [True],
        "deliveries": [("http://127.0.0.1:9/all", "pending", 0),
                       ("http://127.0.0.1:9/this", "pending", 0)],
    }
    wanted = [webhooks["all statuses"].id, webhooks["this session"].id]
    assert sorted(scheduled) == sorted(wanted * 2)  # by each path


def test_a_receipt_that_came_first_wins_and_nothing_is_written(alice, session, webhooks,
                                                                scheduled):
    message = sending(alice, session)
    Message.objects.filter(pk=message.pk).update(status="delivered",
                                                 delivered_at=timezone.now())
    assert message_sent_record(message=message, whatsapp_id="wa-1") is False
    assert written(message) == {"message": ("delivered", False, ""), "history": [],
                                "events": [], "event is the row": [], "deliveries": []}
    assert scheduled == []


def test_a_message_sent_before_keeps_its_steps_in_order(alice, session, webhooks, scheduled):
    """A failed message retried by support may carry the times of earlier steps."""
    later = timezone.now() + timezone.timedelta(minutes=5)
    message = sending(alice, session, delivered_at=later, whatsapp_id="wa-kept")
    assert message_sent_record(message=message, whatsapp_id="wa-new")
    message.refresh_from_db()
    assert message.sent_at == later  # never before the recorded delivery
    assert message.whatsapp_id == "wa-kept"
    assert written(message)["event is the row"] == [True]


def test_inside_a_transaction_it_takes_the_generic_path(alice, session, webhooks, scheduled):
    message = sending(alice, session)
    with transaction.atomic():
        assert message_sent_record(message=message, whatsapp_id="wa-1")
    assert written(message)["history"] == [("sent", "")]
    assert len(written(message)["deliveries"]) == 2
    assert len(scheduled) == 2


@pytest.mark.parametrize("change", ["added", "disabled", "deleted", "other events",
                                    "other session", "all removed"])
def test_a_stale_copy_of_the_webhooks_is_caught_in_the_statement(alice, session, webhooks,
                                                                  scheduled, change):
    """The process keeps its copy of the account's webhooks; the statement checks it and a
    copy that no longer matches is read again, so deliveries follow every change at once."""
    webhook_services.account_webhooks_forget(alice.account.id)
    assert message_sent_record(message=sending(alice, session))  # the copy is made
    assert webhook_services._webhooks_seen.get(alice.account.id) is not None
    everything = webhooks["all statuses"]
    if change == "added":
        Webhook.objects.create(account=alice.account, url="http://127.0.0.1:9/new",
                               secret="whsec_test", events=["message.status"])
    elif change == "disabled":
        Webhook.objects.filter(pk=everything.pk).update(is_active=False)
    elif change == "deleted":
        Webhook.objects.filter(pk=everything.pk).update(deleted_at=timezone.now())
    elif change == "other events":
        Webhook.objects.filter(pk=everything.pk).update(events=["message.received"])
    elif change == "other session":
        Webhook.objects.filter(pk=everything.pk).update(
            session=Session.objects.create(account=alice.account, name="third"))
    else:
        Webhook.objects.filter(account=alice.account).delete()
    generic, fast = sending(alice, session), sending(alice, session)
    assert message_status_apply(message_id=generic.id, status="sent")
    assert message_sent_record(message=fast)
    assert written(fast)["deliveries"] == written(generic)["deliveries"]
    expected = {"added": 3, "all removed": 0}.get(change, 1)
    assert len(written(fast)["deliveries"]) == expected


def test_webhooks_changing_under_every_try_leave_it_to_the_generic_path(
        alice, session, webhooks, scheduled, monkeypatch):
    never_current = webhook_services.AccountWebhooks(fingerprint="stale", hooks=[])
    monkeypatch.setattr(services, "account_webhooks_seen", lambda account_id: never_current)
    message = sending(alice, session)
    assert message_sent_record(message=message)
    assert written(message)["history"] == [("sent", "")]
    assert len(written(message)["deliveries"]) == 2
