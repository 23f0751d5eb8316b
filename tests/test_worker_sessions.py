"""The asynchronous path through a real Celery worker: an engine event that nobody applies in
the request (as the real engine's events arrive) is applied by the worker's consumer."""

import pytest

from sessions_app.engines import base, publish_event
from sessions_app.engines.base import EngineEvent
from sessions_app.models import Session
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_event_published_outside_a_request_is_applied_by_the_worker(alice, celery_worker):
    created = alice.http.post("/v1/sessions", json={}).json()["data"]
    publish_event(EngineEvent(base.CONNECTED, created["id"], {"phoneNumber": "14155552671"}))
    wait_until(lambda: Session.objects.get(pk=created["id"]).status == "connected")
    data = alice.http.get(f"/v1/sessions/{created['id']}").json()["data"]
    assert data["phoneNumber"] == "14155552671"


def test_the_periodic_expiry_runs_in_the_worker(alice, celery_worker):
    from datetime import timedelta

    from django.utils import timezone

    created = alice.http.post("/v1/sessions", json={}).json()["data"]
    Session.objects.filter(pk=created["id"]).update(
        qr_expires_at=timezone.now() - timedelta(seconds=1)
    )
    wait_until(lambda: Session.objects.get(pk=created["id"]).status == "expired", timeout=30)


def test_a_dropped_session_reconnects_by_itself_and_sends_what_waited(alice, celery_worker):
    from messaging.models import Message

    session = alice.http.post("/v1/sessions", json={}).json()["data"]
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/scan",
                    json={"phoneNumber": "14155552671"})
    dropped = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect").json()["data"]
    assert dropped["status"] == "disconnected" and dropped["reconnectAt"]
    accepted = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": "14155550123", "text": "after the drop"})
    assert accepted.status_code == 400  # contract: sending through a disconnected session
    queued = Message.objects.create(
        account=alice.account, session_id=session["id"], direction="outbound", type="text",
        to_number="14155550123", text="queued before the drop", status="queued")
    # The worker runs the sandbox's reconnection (SANDBOX_RECONNECT_SECONDS, 2 s by default),
    # then the sender sends what waited.
    wait_until(lambda: Session.objects.get(pk=session["id"]).status == "connected", timeout=20)
    wait_until(lambda: Message.objects.get(pk=queued.pk).status == "read", timeout=20)
    reasons = list(Session.objects.get(pk=session["id"]).history.values_list("to_status",
                                                                              flat=True))
    assert reasons[-2:] == ["disconnected", "connected"]
