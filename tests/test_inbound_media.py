"""Incoming media with the real engine's logic: downloaded by the session's process, stored by
the supervisor, served to the account, kept until the retention the operator sets."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from neonize import events as neonize_events

from infra.redis import redis_client
from messaging.inbound_media import inbound_media_purge
from messaging.models import Message
from sessions_app.engines.media import inbound_media_save
from sessions_app.engines.whatsmeow.runner import SessionRunner
from sessions_app.engines.whatsmeow.supervisor import EngineSupervisor
from sessions_app.event_consumer import engine_events_drain
from sessions_app.models import Session
from tests.conftest import assert_error, connected_session
from tests.support.fake_neonize import FakeNeonizeClient
from tests.support.http_server import PNG

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_session_process_hands_the_file_over(settings):
    received = []
    client = FakeNeonizeClient()
    runner = SessionRunner("ses_X", client, lambda *e: None, events_module=neonize_events,
                           media_sink=lambda event, data: received.append((event, data)))
    client.pair("14155552671")
    client.receive_image("447911123456", PNG, caption="look")
    ((event, data),) = received
    assert data == PNG
    assert event.data["type"] == "image" and event.data["text"] == "look"
    assert event.data["mimeType"] == "image/png"
    assert runner.device_jid == "14155552671:7@s.whatsapp.net"


@pytest.fixture
def stored_image(alice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    session = connected_session(alice)
    supervisor = EngineSupervisor(
        redis_client=redis_client(), namespace=settings.REDIS_NAMESPACE,
        stream=f"{settings.REDIS_NAMESPACE}:engine-events", redis_url=settings.REDIS_URL,
        store_dir=tmp_path, media_store=inbound_media_save)
    event = {"type": "message_received", "sessionId": session["id"],
             "occurredAt": timezone.now().isoformat(),
             "data": {"whatsappId": f"3EB0{uuid.uuid4().hex[:8]}", "from": "447911123456",
                      "type": "image", "text": "look", "mimeType": "image/png"}}
    supervisor._store_media(session["id"], event, PNG)
    engine_events_drain()
    return Message.objects.get(direction="inbound", whatsapp_id=event["data"]["whatsappId"])


def test_a_stored_file_is_served_to_its_account_only(alice, bob, stored_image):
    data = alice.http.get(f"/v1/messages/{stored_image.id}").json()["data"]
    assert data["type"] == "image" and data["direction"] == "inbound"
    assert data["media"]["url"] == f"/v1/messages/{stored_image.id}/media"
    assert data["media"]["mimeType"] == "image/png" and data["media"]["size"] == len(PNG)
    assert data["media"]["caption"] == "look"
    download = alice.http.get(data["media"]["url"])
    assert download.status_code == 200
    assert download.content == PNG and download.headers["content-type"] == "image/png"
    assert_error(bob.http.get(data["media"]["url"]), 404, "message_not_found")


def test_files_are_kept_until_the_retention(alice, stored_image, settings):
    assert inbound_media_purge() == 0
    later = timezone.now() + timedelta(days=settings.MEDIA_RETENTION_DAYS, seconds=1)
    assert inbound_media_purge(now=later) == 1
    assert_error(alice.http.get(f"/v1/messages/{stored_image.id}/media"), 404,
                 "resource_not_found")
    assert alice.http.get(f"/v1/messages/{stored_image.id}").json()["data"]["media"]["url"] is None


def test_the_paired_device_is_remembered_for_resuming(alice):
    from sessions_app.engines import base, publish_event
    from sessions_app.engines.base import EngineEvent

    session = alice.http.post("/v1/sessions", json={}).json()["data"]
    publish_event(EngineEvent(base.PAIRED, session["id"], {
        "phoneNumber": "14155552671", "deviceJid": "14155552671:7@s.whatsapp.net"}))
    engine_events_drain()
    assert Session.objects.get(pk=session["id"]).engine_device == "14155552671:7@s.whatsapp.net"


def test_the_file_is_stored_under_its_session(alice, stored_image, settings):
    assert stored_image.media_file.startswith(f"inbound/{stored_image.session_id}/")
    assert (settings.MEDIA_ROOT / stored_image.media_file).read_bytes() == PNG
