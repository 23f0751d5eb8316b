"""Shared fixtures. API tests make real HTTP requests (httpx) to a live server backed by
PostgreSQL and Redis; `alice` and `bob` are two tenants used to prove isolation."""

import os
import uuid
from dataclasses import dataclass

import httpx
import pytest
from django.conf import settings
from django.core.servers.basehttp import WSGIServer

from accounts.models import Account, ApiKey, Plan
from accounts.services import account_create, api_key_create, plan_upsert
from tests.support.browser import browser_page  # noqa: F401  (a fixture for browser tests)


def pytest_configure(config):
    engine = settings.DATABASES["default"]["ENGINE"]
    if os.environ.get("ALLOW_SQLITE_TESTS") != "1" and (
        engine != "django.db.backends.postgresql" or not settings.REDIS_URL
    ):
        raise pytest.UsageError(
            "The suite runs against PostgreSQL and Redis: use ./scripts/test "
            "(or set DATABASE_URL and REDIS_URL)."
        )
    # The processes the tests start (Celery workers, gunicorn) get each test's own
    # REDIS_NAMESPACE, which their cache prefix would follow; they must share this process's
    # cache (sandbox state, key records), whose prefix was fixed when it started.
    os.environ["CACHE_KEY_PREFIX"] = settings.CACHES["default"].get("KEY_PREFIX", "")


# Django's live test server listens with a backlog of 5: tests with 50 concurrent clients
# would see connection resets that no production server (gunicorn: 2048) would give.
WSGIServer.request_queue_size = 128

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
# Celery queues of this test process: parallel test processes share one Redis.
CELERY_TEST_QUEUE = f"test-{XDIST_WORKER}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(autouse=True)
def isolated_redis_namespace(settings):
    """Each test gets its own Redis keys (event stream, limits): tests and xdist workers
    sharing one Redis never see each other's events, and nothing needs flushing."""
    settings.REDIS_NAMESPACE = f"test-{uuid.uuid4().hex[:12]}"
    from config.celery import app

    app.conf.task_default_queue = CELERY_TEST_QUEUE


@pytest.fixture
def celery_worker(transactional_db, settings):
    """A real Celery worker (prefork, with beat) for this test, on its own queue and Redis
    namespace. It depends on the database fixture so that it is stopped before the tables are
    flushed: a worker still polling them would deadlock the flush."""
    from config.celery import app
    from tests.support.worker import celery_worker as start_worker

    queue = f"{CELERY_TEST_QUEUE}-{uuid.uuid4().hex[:6]}"
    app.conf.task_default_queue = queue
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0.2
    env = {"SANDBOX_STATUS_DELAY_SECONDS": "0.2", "SWEEP_INTERVAL_SECONDS": "2",
           "ALLOW_PRIVATE_URLS": "true"}  # media and webhook servers of the tests are local
    with start_worker(queue=queue, namespace=settings.REDIS_NAMESPACE, extra_env=env) as worker:
        yield worker
        assert worker.poll() is None, "the Celery worker died during the test"


DEFAULT_PLANS = {
    "free": (1, 100, 60, 5),
    "pro": (5, 10_000, 600, 20),
    "business": (50, 100_000, 3_000, 50),
}


@pytest.fixture
def plans(transactional_db) -> dict[str, Plan]:
    """The plans of the data migration (transactional tests truncate tables between tests)."""
    result = {}
    for name, (sessions, daily, rate, concurrent) in DEFAULT_PLANS.items():
        result[name], _ = plan_upsert(
            name=name,
            max_sessions=sessions,
            daily_message_limit=daily,
            rate_limit_per_minute=rate,
            max_concurrent_requests=concurrent,
        )
    return result


@dataclass
class Tenant:
    account: Account
    key: ApiKey
    raw_key: str
    http: httpx.Client

    def new_key(self, **kwargs) -> tuple[ApiKey, str]:
        return api_key_create(account=self.account, **kwargs)


def http_client(base_url: str, raw_key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {raw_key}"} if raw_key else {}
    # trust_env=False: never route a test request through a proxy from the environment.
    return httpx.Client(base_url=base_url, headers=headers, timeout=15, trust_env=False)


@pytest.fixture
def anon(live_server) -> httpx.Client:
    with http_client(live_server.url) as client:
        yield client


@pytest.fixture
def make_tenant(live_server, plans):
    clients = []

    def make(name: str, plan: str = "pro", **key_kwargs) -> Tenant:
        account = account_create(name=name, plan=plans[plan])
        key, raw = api_key_create(account=account, name=f"{name} key", **key_kwargs)
        client = http_client(live_server.url, raw)
        clients.append(client)
        return Tenant(account=account, key=key, raw_key=raw, http=client)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def alice(make_tenant) -> Tenant:
    return make_tenant("alice")


@pytest.fixture
def bob(make_tenant) -> Tenant:
    return make_tenant("bob")


def assert_error(response: httpx.Response, status: int, code: str, field: str | None = None):
    """The response is the seed's error envelope with this status, code and details.field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if field is not None:
        assert body["error"]["details"]["field"] == field, body
    assert "Traceback" not in response.text
    return body["error"]


@pytest.fixture
def receiver(settings):
    """A local HTTP server standing in for a customer's webhook endpoint (`/hook` answers
    200), with the settings that let webhooks reach it over plain HTTP on loopback."""
    from tests.support.http_server import LocalServer, Route

    settings.ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    with LocalServer() as server:
        server.routes["/hook"] = Route(status=200, body=b"ok")
        yield server


def connected_session(tenant: Tenant, phone: str = "14155552671") -> dict:
    """A session of `tenant`, created and scanned in the sandbox."""
    session = tenant.http.post("/v1/sessions", json={}).json()["data"]
    response = tenant.http.post(f"/v1/sandbox/sessions/{session['id']}/scan",
                                json={"phoneNumber": phone})
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.fixture
def world(alice, bob, settings):
    """One of everything: a failed message with its request id, a failed delivery, usage."""
    from messaging.models import Message
    from messaging.sender import session_sender_run
    from sessions_app.event_consumer import engine_events_drain
    from tests.support.http_server import LocalServer, Route
    from webhooks.delivery import webhook_deliver_due
    from webhooks.models import Delivery, Webhook

    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    settings.ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    with LocalServer() as receiver:
        receiver.routes["/hook"] = Route(status=200)
        session = connected_session(alice)
        hook = alice.http.post("/v1/webhooks", json={
            "url": receiver.url("/hook"), "events": ["message.status"]}).json()["data"]
        receiver.routes["/hook"] = Route(status=410)
        sent = alice.http.post("/v1/messages/text", json={
            "sessionId": session["id"], "to": "14155550001", "text": "x"},
            headers={"X-Request-ID": "req-support-1"}).json()["data"]
        alice.http.get("/v1/messages/msg_01ZZZZZZZZZZZZZZZZZZZZZZZZ",
                       headers={"X-Request-ID": "req-support-1"})
        session_sender_run(session_id=session["id"])
        engine_events_drain()
        webhook_deliver_due(webhook_id=hook["id"])
        yield {"session": session, "message": Message.objects.get(pk=sent["id"]),
               "webhook": Webhook.objects.get(pk=hook["id"]),
               "delivery": Delivery.objects.get(webhook_id=hook["id"])}


@pytest.fixture
def operator():
    """A logged-in admin (superuser) for the Django test client."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-tests-1")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def redis_round_trips(monkeypatch) -> list[bytes]:
    """The commands this process sends to Redis, one entry per round trip (a pipeline or a
    script call is one)."""
    from redis.connection import Connection

    sent: list[bytes] = []
    send = Connection.send_packed_command

    def counting(self, command, *args, **kwargs):
        sent.append(b"".join(command) if isinstance(command, list) else command)
        return send(self, command, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    return sent
