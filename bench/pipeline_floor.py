"""The end-to-end floor: the I/O that any design keeping the service's promises must do for a
message, with as little Python around it as will do it, so that `bench/e2e.py --floor` can
run it through the same clients, receiver and measurements as the service.

A message costs, at the least:
- accepting it: the accept path's durable floor (`bench/urls.py` `QueueFloorApi`: one committed
  INSERT into a queue and two Redis round trips for the per-key limits);
- sending it once: a claim (twenty messages per statement), one round trip to the engine
  (here a Redis pipeline that counts the attempt and puts the receipts `sent`, `delivered`
  and `read` on the bus, as the sandbox does), and `sent` recorded durably before the next
  send, with its event and its delivery in the same statement (a crash must not send it
  again unrecorded);
- its receipts, read from the bus in batches and applied in one statement a batch (each
  message moved on to the last status it reached, an event and a delivery for each step),
  then acknowledged: whichever of the sender and the receipts records `sent` first writes
  its event, as in the service;
- three signed webhook posts over kept-alive connections, ten in flight, their outcomes
  (delivery and attempt rows) recorded in one statement a batch; the payload carries the
  message's id and status only, where the service's carries the whole message.

None of the service's checks, rendering, leases, wake-ups, history or Celery: what is left is
PostgreSQL, Redis, the HTTP hops and the Python that drives them. Workers are plain processes
that poll (5 ms naps when there is nothing to do).

    python bench/pipeline_floor.py <database url> <redis url> <namespace> <receiver url>
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import selectors
import signal
import socket
import sys
import time
import uuid
from urllib.parse import urlsplit

import psycopg
import redis

TABLES_SQL = """
CREATE TABLE IF NOT EXISTS floor_message (
    id text PRIMARY KEY, body jsonb NOT NULL, status text NOT NULL DEFAULT 'queued',
    created_at timestamptz NOT NULL DEFAULT now(), sent_at timestamptz,
    delivered_at timestamptz, read_at timestamptz);
CREATE INDEX IF NOT EXISTS floor_message_queued ON floor_message (id) WHERE status = 'queued';
CREATE TABLE IF NOT EXISTS floor_event (
    id text PRIMARY KEY, message_id text NOT NULL REFERENCES floor_message DEFERRABLE INITIALLY
    DEFERRED, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS floor_delivery (
    id text PRIMARY KEY, event_id text NOT NULL REFERENCES floor_event DEFERRABLE INITIALLY
    DEFERRED, status text NOT NULL DEFAULT 'pending', attempts int NOT NULL DEFAULT 0,
    succeeded_at timestamptz);
CREATE INDEX IF NOT EXISTS floor_delivery_pending ON floor_delivery (id)
    WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS floor_attempt (
    id bigserial PRIMARY KEY, delivery_id text NOT NULL REFERENCES floor_delivery DEFERRABLE
    INITIALLY DEFERRED, status_code int, attempted_at timestamptz NOT NULL DEFAULT now());
"""

CLAIM_BATCH, RECEIPT_BATCH, POST_BATCH, IN_FLIGHT = 20, 200, 100, 10
SECRET = b"floor-secret"

_CLAIM_SQL = """
UPDATE floor_message SET status = 'sending' WHERE id IN (
    SELECT id FROM floor_message WHERE status = 'queued' ORDER BY id LIMIT %s
    FOR UPDATE SKIP LOCKED)
RETURNING id
"""
_SENT_SQL = """
WITH sent AS (UPDATE floor_message SET status = 'sent', sent_at = now()
              WHERE id = %s AND status = 'sending' RETURNING id),
     event AS (INSERT INTO floor_event (id, message_id, status)
               SELECT %s, id, 'sent' FROM sent RETURNING id)
INSERT INTO floor_delivery (id, event_id) SELECT %s, id FROM event
"""
# A batch's receipts in one statement: each message moves to the last status it reached (never
# back), and each receipt that moved it on gets its event and delivery. The messages are
# locked in id order, so two workers' batches cannot deadlock.
_RANK = "array_position(ARRAY['queued', 'sending', 'sent', 'delivered', 'read'], {})"
_RECEIPTS_SQL = f"""
WITH reached AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS r(id, status)),
     was AS (SELECT m.id, m.status FROM floor_message AS m
             WHERE m.id IN (SELECT id FROM reached) ORDER BY m.id FOR UPDATE),
     changed AS (
    UPDATE floor_message AS m SET status = reached.status,
        sent_at = coalesce(m.sent_at, now()),
        delivered_at = CASE WHEN reached.status IN ('delivered', 'read')
                       THEN coalesce(m.delivered_at, now()) END,
        read_at = CASE WHEN reached.status = 'read' THEN now() END
    FROM reached JOIN was USING (id)
    WHERE m.id = reached.id AND {_RANK.format("was.status")} < {_RANK.format("reached.status")}
    RETURNING m.id, was.status AS was),
     event AS (INSERT INTO floor_event (id, message_id, status)
               SELECT e.id, e.message_id, e.status
               FROM unnest(%s::text[], %s::text[], %s::text[]) AS e(id, message_id, status)
               JOIN changed ON changed.id = e.message_id
               WHERE {_RANK.format("e.status")} > {_RANK.format("changed.was")}
               RETURNING id)
INSERT INTO floor_delivery (id, event_id) SELECT 'd' || substr(id, 2), id FROM event
"""
_PENDING_SQL = """
SELECT d.id, e.message_id, e.status FROM floor_delivery AS d JOIN floor_event AS e
ON e.id = d.event_id WHERE d.status = 'pending' ORDER BY d.id LIMIT %s
"""
_POSTED_SQL = """
WITH posted AS (
    UPDATE floor_delivery AS d SET status = 'succeeded', attempts = d.attempts + 1,
        succeeded_at = now()
    FROM unnest(%s::text[], %s::int[]) AS v(id, code) WHERE d.id = v.id
    RETURNING d.id)
INSERT INTO floor_attempt (delivery_id, status_code)
SELECT v.id, v.code FROM unnest(%s::text[], %s::int[]) AS v(id, code)
"""


def floor_id(prefix: str) -> str:
    """Ids that sort by creation, as the service's do (its queues are read in id order)."""
    return f"{prefix}{time.time_ns():016x}{uuid.uuid4().hex[:8]}"


def create_tables(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(TABLES_SQL)


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _answered(received: bytes) -> bool:
    """Whether `received` holds a whole answer: its head, and as much body as it announces."""
    head_end = received.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    match = _CONTENT_LENGTH.search(received, 0, head_end)
    return len(received) >= head_end + 4 + (int(match.group(1)) if match else 0)



class Poster:
    """Signed POSTs to one endpoint over up to IN_FLIGHT kept-alive connections."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.address, self.path = (parts.hostname, parts.port), parts.path
        self.host = parts.netloc.encode()
        self.idle: list[socket.socket] = []
        self.selector = selectors.DefaultSelector()

    def _connection(self) -> socket.socket:
        if self.idle:
            return self.idle.pop()
        connection = socket.create_connection(self.address)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _request(self, body: bytes, delivery_id: str) -> bytes:
        stamp = str(int(time.time()))
        signed = b".".join([delivery_id.encode(), stamp.encode(), body])
        signature = base64.b64encode(hmac.new(SECRET, signed, hashlib.sha256).digest())
        return b"".join([
            b"POST ", self.path.encode(), b" HTTP/1.1\r\nHost: ", self.host,
            b"\r\nContent-Type: application/json\r\nwebhook-id: ", delivery_id.encode(),
            b"\r\nwebhook-timestamp: ", stamp.encode(), b"\r\nwebhook-signature: v1,",
            signature, b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n\r\n", body])

    def post_all(self, posts: list[tuple[str, bytes]]) -> list[tuple[str, int]]:
        """Post each (delivery id, body); returns (delivery id, status code) in any order."""
        outcomes: list[tuple[str, int]] = []
        waiting = list(reversed(posts))
        in_flight = 0
        while waiting or in_flight:
            while waiting and in_flight < IN_FLIGHT:
                delivery_id, body = waiting.pop()
                connection = self._connection()
                try:
                    connection.sendall(self._request(body, delivery_id))
                except OSError:  # a kept-alive connection the receiver closed: left pending
                    connection.close()
                    continue
                self.selector.register(connection, selectors.EVENT_READ, [delivery_id, b""])
                in_flight += 1
            for key, _ in self.selector.select():
                state, chunk = key.data, key.fileobj.recv(4096)
                state[1] += chunk
                if chunk and not _answered(state[1]):
                    continue
                self.selector.unregister(key.fileobj)
                in_flight -= 1
                if chunk:
                    self.idle.append(key.fileobj)
                    outcomes.append((state[0], int(state[1][9:12])))
                else:  # closed: not posted, left pending for the next batch
                    key.fileobj.close()
        return outcomes


class FloorWorker:
    """Sends, applies receipts and posts webhooks, in turn, as a Celery worker's process
    would run the service's tasks."""

    def __init__(self, database_url: str, redis_url: str, namespace: str,
                 receiver_url: str) -> None:
        self.db = psycopg.connect(database_url, autocommit=True, prepare_threshold=0)
        self.redis = redis.Redis.from_url(redis_url)
        self.bus, self.group = f"{namespace}:floor-bus", "floor"
        with contextlib.suppress(redis.ResponseError):  # the other worker made it
            self.redis.xgroup_create(self.bus, self.group, id="0", mkstream=True)
        self.consumer = uuid.uuid4().hex
        self.poster = Poster(receiver_url)

    def send_some(self) -> int:
        claimed = [row[0] for row in self.db.execute(_CLAIM_SQL, [CLAIM_BATCH])]
        for message_id in sorted(claimed):
            # The engine: count the attempt, and the recipient's phone answers with receipts.
            engine = self.redis.pipeline(transaction=False)
            engine.incr(f"{self.bus}:attempts:{message_id}")
            for status in ("sent", "delivered", "read"):
                engine.xadd(self.bus, {"m": message_id, "s": status})
            engine.execute()
            event_id = floor_id("e")
            self.db.execute(_SENT_SQL, [message_id, event_id, "d" + event_id[1:]])
        return len(claimed)

    def apply_receipts(self) -> int:
        answer = self.redis.xreadgroup(self.group, self.consumer, {self.bus: ">"},
                                       count=RECEIPT_BATCH)
        entries = answer[0][1] if answer else []
        if not entries:
            return 0
        rank = ("sent", "delivered", "read").index
        final: dict[str, str] = {}
        events: tuple[list[str], list[str], list[str]] = ([], [], [])
        for _entry_id, fields in entries:
            message_id, status = fields[b"m"].decode(), fields[b"s"].decode()
            if message_id not in final or rank(status) > rank(final[message_id]):
                final[message_id] = status
            events[0].append(floor_id("e"))
            events[1].append(message_id)
            events[2].append(status)
        self.db.execute(_RECEIPTS_SQL, [list(final), list(final.values()), *events])
        self.redis.xack(self.bus, self.group, *[entry_id for entry_id, _ in entries])
        return len(entries)

    def post_webhooks(self) -> int:
        # One run at a time posts to the endpoint (the service leases the webhook row).
        with self.db.transaction():
            if not self.db.execute("SELECT pg_try_advisory_xact_lock(7)").fetchone()[0]:
                return 0
            pending = self.db.execute(_PENDING_SQL, [POST_BATCH]).fetchall()
            if not pending:
                return 0
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            posts = [(delivery_id, json.dumps(
                {"createdAt": now, "data": {"id": message_id, "status": status},
                 "event": "message.status", "id": delivery_id, "sessionId": "floor"},
                separators=(",", ":"), sort_keys=True).encode())
                for delivery_id, message_id, status in pending]
            outcomes = self.poster.post_all(posts)
            succeeded = [outcome for outcome in outcomes if 200 <= outcome[1] < 300]
            self.db.execute(_POSTED_SQL, [[o[0] for o in succeeded], [o[1] for o in succeeded],
                                          [o[0] for o in outcomes], [o[1] for o in outcomes]])
        return len(pending)

    def run(self) -> None:
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        while not stopping:
            if not (self.send_some() + self.apply_receipts() + self.post_webhooks()):
                time.sleep(0.005)


if __name__ == "__main__":
    FloorWorker(*sys.argv[1:5]).run()
