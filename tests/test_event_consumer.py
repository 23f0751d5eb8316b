"""The consumer applies engine events idempotently and never moves a session backwards."""

from datetime import timedelta

import pytest

from sessions_app.engines import base, publish_event
from sessions_app.engines.base import EngineEvent, utcnow
from sessions_app.engines.bus import get_event_bus
from sessions_app.event_consumer import engine_events_drain
from sessions_app.models import Session, SessionStatusChange

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session(alice) -> Session:
    response = alice.http.post("/v1/sessions", json={})
    return Session.objects.get(pk=response.json()["data"]["id"])


def connected_event(session, at=None):
    return EngineEvent(base.CONNECTED, session.id, {"phoneNumber": "14155552671"},
                       occurred_at=at or utcnow())


def test_the_same_event_applied_twice_changes_nothing_twice(session):
    event = connected_event(session)
    publish_event(event)
    publish_event(event)
    assert engine_events_drain() == 2
    history = SessionStatusChange.objects.filter(session=session, to_status="connected")
    assert history.count() == 1


def test_an_event_older_than_the_current_status_is_ignored(session):
    publish_event(connected_event(session))
    engine_events_drain()
    stale = EngineEvent(base.DISCONNECTED, session.id, {"reason": "late"},
                        occurred_at=utcnow() - timedelta(minutes=5))
    publish_event(stale)
    engine_events_drain()
    assert Session.objects.get(pk=session.id).status == "connected"


def test_nothing_brings_a_logged_out_session_back(alice, session):
    alice.http.delete(f"/v1/sessions/{session.id}")
    publish_event(connected_event(session))
    engine_events_drain()
    assert Session.objects.get(pk=session.id).status == "logged_out"


def test_events_for_unknown_sessions_are_acknowledged_and_dropped(db):
    publish_event(EngineEvent(base.CONNECTED, "ses_unknown", {"phoneNumber": "1"}))
    assert engine_events_drain() == 1
    assert get_event_bus().pending_count() == 0


def test_a_failing_handler_does_not_block_the_events_behind_it(session, monkeypatch):
    from sessions_app import event_consumer

    def broken(event):
        raise KeyError("bug")

    monkeypatch.setitem(event_consumer._handlers, base.FAILED, [broken])
    publish_event(EngineEvent(base.FAILED, session.id, {"error": "x"}))
    publish_event(connected_event(session))
    assert engine_events_drain() == 2
    assert Session.objects.get(pk=session.id).status == "connected"


def test_each_app_registers_its_handlers_sessions_first():
    """The consumer imports no handler: the apps register theirs when they start, the
    sessions app's first, so a session is `connected` before messaging wakes its sender."""
    from messaging import event_handlers as message_handlers
    from sessions_app import event_consumer
    from sessions_app import event_handlers as session_handlers

    assert event_consumer._handlers[base.CONNECTED] == [session_handlers.on_connected,
                                                        message_handlers.on_connected]
    assert event_consumer._handlers[base.RECEIPT] == [message_handlers.on_receipt]
    assert event_consumer._batch_handler_of(base.RECEIPT) is message_handlers.on_receipts


def test_a_failed_engine_shows_on_the_session(alice, session):
    publish_event(EngineEvent(base.FAILED, session.id, {"error": "dial tcp: no route"}))
    engine_events_drain()
    data = alice.http.get(f"/v1/sessions/{session.id}").json()["data"]
    assert data["status"] == "failed"
    assert data["lastError"] == "dial tcp: no route"


def test_a_new_login_that_cannot_reach_whatsapp_keeps_its_status_and_deadline(session):
    """A session with no stored login is not `disconnected` (it never connected): it stays
    in its status, says why and when the engine tries again, and its QR deadline holds."""
    before = Session.objects.get(pk=session.id)
    retry_at = utcnow() + timedelta(seconds=4)
    publish_event(EngineEvent(base.DISCONNECTED, session.id, {
        "reason": "The connection to WhatsApp was lost.", "code": base.CONNECTION_LOST,
        "reconnectAt": retry_at.isoformat()}))
    engine_events_drain()
    waiting = Session.objects.get(pk=session.id)
    assert (waiting.status, waiting.last_error_code) == (before.status, "connection_lost")
    assert waiting.reconnect_at == retry_at
    assert waiting.status_changed_at == before.status_changed_at  # the deadline runs on
    publish_event(EngineEvent(base.QR, session.id, {"code": "2@reached,whatsapp"}))
    engine_events_drain()
    reached = Session.objects.get(pk=session.id)
    assert (reached.status, reached.last_error_code, reached.reconnect_at) == (
        "qr_pending", "", None)


def test_a_stored_login_that_drops_is_disconnected_until_it_connects(session):
    publish_event(connected_event(session))
    engine_events_drain()
    publish_event(EngineEvent(base.DISCONNECTED, session.id, {
        "reason": "The engine process stopped.", "code": base.ENGINE_UNREACHABLE,
        "reconnectAt": utcnow().isoformat()}))
    engine_events_drain()
    assert Session.objects.get(pk=session.id).last_error_code == "engine_unreachable"
    publish_event(connected_event(session))
    engine_events_drain()
    back = Session.objects.get(pk=session.id)
    assert (back.status, back.last_error, back.last_error_code, back.reconnect_at) == (
        "connected", "", "", None)
