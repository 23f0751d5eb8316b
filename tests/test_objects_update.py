"""`objects_update`: several objects' fields saved in one statement, each object its own
values, exactly as the ORM would save them (the receipts' batches use it)."""

from datetime import UTC, datetime

import pytest

from infra.sql import objects_update
from messaging.models import Message
from sessions_app.models import Session

pytestmark = pytest.mark.django_db


def message(account, session, **fields) -> Message:
    return Message.objects.create(account=account, session=session, direction="outbound",
                                  type="text", to_number="14155550123", text="hello",
                                  **fields)


def test_each_object_gets_its_own_values_nulls_and_quotes_included(alice):
    session = Session.objects.create(account=alice.account, name="s")
    first = message(alice.account, session, status="sending")
    second = message(alice.account, session, status="sent",
                     sent_at=datetime(2026, 1, 1, tzinfo=UTC), whatsapp_id="SBX1")
    untouched = message(alice.account, session, status="sending")

    first.status, first.sent_at = "sent", datetime(2026, 2, 3, 4, 5, 6, 7, tzinfo=UTC)
    first.whatsapp_id = "it's \"quoted\"; DROP TABLE x; -- é"
    second.status, second.sent_at, second.whatsapp_id = "failed", None, ""
    objects_update([first, second], ["sent_at", "status", "whatsapp_id"])

    rows = {row["id"]: row for row in Message.objects.values("id", "status", "sent_at",
                                                              "whatsapp_id")}
    assert rows[first.id] == {"id": first.id, "status": "sent", "sent_at": first.sent_at,
                              "whatsapp_id": first.whatsapp_id}
    assert rows[second.id] == {"id": second.id, "status": "failed", "sent_at": None,
                               "whatsapp_id": ""}
    assert rows[untouched.id]["status"] == "sending"


def test_only_the_named_fields_are_written(alice):
    session = Session.objects.create(account=alice.account, name="s")
    saved = message(alice.account, session, status="sending")
    stale = Message.objects.get(pk=saved.pk)
    Message.objects.filter(pk=saved.pk).update(error_message="written meanwhile")
    stale.status = "sent"
    objects_update([stale], ["status"])
    saved.refresh_from_db()
    assert (saved.status, saved.error_message) == ("sent", "written meanwhile")


def test_nothing_to_update_makes_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        objects_update([], ["status"])
