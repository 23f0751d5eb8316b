"""The steps `bench/cost.py` counts, run in one process without a server: the accept path
through the WSGI application, and the pipeline behind it driven directly (sender runs, the
engine event consumer, webhook delivery runs), as the Celery tasks would call them.

    python bench/cost_steps.py prepare <scenario> <n> <state.json> [receiver url]
    python bench/cost_steps.py run <state.json> [phase]   (under callgrind)

`prepare` makes what the step needs (untraced): an account, ten connected sandbox sessions, a
webhook, the durable floor's table (`floor`) and, for the pipeline, n accepted messages. `run`
repeats the step n times (the accept scenarios), runs one phase of the pipeline (`sender`,
then `receipts`, then `webhooks`) until it has done all its work, and checks that it did, or
sends the n messages paced (`paced`: one send per sender run, as with the real engine).
Never two in one process, so setup costs are not counted and each phase is counted apart.
"""

from __future__ import annotations

import io
import json
import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATABASE as BENCH_DATABASE
from bench.common import FLOOR_TABLE_SQL, env_for, fresh_database, manage

DATABASE = f"{BENCH_DATABASE}_cost"  # dropped and made again by `prepare`
SESSIONS = 10
# callgrind runs the code about 50 times slower than it runs: the per-process caches that
# expire by the clock (config/local_cache.py; the session looked up for a send lives 1 s)
# would expire 50 times more often per request than at full speed. Their clock is slowed
# down as much.
CALLGRIND_SLOWDOWN = 50


class WsgiClient:
    """Calls the WSGI application as gunicorn would, without sockets."""

    def __init__(self, key: str) -> None:
        from config.wsgi import application

        self.application = application
        self.key = key

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        raw = json.dumps(body).encode() if body is not None else b""
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "wsgi.input": io.BytesIO(raw), "wsgi.errors": sys.stderr,
                   "CONTENT_LENGTH": str(len(raw)), "CONTENT_TYPE": "application/json",
                   "HTTP_AUTHORIZATION": f"Bearer {self.key}"}
        status: list[str] = []
        answer = b"".join(self.application(environ, lambda line, headers, *_: status.append(line)))
        return int(status[0].split()[0]), answer

    def data(self, method: str, path: str, body: dict | None = None) -> dict:
        code, answer = self.call(method, path, body)
        if code >= 300:
            raise SystemExit(f"{method} {path}: {code} {answer!r}")
        return json.loads(answer)["data"]


def _send_body(sessions: list[str], i: int) -> dict:
    return {"sessionId": sessions[i % len(sessions)], "to": "14155550123", "text": f"m{i}"}


def prepare(scenario: str, n: int, state_path: str, receiver_url: str = "") -> None:
    namespace = f"cost-{uuid.uuid4().hex[:6]}"
    env = env_for(DATABASE, namespace, SANDBOX_STATUS_DELAY_SECONDS="0",
                  SEND_MIN_INTERVAL_SECONDS=PACED_INTERVAL if scenario == "paced" else "0",
                  ALLOW_PRIVATE_URLS="true",
                  WEBHOOK_REQUIRE_HTTPS="false", CELERY_QUEUE=namespace)
    fresh_database(env, DATABASE)
    if scenario == "floor":
        manage(env, "shell", "-c", f"from django.db import connection; "
                                   f"connection.cursor().execute({FLOOR_TABLE_SQL!r})")
    manage(env, "create_plan", "bench", "--max-sessions", "100000", "--daily-messages",
           "100000000", "--rate-per-minute", "100000000", "--max-concurrent", "100000")
    key = manage(env, "create_api_key", "--account", namespace,
                 "--plan", "bench").strip().splitlines()[-1]
    os.environ.update(env)
    import django

    django.setup()
    client = WsgiClient(key)
    sessions = []
    for _ in range(SESSIONS):
        session = client.data("POST", "/v1/sessions", {})["id"]
        client.data("POST", f"/v1/sandbox/sessions/{session}/scan",
                    {"phoneNumber": "14155552671"})
        sessions.append(session)
    webhook = ""
    if receiver_url:
        webhook = client.data("POST", "/v1/webhooks",
                              {"url": receiver_url, "events": ["message.status"]})["id"]
    if scenario in ("pipeline", "paced"):
        for i in range(n):
            client.data("POST", "/v1/messages/text", _send_body(sessions, i))
    if scenario == "floor-pipeline":  # n messages in the end-to-end floor's queue
        from bench.pipeline_floor import create_tables

        create_tables(env["DATABASE_URL"])
        for i in range(n):
            client.data("POST", "/v1/bench/floor-queue", _send_body(sessions, i))
    from django.db import connection

    with connection.cursor() as cursor:  # no vacuum's WAL among what `bench/cost.py` counts
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"ALTER TABLE {connection.ops.quote_name(table)} "
                           "SET (autovacuum_enabled = false)")
    Path(state_path).write_text(json.dumps(
        {"scenario": scenario, "n": n, "env": env, "key": key, "sessions": sessions,
         "receiver": receiver_url,
         "webhook": webhook}))


PHASES = ("sender", "receipts", "webhooks")
# The `paced` scenario's SEND_MIN_INTERVAL_SECONDS: over the sender's INLINE_PAUSE_SECONDS, so
# each run sends one message and schedules its continuation, as with the real engine's 1 s;
# short enough to be over (under callgrind) by the time the round comes back to the session.
PACED_INTERVAL = "0.06"


def run(state_path: str, phase: str = "") -> None:
    state = json.loads(Path(state_path).read_text())
    os.environ.update(state["env"])
    import time
    import types

    import django

    django.setup()
    from infra import local_cache

    local_cache.time = types.SimpleNamespace(
        monotonic=lambda: time.monotonic() / CALLGRIND_SLOWDOWN)
    n, scenario = state["n"], state["scenario"]
    if scenario == "pipeline":
        _run_phase(state, n, phase)
        return
    if scenario == "floor-pipeline":
        _run_floor_phase(state, n, phase)
        return
    if scenario == "paced":
        _run_paced(state, n)
        return
    if scenario == "trickle":
        _run_trickle(state, n)
        return
    client = WsgiClient(state["key"])
    path = {"bare": "/v1/bench/bare", "floor": "/v1/bench/floor",
            "send": "/v1/messages/text"}[scenario]
    for i in range(n):
        code, answer = client.call("POST", path, _send_body(state["sessions"], i))
        if code != 201:
            raise SystemExit(f"{path}: {code} {answer!r}")


def _run_phase(state: dict, n: int, phase: str) -> None:
    """One phase of the pipeline, as its Celery task would run it, until it has nothing left
    to do; each is counted in its own process, after the one before it."""
    from messaging.models import Message
    from messaging.sender import session_sender_run
    from sessions_app.event_consumer import engine_events_drain
    from webhooks.delivery import webhook_deliver_due
    from webhooks.models import Delivery

    for _round in range(50):
        if phase == "sender":
            for session in state["sessions"]:
                session_sender_run(session_id=session)
            left = Message.objects.filter(status="queued").count()
        elif phase == "receipts":
            engine_events_drain()
            left = n - Message.objects.filter(status="read").count()
        elif phase == "webhooks":
            webhook_deliver_due(webhook_id=state["webhook"])
            # sent, delivered, read: a post each
            left = 3 * n - Delivery.objects.filter(status="succeeded").count()
        else:
            raise SystemExit(f"unknown phase {phase!r}")
        if left == 0:
            return
    raise SystemExit(f"the {phase} phase did not finish: {left} of {n} messages left")


def _run_floor_phase(state: dict, n: int, phase: str) -> None:
    """One phase of the end-to-end floor (`bench/pipeline_floor.py`), as `_run_phase` runs the
    service's: its worker's step repeated until it has nothing left to do."""
    from bench.pipeline_floor import FloorWorker

    worker = FloorWorker(state["env"]["DATABASE_URL"], state["env"]["REDIS_URL"],
                         state["env"]["REDIS_NAMESPACE"], state["receiver"])
    step = {"sender": worker.send_some, "receipts": worker.apply_receipts,
            "webhooks": worker.post_webhooks}[phase]
    while step():
        pass
    done = {"sender": "SELECT count(*) FROM floor_message WHERE status = 'sent'",
            "receipts": "SELECT count(*) FROM floor_message WHERE status = 'read'",
            "webhooks": "SELECT count(*) / 3 FROM floor_delivery WHERE status = 'succeeded'"}
    count = worker.db.execute(done[phase]).fetchone()[0]
    if count != n:
        raise SystemExit(f"the floor's {phase} phase did not finish: {count} of {n} messages")


def _run_trickle(state: dict, n: int) -> None:
    """Messages one at a time through every stage, as a service that keeps up with a light
    load sees them: accepted, sent, its receipts consumed, its webhooks posted, before the
    next is accepted. Each stage's batch is one message: what a batch costs beyond its
    messages is all counted."""
    from messaging.sender import session_sender_run
    from sessions_app.event_consumer import engine_events_drain
    from webhooks.delivery import webhook_deliver_due
    from webhooks.models import Delivery

    client = WsgiClient(state["key"])
    for i in range(n):
        session = state["sessions"][i % len(state["sessions"])]
        code, answer = client.call("POST", "/v1/messages/text", _send_body(state["sessions"], i))
        if code != 201:
            raise SystemExit(f"send: {code} {answer!r}")
        session_sender_run(session_id=session)
        engine_events_drain()
        webhook_deliver_due(webhook_id=state["webhook"])
    posted = Delivery.objects.filter(status="succeeded").count()
    if posted != 3 * n:
        raise SystemExit(f"the trickle posted {posted} of {3 * n} webhooks")


def _run_paced(state: dict, n: int) -> None:
    """Paced sends: each session's runs one after another as its continuations would come
    (each under the lease its first run took), until every message is sent."""
    from messaging.models import Message
    from messaging.sender import session_sender_run

    runs = 0
    while Message.objects.filter(status="queued").exists():
        for session in state["sessions"]:
            session_sender_run(session_id=session, owner=f"cost-{session}")
            runs += 1
        if runs > 2 * n:
            raise SystemExit(f"the paced sends did not finish in {runs} runs")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], int(sys.argv[3]), sys.argv[4], *sys.argv[5:6])
    else:
        run(sys.argv[2], *sys.argv[3:4])
