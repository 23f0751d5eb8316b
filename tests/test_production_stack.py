"""The production setup of the README (deploy/supervisord.conf: nginx in front of gunicorn's
two sync workers, a Celery worker and beat, each restarted when it exits), run as it is and
faulted from outside: idle and slow clients, what nginx refuses itself, a killed worker, the
broker going away. Loopback only."""

import contextlib
import os
import signal
import socket
import time

import httpx
import pytest

from messaging.models import Message, MessageStatusChange
from tests.conftest import assert_error, http_client
from tests.support.production import production_stack
from tests.support.servers import OwnRedis
from tests.support.worker import wait_until

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


# What a killed worker leaves is recovered in seconds here, in minutes by default.
FAST_RECOVERY = {"CELERY_VISIBILITY_TIMEOUT": "10", "SWEEP_INTERVAL_SECONDS": "1",
                 "SENDER_LEASE_SECONDS": "3", "MESSAGE_SENDING_TIMEOUT_SECONDS": "2",
                 "ENGINE_EVENT_CLAIM_TIMEOUT_SECONDS": "3"}


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), production_stack(FAST_RECOVERY) as running:
        yield running


def raw_request(stack, data: bytes, *, read: bool = True) -> bytes:
    """Send bytes as they are; the answer, as it comes until the server closes or 15 s."""
    host, port = stack.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(data)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while read and (chunk := sock.recv(65536)):
                answer += chunk
        return answer


def parsed(answer: bytes) -> httpx.Response:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in header_lines]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


def test_idle_and_slow_clients_do_not_hold_the_web_workers(stack):
    host, port = stack.base.removeprefix("http://").split(":")
    held = []
    try:
        # More clients than gunicorn has workers, each stopping half-way: in its headers, or
        # in a body it announced.
        for n in range(12):
            sock = socket.create_connection((host, int(port)), timeout=5)
            if n % 2:
                sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            else:
                sock.sendall(b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            held.append(sock)
        time.sleep(0.5)
        with httpx.Client(base_url=stack.base, timeout=10, trust_env=False) as client:
            for _ in range(4):
                assert client.get("/v1/health").status_code == 200
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(("request_bytes", "reason"), [
    (b"GET /v1/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "too long"),
    (b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
     "too long"),
    (b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
     b"Content-Length: 50000000\r\n\r\n{", "too large"),
    (b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.2\r\n\r\n", "not valid"),
    (b"NOT HTTP AT ALL\r\n\r\n", "not valid"),
], ids=["url", "header", "body", "two-hosts", "garbage"])
def test_what_the_front_refuses_is_answered_in_the_envelope(stack, request_bytes, reason):
    response = parsed(raw_request(stack, request_bytes))
    error = assert_error(response, 400, "invalid_request")
    assert reason in error["details"]["reason"]
    assert response.headers["x-request-id"]


def test_a_long_url_within_the_fronts_buffers_reaches_the_service(stack, alice):
    # 6,000 characters: gunicorn's own limit (4,094) answered an HTML page.
    with http_client(stack.base, alice.raw_key) as client:
        response = client.get("/v1/messages/" + "m" * 6000)
    assert_error(response, 404, "message_not_found")


def test_web_processes_down_is_service_unavailable_in_the_envelope(stack):
    stack.ctl("stop", "web")
    try:
        response = httpx.get(stack.base + "/v1/health", timeout=10, trust_env=False)
        assert_error(response, 503, "service_unavailable")
        assert response.headers["retry-after"] == "5"
    finally:
        stack.ctl("start", "web")
    assert wait_until(lambda: httpx.get(stack.base + "/v1/health", timeout=5,
                                        trust_env=False).status_code == 200)


def send_texts(client: httpx.Client, session_id: str, count: int) -> list[str]:
    body = {"sessionId": session_id, "to": "14155550123", "text": "through the stack"}
    ids = []
    for _ in range(count):
        response = client.post("/v1/messages/text", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["data"]["id"])
    return ids


def connected(client: httpx.Client) -> str:
    session = client.post("/v1/sessions", json={}).json()["data"]
    response = client.post(f"/v1/sandbox/sessions/{session['id']}/scan",
                           json={"phoneNumber": "14155552671"})
    assert response.status_code == 200, response.text
    wait_until(lambda: client.get(f"/v1/sessions/{session['id']}").json()["data"]["status"]
               == "connected")
    return session["id"]


def all_read_once(ids: list[str]) -> bool:
    return (Message.objects.filter(pk__in=ids, status="read").count() == len(ids)
            and MessageStatusChange.objects.filter(message_id__in=ids, status="sent").count()
            == len(ids))


def test_a_killed_worker_is_started_again_and_nothing_is_lost_or_sent_twice(stack, alice):
    with http_client(stack.base, alice.raw_key) as client:
        session_id = connected(client)
        first = send_texts(client, session_id, 10)
        before = stack.pid("worker")
        os.kill(before, signal.SIGKILL)
        second = send_texts(client, session_id, 10)  # accepted while no worker runs
        wait_until(lambda: stack.running("worker") and stack.pid("worker") != before,
                   timeout=30)
        try:
            wait_until(lambda: all_read_once(first + second), timeout=60)
        except AssertionError:
            statuses = list(Message.objects.filter(pk__in=first + second)
                            .values_list("status", flat=True))
            raise AssertionError(f"{statuses}\n{stack.log('worker')}") from None
    time.sleep(1)
    assert all_read_once(first + second)


def test_the_worker_outlives_the_broker_going_away(alice, tmp_path):
    """Redis shut down while the worker holds tasks (receipts due later): Celery's worker may
    exit; it is started again, waits for Redis, and every message accepted before and after
    is sent once and read."""
    redis = OwnRedis(tmp_path, append_only=True)
    redis.start()
    env = {**FAST_RECOVERY, "REDIS_URL": redis.url, "SANDBOX_STATUS_DELAY_SECONDS": "3"}
    try:
        with production_stack(env) as stack, http_client(stack.base, alice.raw_key) as client:
            session_id = connected(client)
            first = send_texts(client, session_id, 10)
            wait_until(lambda: MessageStatusChange.objects.filter(
                message_id__in=first, status="sent").count() == 10)
            redis.stop()
            assert_error(client.post("/v1/messages/text", json={
                "sessionId": session_id, "to": "14155550123", "text": "x"}),
                503, "service_unavailable")
            time.sleep(3)  # the worker and beat find the broker gone
            redis.start()
            wait_until(lambda: client.get("/v1/health").status_code == 200, timeout=30)
            second = send_texts(client, session_id, 10)
            try:
                wait_until(lambda: all_read_once(first + second), timeout=90)
            except AssertionError:
                statuses = list(Message.objects.filter(pk__in=first + second)
                                .values_list("status", flat=True))
                raise AssertionError(f"{statuses}\n{stack.ctl('status')}\n"
                                     f"{stack.log('worker')}") from None
            assert stack.running("worker") and stack.running("beat")
        time.sleep(1)
        assert all_read_once(first + second)
    finally:
        redis.stop()
