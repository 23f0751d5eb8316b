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
