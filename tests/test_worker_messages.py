"""Messages through a real Celery worker and real Redis: lifecycles, FIFO per session, queued
while away, and a worker killed mid-run losing and duplicating nothing."""

import itertools
import os
import signal
import threading
import uuid

import pytest

from messaging.models import Message, MessageStatusChange
from sessions_app.engines.sandbox.engine import SandboxEngine
from tests.conftest import connected_session, http_client
from tests.support.worker import celery_worker as start_worker
from tests.support.worker import wait_until
from webhooks.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

TO = "14155550123"


def post_text(client, session_id, text="hi", to=TO):
    response = client.post("/v1/messages/text",
                           json={"sessionId": session_id, "to": to, "text": text})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def status_of(alice, message_id):
    return alice.http.get(f"/v1/messages/{message_id}").json()["data"]


def test_a_text_goes_sent_delivered_read(alice, celery_worker):
    session = connected_session(alice)
    message = post_text(alice.http, session["id"])
    done = wait_until(lambda: (m := status_of(alice, message["id"]))["status"] == "read" and m)
    assert done["whatsappId"].startswith("SBX")
    assert done["sentAt"] <= done["deliveredAt"] <= done["readAt"]
    history = list(MessageStatusChange.objects.filter(message_id=message["id"])
                   .values_list("status", flat=True))
    assert history == ["sent", "delivered", "read"]  # queued is the message's createdAt
    events = Event.objects.filter(type="message.status", data__id=message["id"]).order_by("id")
    assert [e.data["status"] for e in events] == ["sent", "delivered", "read"]


def test_a_send_whatsapp_rejects_fails_with_message_sending_failed(alice, celery_worker):
    session = connected_session(alice)
    message = post_text(alice.http, session["id"], to="14155550001")
    failed = wait_until(lambda: (m := status_of(alice, message["id"]))["status"] == "failed"
                        and m)
    assert failed["error"]["code"] == "message_sending_failed"
    assert failed["failedAt"] is not None
    event = Event.objects.get(type="message.status", data__id=message["id"])
    assert event.data["error"]["code"] == "message_sending_failed"


def test_messages_of_a_session_leave_in_order_under_concurrent_sends(alice, celery_worker):
    session = connected_session(alice)
    ids, lock = [], threading.Lock()

    def sender(n):
        with http_client(str(alice.http.base_url), alice.raw_key) as client:
            for i in range(5):
                message = post_text(client, session["id"], text=f"{n}-{i}")
                with lock:
                    ids.append(message["id"])

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    wait_until(lambda: not Message.objects.filter(status__in=["queued", "sending"]).exists(),
               timeout=30)
    sent = list(MessageStatusChange.objects.filter(status="sent", message__session_id=session["id"])
                .order_by("id").values_list("message_id", flat=True))
    assert sent == sorted(ids)


def test_messages_queued_while_disconnected_go_out_after_reconnecting(alice, celery_worker):
    session = connected_session(alice)
    message = post_text(alice.http, session["id"])
    wait_until(lambda: status_of(alice, message["id"])["status"] == "read")
    # The phone drops; a message accepted just before waits in the queue, then goes out.
    queued = Message.objects.create(
        account=alice.account, session_id=session["id"], direction="outbound", type="text",
        to_number=TO, text="later", status="queued",
    )
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect")
    from messaging.sender import session_sender_run

    assert session_sender_run(session_id=session["id"]) == "not_connected"
    assert Message.objects.get(pk=queued.pk).status == "queued"
    from sessions_app.engines import get_engine
    from sessions_app.event_consumer import engine_events_drain

    get_engine().scan(session["id"], phone_number="14155552671")
    engine_events_drain()
    wait_until(lambda: Message.objects.get(pk=queued.pk).status == "read")


def test_the_engine_is_asked_once_per_message(alice, celery_worker):
    session = connected_session(alice)
    ids = [post_text(alice.http, session["id"], text=str(i))["id"] for i in range(10)]
    wait_until(lambda: Message.objects.filter(pk__in=ids, status="read").count() == 10)
    assert [SandboxEngine.send_attempts(i) for i in ids] == [1] * 10


@pytest.mark.subprocess
def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(alice, settings):
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    from config.celery import app

    app.conf.task_default_queue = queue
    env = {"SEND_MIN_INTERVAL_SECONDS": "0.03", "MESSAGE_SENDING_TIMEOUT_SECONDS": "2",
           "SWEEP_INTERVAL_SECONDS": "1", "SENDER_LEASE_SECONDS": "3",
           "ENGINE_EVENT_CLAIM_TIMEOUT_SECONDS": "3",
           "SANDBOX_STATUS_DELAY_SECONDS": "0"}
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    session = connected_session(alice)
    ids = [post_text(alice.http, session["id"], text=str(i))["id"] for i in range(120)]

    def sent_count() -> int:
        return MessageStatusChange.objects.filter(message_id__in=ids, status="sent").count()

    with start_worker(queue=queue, namespace=settings.REDIS_NAMESPACE, extra_env=env) as first:
        wait_until(lambda: sent_count() >= 15)
        os.killpg(first.pid, signal.SIGKILL)
    assert sent_count() < 120, "the worker finished before it could be killed"
    with start_worker(queue=queue, namespace=settings.REDIS_NAMESPACE, extra_env=env):
        wait_until(lambda: sent_count() == 120, timeout=60)
        # Receipts the killed worker had read but not acknowledged are handed out again.
        wait_until(lambda: Message.objects.filter(pk__in=ids, status="read").count() == 120,
                   timeout=30)
    for message_id in ids:
        assert MessageStatusChange.objects.filter(message_id=message_id,
                                                  status="sent").count() == 1
    # Only a message in flight at the kill may have been handed to the engine again, and the
    # engine recognised it as the same message (sent once).
    resent = [i for i in ids if SandboxEngine.send_attempts(i) > 1]
    assert len(resent) <= 1


@pytest.mark.subprocess
def test_paced_sessions_send_side_by_side_and_keep_their_pace(alice, settings):
    # A paced sender that slept between sends held one of the worker's two processes for its
    # whole run: two sessions sent at a time, the third waited for one to finish.
    queue = f"paced-{uuid.uuid4().hex[:8]}"
    from config.celery import app

    app.conf.task_default_queue = queue
    env = {"SEND_MIN_INTERVAL_SECONDS": "1", "SANDBOX_STATUS_DELAY_SECONDS": "0"}
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    sessions = [connected_session(alice, phone=f"1415555267{n}")["id"] for n in range(3)]
    ids = {session: [post_text(alice.http, session, text=str(i))["id"] for i in range(3)]
           for session in sessions}
    with start_worker(queue=queue, namespace=settings.REDIS_NAMESPACE, extra_env=env):
        wait_until(lambda: Message.objects.filter(sent_at__isnull=False).count() == 9,
                   timeout=40)
    sent = {session: [Message.objects.get(pk=i).sent_at for i in ids[session]]
            for session in sessions}
    # Every session's first message went before any session's last: side by side.
    assert max(times[0] for times in sent.values()) < min(times[-1] for times in sent.values())
    for times in sent.values():
        assert times == sorted(times)  # in order
        assert all((later - earlier).total_seconds() >= 1
                   for earlier, later in itertools.pairwise(times))
