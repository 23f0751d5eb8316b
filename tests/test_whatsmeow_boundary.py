"""The real library (neonize / whatsmeow) in spawned processes, on loopback only: every dial
goes to a local fake proxy that refuses it, so nothing leaves the machine."""

import json
import multiprocessing
import socket
import threading
import uuid

import pytest

from infra.redis import redis_client
from sessions_app.engines.whatsmeow import protocol
from sessions_app.engines.whatsmeow.child import EXIT_RECONNECT, ChildConfig, child_main
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


def test_an_offline_dial_failure_ends_the_process_for_a_reconnection(proxy, stream, settings,
                                                                      tmp_path):
    """whatsmeow cannot reach WhatsApp: the child says nothing final (the session is not
    failed) and exits with the code that makes its supervisor start it again."""
    session_id = f"ses_{uuid.uuid4().hex[:12].upper()}"
    context = multiprocessing.get_context("spawn")
    _parent, child = context.Pipe()  # held open: a closed pipe would end the child
    config = ChildConfig(session_id=session_id, store_path=str(tmp_path / "s.sqlite3"),
                         redis_url=settings.REDIS_URL, stream=stream, proxy_url=proxy.url)
    process = context.Process(target=child_main, args=(config, child), daemon=True)
    process.start()
    try:
        process.join(60)
        assert process.exitcode == EXIT_RECONNECT
        assert any(line.startswith("CONNECT web.whatsapp.com:443") for line in proxy.requests)
        assert not [e for e in events_of(stream, session_id) if e["type"] == "failed"]
    finally:
        process.kill()
        process.join(10)


def test_a_supervisor_reconnects_a_session_whose_dial_failed_with_backoff(
        proxy, stream, settings, tmp_path):
    supervisor = EngineSupervisor(
        redis_client=redis_client(), namespace=settings.REDIS_NAMESPACE, stream=stream,
        redis_url=settings.REDIS_URL, store_dir=tmp_path, proxy_url=proxy.url)
    session_id = f"ses_{uuid.uuid4().hex[:12].upper()}"
    supervisor.handle(protocol.command("start", session_id, {"device": None}).encode())
    try:
        first = supervisor.children[session_id].process
        first.join(60)
        supervisor.check_children()
        dropped = [e for e in events_of(stream, session_id) if e["type"] == "disconnected"]
        assert dropped[0]["data"]["code"] == "connection_lost"
        assert dropped[0]["data"]["reconnectAt"] > dropped[0]["occurredAt"]
        wait_until(lambda: (supervisor.check_children()
                            or supervisor.children[session_id].process is not first), timeout=10)
        assert supervisor.children[session_id].restarts == 1
    finally:
        for sid in list(supervisor.children):
            supervisor._stop_child(sid)


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
        for session_id in (calm, doomed):
            supervisor.children[session_id].process.join(60)
        # The panic aborted its own process only; the other one ended as any offline dial
        # does, and each is reported for what it was.
        assert supervisor.children[doomed].process.exitcode < 0
        assert supervisor.children[calm].process.exitcode == EXIT_RECONNECT
        supervisor.check_children()
        codes = {sid: [e["data"]["code"] for e in events_of(stream, sid)
                       if e["type"] == "disconnected"] for sid in (calm, doomed)}
        assert codes == {calm: ["connection_lost"], doomed: ["engine_unreachable"]}
        assert all(supervisor.children[sid].restart_at for sid in (calm, doomed))
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
        assert redis_client().get(lease).startswith(b"worker-a:")
        first.children[session_id].process.kill()  # the worker's machine goes away
        first.children.clear()  # ...and stops renewing its lease
        wait_until(lambda: redis_client().get(lease) is None, timeout=10)
        second.resume()
        assert session_id in second.children
        assert redis_client().get(lease).startswith(b"worker-b:")
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
        assert wait_until(lambda: engine.state(session_id), timeout=30) == "starting"
        with pytest.raises(EngineUnavailable):  # not connected: the send is not possible now
            engine.send_text(session_id, message_id="msg_1", to="14155550123", text="hi")
        with pytest.raises(EngineUnavailable):  # nor are group commands
            engine.list_groups(session_id)
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
        process.join(60)  # it tried to connect, so its device tables exist
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        assert "whatsmeow_device" in tables
    finally:
        process.terminate()
        process.join(10)


def test_a_command_nobody_answers_leaves_nothing_behind_in_redis(settings):
    """A host holds the session's lease but never reads its commands (it hangs): the caller
    gives up with EngineUnavailable, and the command's list expires instead of staying."""
    from sessions_app.engines.base import EngineUnavailable
    from sessions_app.engines.whatsmeow.remote import RemoteEngine

    session_id = f"ses_{uuid.uuid4().hex[:12].upper()}"
    redis_client().set(protocol.lease_key(settings.REDIS_NAMESPACE, session_id), "hung:1",
                       px=10_000)
    with pytest.raises(EngineUnavailable):
        RemoteEngine(lambda *events: None)._call(session_id, "logout", timeout=1)
    queue = protocol.session_queue(settings.REDIS_NAMESPACE, session_id)
    assert 0 < redis_client().ttl(queue) <= 16


def test_a_group_the_engine_does_not_know_comes_back_as_not_found(settings):
    """The answer a session's process gives for NotFound (`not_found`) is NotFound again on
    the caller's side, not a passing unavailability."""
    from sessions_app.engines.base import NotFound
    from sessions_app.engines.whatsmeow.remote import RemoteEngine

    client, namespace = redis_client(), settings.REDIS_NAMESPACE
    session_id = f"ses_{uuid.uuid4().hex[:12].upper()}"
    client.set(protocol.lease_key(namespace, session_id), "test:1", ex=30)

    def answer() -> None:
        _queue, raw = client.blpop([protocol.session_queue(namespace, session_id)], timeout=10)
        command = json.loads(raw)
        client.rpush(command["reply"], json.dumps({
            "id": command["id"], "ok": False, "error": "not_found",
            "reason": "reading x@g.us: that group does not exist"}))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with pytest.raises(NotFound, match="does not exist"):
        RemoteEngine(lambda *events: None).group_info(session_id, "120363000000000001@g.us")
    thread.join(5)
