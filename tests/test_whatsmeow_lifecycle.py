"""The real engine's session logic against real neonize event objects: which of whatsmeow's
events end a session and which are passing, and the ledger that keeps a message from reaching
WhatsApp twice across processes (with the fencing token that stops a process that lost its
session)."""

import uuid

import pytest
from neonize import events as neonize_events

from infra.redis import redis_client
from sessions_app.engines import base
from sessions_app.engines.base import EngineUnavailable, SendRejected
from sessions_app.engines.whatsmeow import protocol
from sessions_app.engines.whatsmeow.child import ChildConfig, RedisLedger
from sessions_app.engines.whatsmeow.runner import MemoryLedger, NotOwner, SessionRunner
from tests.support.fake_neonize import FakeNeonizeClient

pytestmark = pytest.mark.django_db


class Recorder:
    def __init__(self) -> None:
        self.events: list[base.EngineEvent] = []
        self.states: list[str] = []

    def publish(self, *events) -> None:
        self.events.extend(events)

    def notify(self, state, device) -> None:
        self.states.append(state)


def running(ledger=None, device="14155552671:7@s.whatsapp.net"):
    recorder = Recorder()
    runner = SessionRunner("ses_X", FakeNeonizeClient(device=device), recorder.publish,
                           events_module=neonize_events, ledger=ledger,
                           notify=recorder.notify)
    runner.client.connect()
    return runner, recorder


@pytest.mark.parametrize("reason, event_type, code", [
    (2, base.LOGGED_OUT, base.LOGGED_OUT_BY_PHONE),  # LOGGED_OUT
    (4, base.LOGGED_OUT, base.LOGGED_OUT_BY_PHONE),  # MAIN_DEVICE_GONE
    (3, base.FAILED, base.TEMPORARILY_BANNED),  # TEMP_BANNED
    (6, base.FAILED, base.CLIENT_OUTDATED),  # CLIENT_OUTDATED
    (8, base.DISCONNECTED, base.CONNECTION_LOST),  # INTERNAL_SERVER_ERROR: passing
    (10, base.DISCONNECTED, base.CONNECTION_LOST),  # SERVICE_UNAVAILABLE: passing
])
def test_a_refused_connection_ends_the_session_only_for_whatsapps_decisions(reason, event_type,
                                                                           code):
    runner, recorder = running()
    runner.client.connect_failure(reason)
    assert (recorder.events[-1].type, recorder.events[-1].data["code"]) == (event_type, code)
    assert runner.final == (event_type != base.DISCONNECTED)


def test_keepalive_timeouts_disconnect_and_a_restored_keepalive_connects():
    runner, recorder = running()
    runner.client.keepalive(restored=False)
    assert (runner.state, recorder.events[-1].type) == ("disconnected", base.DISCONNECTED)
    runner.client.keepalive(restored=True)
    assert (runner.state, recorder.events[-1].type) == ("connected", base.CONNECTED)
    assert recorder.states == ["connected", "disconnected", "connected"]


def test_nothing_is_reported_after_the_end():
    runner, recorder = running()
    runner.client.end("stream_replaced")
    ended = list(recorder.events)
    runner.client.drop()  # whatsmeow reports the closed socket too
    assert recorder.events == ended and runner.state == "failed"
    assert "another WhatsApp Web client" in ended[-1].data["error"]


def test_a_ban_says_for_how_long_in_words():
    runner, recorder = running()
    runner.client.end("banned")
    assert recorder.events[-1].data["error"].startswith("WhatsApp banned this number")
    assert "3600 s" in recorder.events[-1].data["error"]


def test_a_send_that_died_in_flight_is_not_sent_again():
    ledger = MemoryLedger()
    ledger.begin("msg_1")  # a process marked it, then died before WhatsApp answered
    runner, _ = running(ledger=ledger)
    with pytest.raises(SendRejected, match="not sent again"):
        runner.send_text(message_id="msg_1", to="14155550123", text="x")


def test_a_send_whatsapp_refused_may_be_tried_again():
    ledger = MemoryLedger()
    runner, _ = running(ledger=ledger)
    with pytest.raises(SendRejected):
        runner.send_text(message_id="msg_1", to="14155550001", text="x")
    assert "msg_1" not in ledger.entries


@pytest.fixture
def lease(settings):
    session_id = f"ses_{uuid.uuid4().hex[:12]}"
    key = protocol.lease_key(settings.REDIS_NAMESPACE, session_id)
    redis_client().set(key, "host-a:1", px=10_000)
    config = ChildConfig(session_id=session_id, store_path="", redis_url=settings.REDIS_URL,
                         stream="unused", namespace=settings.REDIS_NAMESPACE,
                         lease_value="host-a:1")
    return key, config


def test_the_ledger_in_redis_outlives_the_process(lease):
    _key, config = lease
    runner, _ = running(ledger=RedisLedger(redis_client(), config))
    sent = runner.send_text(message_id="msg_1", to="14155550123", text="x")
    again, _ = running(ledger=RedisLedger(redis_client(), config))  # the next process
    assert again.send_text(message_id="msg_1", to="14155550123", text="x") == sent
    assert again.client.pending_receipts == []  # nothing went to WhatsApp the second time


def test_a_process_whose_lease_moved_writes_nothing(lease):
    key, config = lease
    runner, _ = running(ledger=RedisLedger(redis_client(), config))
    redis_client().set(key, "host-b:2", px=10_000)  # another host owns the session now
    with pytest.raises(NotOwner):
        runner.send_text(message_id="msg_2", to="14155550123", text="x")
    with pytest.raises(NotOwner):
        runner.mark_read(chat="14155550123", whatsapp_ids=["ABC"])
    assert runner.client.pending_receipts == []
    assert issubclass(NotOwner, EngineUnavailable)
