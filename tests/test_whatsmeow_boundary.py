"""The real library (neonize / whatsmeow) in spawned processes, on loopback only: every dial
goes to a local fake proxy that refuses it, so nothing leaves the machine."""

import json
import multiprocessing
import socket
import threading
import time
import uuid

import pytest

from infra.redis import redis_client
from sessions_app.engines.whatsmeow import protocol
from sessions_app.engines.whatsmeow.child import ChildConfig, child_main
from sessions_app.engines.whatsmeow.supervisor import EngineSupervisor
from tests.support.engine_children import panicking_child
from tests.support.worker import wait_until

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db]


class RefusingProxy:
    """An HTTP proxy on 127.0.0.1 that records each request line and refuses the tunnel."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(4096).decode("latin-1")
                self.requests.append(data.split("\r\n", 1)[0])
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy():
    server = RefusingProxy()
    yield server
    server.close()


@pytest.fixture
def stream(settings) -> str:
    return f"{settings.REDIS_NAMESPACE}:engine-events"


def events_of(stream: str, session_id: str) -> list[dict]:
    entries = redis_client().xrange(stream)
    found = [json.loads(fields[b"event"]) for _, fields in entries]
    return [e for e in found if e["sessionId"] == session_id]


def test_an_offline_dial_failure_is_a_session_error_not_a_crash(proxy, stream, settings,
                                                                tmp_path):
    session_id = f"ses_{uuid.uuid4().hex[:12].upper()}"
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    config = ChildConfig(session_id=session_id, store_path=str(tmp_path / "s.sqlite3"),
                         redis_url=settings.REDIS_URL, stream=stream, proxy_url=proxy.url)
    process = context.Process(target=child_main, args=(config, child), daemon=True)
    process.start()
    try:
        failed = wait_until(lambda: [e for e in events_of(stream, session_id)
                                     if e["type"] == "failed"], timeout=60)
        assert "connect" in failed[0]["data"]["error"].lower()
        assert any(line.startswith("CONNECT web.whatsapp.com:443") for line in proxy.requests)
        assert process.is_alive()  # an error on the session, not a dead process
        parent.send({"id": "1", "op": "state_name", "args": {}})
        assert parent.poll(10)
        reply = parent.recv()
        while reply.get("id") != "1":
            reply = parent.recv()
        assert reply == {"id": "1", "ok": True, "result": "starting"}
    finally:
        process.terminate()
        process.join(10)


def test_a_go_panic_in_one_session_leaves_the_others_and_the_worker_running(
        proxy, stream, settings, tmp_path):
    supervisor = EngineSupervisor(
        redis_client=redis_client(), namespace=settings.REDIS_NAMESPACE, stream=stream,
        redis_url=settings.REDIS_URL, store_dir=tmp_path, child_target=panicking_child,
        proxy_url=proxy.url)
    calm, doomed = f"ses_{uuid.uuid4().hex[:8].upper()}CALM", f"ses_{uuid.uuid4().hex[:8]}PANIC"
    for session_id in (calm, doomed):
        supervisor.handle(protocol.command("start", session_id).encode())
    try:
        wait_until(lambda: not supervisor.children[doomed].process.is_alive(), timeout=60)
        assert supervisor.children[doomed].process.exitcode != 0
        supervisor._check_children()
        restarted = [e for e in events_of(stream, doomed) if e["type"] == "disconnected"]
        assert "engine process exited" in restarted[0]["data"]["reason"]
        time.sleep(1)
        assert supervisor.children[calm].process.is_alive()
    finally:
        for session_id in list(supervisor.children):
            supervisor._stop_child(session_id)


def test_a_session_is_handed_over_when_its_worker_goes(proxy, stream, settings, tmp_path):
    session_id = f"ses_{uuid.uuid4().hex[:12].upper()}"

    def make(name):
        return EngineSupervisor(
            redis_client=redis_client(), namespace=settings.REDIS_NAMESPACE, stream=stream,
            redis_url=settings.REDIS_URL, store_dir=tmp_path, worker_id=name,
            resumable_sessions=lambda: [(session_id, "", "")], proxy_url=proxy.url, lease_ms=1500)

    first, second = make("worker-a"), make("worker-b")
    lease = protocol.lease_key(settings.REDIS_NAMESPACE, session_id)
    try:
        first.resume()
        second.resume()  # the lease is first's: second must not run the session too
        assert session_id in first.children and session_id not in second.children
        assert redis_client().get(lease) == b"worker-a"
        first.children[session_id].process.kill()  # the worker's machine goes away
        first.children.clear()  # ...and stops renewing its lease
        wait_until(lambda: redis_client().get(lease) is None, timeout=10)
        second.resume()
        assert session_id in second.children
        assert redis_client().get(lease) == b"worker-b"
    finally:
        for supervisor in (first, second):
            for sid in list(supervisor.children):
                supervisor._stop_child(sid)


def test_commands_reach_the_owner_over_redis_and_answers_come_back(proxy, stream, settings,
                                                                     tmp_path):
    from sessions_app.engines.base import EngineUnavailable
    from sessions_app.engines.whatsmeow.remote import RemoteEngine

    session_id = f"ses_{uuid.uuid4().hex[:12].upper()}"
    supervisor = EngineSupervisor(
        redis_client=redis_client(), namespace=settings.REDIS_NAMESPACE, stream=stream,
        redis_url=settings.REDIS_URL, store_dir=tmp_path, proxy_url=proxy.url)
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    engine = RemoteEngine(lambda *events: None)
    try:
        engine.start(session_id)
        wait_until(lambda: session_id in supervisor.children, timeout=30)
        assert wait_until(lambda: engine.state(session_id), timeout=30) in ("starting", "failed")
        with pytest.raises(EngineUnavailable):  # not connected: the send is not possible now
            engine.send_text(session_id, message_id="msg_1", to="14155550123", text="hi")
        with pytest.raises(EngineUnavailable):  # nobody owns this one: no answer in time
            engine._call("ses_NOBODY", "state_name", timeout=1)
    finally:
        supervisor.stop_event.set()
        loop.join(20)
    assert not supervisor.children


def test_credentials_can_live_in_postgresql(proxy, stream, settings):
    """With a postgres:// store, whatsmeow keeps its device tables in the service's database."""
    from django.db import connection

    from sessions_app.management.commands.run_engine import credential_store

    store = credential_store()
    assert store.startswith("postgres://")
    assert connection.settings_dict["NAME"] in store
    session_id = f"ses_{uuid.uuid4().hex[:12].upper()}"
    context = multiprocessing.get_context("spawn")
    _parent, child = context.Pipe()
    config = ChildConfig(session_id=session_id, store_path=store, redis_url=settings.REDIS_URL,
                         stream=stream, proxy_url=proxy.url)
    process = context.Process(target=child_main, args=(config, child), daemon=True)
    process.start()
    try:
        wait_until(lambda: [e for e in events_of(stream, session_id) if e["type"] == "failed"],
                   timeout=60)
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        assert "whatsmeow_device" in tables
    finally:
        process.terminate()
        process.join(10)
