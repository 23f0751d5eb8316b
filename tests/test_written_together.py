"""Rows written together (`infra/sql.py`): what the accept path (the quota and the message),
every status change (the message, its history, its event and deliveries) and every event are
written with. On PostgreSQL one statement; the new rows exist if and only if their change was
made; each value is stored as the ORM stores it. (SQLite's transactions of the same writes run
in `test_embedded_sqlite.py`, through the whole service.)"""

from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.db import IntegrityError, connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from infra.sql import (
    RowChange,
    Statement,
    changes_write,
    insert_if,
    rows_insert,
    statements_prepared,
)
from messaging.models import Message, MessageStatusChange
from sessions_app.models import Session
from webhooks.models import Delivery, Event, Webhook

pytestmark = pytest.mark.django_db

AWKWARD = "tab\there, newline\nthere, back\\slash, \"quotes\", 'single', {a,b}, %s, é ✓ 😀"


@pytest.fixture
def session(alice) -> Session:
    return Session.objects.create(account=alice.account, name="s", status="connected")


def new_message(alice, session, **fields) -> Message:
    return Message(account=alice.account, session=session, direction="outbound", type="text",
                   to_number="14155550123", text=AWKWARD, status="queued", **fields)


def stored(obj) -> dict:
    return model_to_dict(type(obj).objects.get(pk=obj.pk))


def test_new_rows_are_stored_as_the_orm_stores_them_in_one_statement(alice, session):
    webhook = Webhook.objects.create(account=alice.account, url="https://example.com/h",
                                     events=["message.status"], secret="s")
    messages = [new_message(alice, session, media_size=12,
                            sent_at=datetime(2026, 2, 3, 4, 5, 6, 789, tzinfo=UTC)),
                new_message(alice, session)]  # NULLs where the first has values
    event = Event(account=alice.account, type="message.status", session_id=session.id,
                  data={"text": AWKWARD, "nested": [1, None, {"a": True}]})
    delivery = Delivery(webhook=webhook, event=event, next_attempt_at=messages[0].sent_at)
    with CaptureQueriesContext(connection) as statements:
        rows_insert([*messages, event, delivery])
    assert len(statements) == 1
    for obj in (*messages, event, delivery):
        assert stored(obj) == model_to_dict(obj)
    assert Event.objects.get(pk=event.pk).created_at == event.created_at  # auto_now_add kept


def test_rows_are_inserted_only_if_the_change_wrote(alice, session):
    quota = Statement("UPDATE accounts_account SET name = name WHERE id = %s RETURNING id",
                      [alice.account.id])
    nothing = Statement("UPDATE accounts_account SET name = name WHERE id = %s RETURNING id",
                        ["acc_unknown"])
    first, second = new_message(alice, session), new_message(alice, session)
    assert insert_if(nothing, [first]) is False
    assert insert_if(quota, [second]) is True
    assert list(Message.objects.values_list("id", flat=True)) == [second.id]


def test_objects_written_are_saved_as_the_orm_would_leave_them(alice, session):
    """A later `save()` of an inserted object updates its row: it is not inserted again."""
    message, refused = new_message(alice, session), new_message(alice, session)
    quota = Statement("UPDATE accounts_account SET name = name WHERE id = %s RETURNING id",
                      [alice.account.id])
    nothing = Statement("UPDATE accounts_account SET name = name WHERE id = %s RETURNING id",
                        ["acc_unknown"])
    assert insert_if(quota, [message]) and not insert_if(nothing, [refused])
    assert not message._state.adding and refused._state.adding
    message.text = "edited"
    message.save()
    assert Message.objects.get(pk=message.pk).text == "edited"
    event = Event(account=alice.account, type="message.status", session_id=session.pk,
                  data={"status": "sending"})
    assert changes_write([RowChange(moved(message, "sending"), ("status",), "status",
                                    "queued", rows=(event,))]) == [True]
    event.data = {"status": "kept"}
    event.save()
    assert list(Event.objects.values_list("data", flat=True)) == [{"status": "kept"}]


def moved(message: Message, status: str) -> Message:
    message.status = status
    return message


def test_each_change_is_made_only_from_its_expected_value_with_its_rows(alice, session):
    first, second, third = (new_message(alice, session) for _ in range(3))
    rows_insert([first, second, third])
    with CaptureQueriesContext(connection) as statements:
        made = changes_write([
            RowChange(moved(first, "sending"), ("status",), "status", "queued",
                      rows=(MessageStatusChange(message=first, status="sending",
                                                detail=AWKWARD),)),
            RowChange(moved(second, "sent"), ("status",), "status", "sending",  # it is queued
                      rows=(MessageStatusChange(message=second, status="sent"),)),
            RowChange(moved(third, "sending"), ("status",), "status", "queued",
                      rows=(MessageStatusChange(message=third, status="sending"),)),
        ])
    assert made == [True, False, True] and len(statements) == 1
    assert sorted(MessageStatusChange.objects.values_list("message_id", flat=True)) == sorted(
        [first.pk, third.pk])
    assert MessageStatusChange.objects.get(message=first).detail == AWKWARD
    assert [Message.objects.get(pk=m.pk).status for m in (first, second, third)] == [
        "sending", "queued", "sending"]


def test_a_row_that_cannot_be_written_leaves_the_change_undone(alice, session):
    message = new_message(alice, session)
    rows_insert([message])
    duplicate = new_message(alice, session)
    duplicate.id = message.id  # its primary key is taken
    with pytest.raises(IntegrityError):
        changes_write([RowChange(moved(Message.objects.get(pk=message.pk), "sending"),
                                 ("status",), "status", "queued", rows=(duplicate,))])
    assert Message.objects.get(pk=message.pk).status == "queued"


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS,
                    reason="PostgreSQL's prepared statements, when they are on")
def test_the_written_together_statements_are_prepared_and_the_orms_are_not(alice, session):
    """The writes are prepared at their first run (psycopg's public `prepare_threshold`, set
    for the block): an upgrade that stops it fails here. The ORM's queries, run more often
    than psycopg's threshold, are not: their plans must see each run's values."""
    before = set(prepared_statements())
    for _ in range(7):
        Message.objects.filter(status="queued", session=session).count()
    insert_if(None, [new_message(alice, session)])
    new = [statement for statement in prepared_statements() if statement not in before]
    assert len(new) == 1 and new[0].startswith("WITH rows0 AS (INSERT INTO"), new
    with statements_prepared(), connection.cursor() as cursor:
        cursor.execute("SELECT %s::int + 40", [2])
        assert cursor.fetchone() == (42,)
    assert "SELECT $1::int + 40" in prepared_statements()
    assert connection.connection.prepare_threshold is None  # Django's default, restored
