"""The hot paths' hand-built statements are prepared on PostgreSQL (config/sql.py
`prepared_cursor`): parsed and planned once per connection, behaving as Django's cursors do
otherwise (errors, query capture), and not prepared with DATABASE_PREPARED_STATEMENTS off."""

import pytest
from django.db import DatabaseError, ProgrammingError, connection
from django.test.utils import CaptureQueriesContext

from accounts.authentication import api_key_authenticate
from infra.sql import prepared_cursor
from messaging.models import Message
from messaging.sender import session_sender_run
from messaging.services import message_send
from tests.conftest import connected_session

pytestmark = pytest.mark.django_db(transaction=True)


def prepared(fragment: str) -> list[str]:
    """The statements prepared in this connection that contain `fragment`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall() if fragment in statement]


def probe(n: int) -> int:
    with prepared_cursor() as cursor:
        cursor.execute("SELECT %s::int + 1 AS prepared_probe", [n])
        return cursor.fetchone()[0]


def test_a_statement_is_prepared_once_and_run_again_as_it_is():
    assert [probe(n) for n in range(3)] == [1, 2, 3]
    assert len(prepared("prepared_probe")) == 1


def test_with_the_setting_off_nothing_is_prepared(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    assert [probe(n) for n in range(3)] == [1, 2, 3]
    assert prepared("prepared_probe") == []


def test_errors_are_djangos_and_the_connection_goes_on():
    with pytest.raises(ProgrammingError) as raised, prepared_cursor() as cursor:
        cursor.execute("SELECT prepared_probe FROM no_such_table WHERE id = %s", [1])
    assert isinstance(raised.value, DatabaseError)  # django.db's, as Django's cursors raise
    assert probe(41) == 42


def test_its_statements_are_captured_as_djangos():
    with CaptureQueriesContext(connection) as captured:
        probe(1)
    # (as psycopg sent it: the parameter bound apart)
    assert [query["sql"] for query in captured] == ["SELECT $1::int + 1 AS prepared_probe"]


def test_the_senders_statements_are_prepared(alice, settings):
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    session = connected_session(alice)
    Message.objects.create(account=alice.account, session_id=session["id"],
                           direction="outbound", type="text", to_number="14155550123",
                           text="hi", status="queued")
    assert session_sender_run(session_id=session["id"]) == "idle"
    assert Message.objects.get().status in ("sent", "delivered", "read")
    # The claim, the `sent` with its history and event, the lease.
    assert prepared("WITH head AS") and prepared("WITH hooks AS")
    assert prepared("sender_lease_owner")


def test_the_accept_paths_insert_is_prepared(alice):
    session = connected_session(alice)
    for text in ("one", "two"):
        message_send(key=api_key_authenticate(alice.raw_key), session_id=session["id"],
                     to="14155550123", type="text", text=text)
    assert list(Message.objects.order_by("created_at").values_list("text", "status")) == [
        ("one", "queued"), ("two", "queued")]
    # The quota taken and the message inserted, one statement.
    assert len(prepared("WITH quota AS")) == 1
