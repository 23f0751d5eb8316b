"""The engine worker (`python manage.py run_engine`): supervises one spawned child process per
live session it owns.

- Ownership: a Redis lease per session (`SET NX PX`, renewed every few seconds), so that two
  workers never run the same session. Run N workers on any machines sharing Redis and the
  database; each takes sessions as they start, and takes over those whose owner died (its
  lease expired) when it next scans.
- Commands arrive on Redis lists: `start` on a shared queue (any worker), the rest on the
  session's own queue, read only by its owner. Replies go to the caller's reply key.
  A command whose caller already gave up (expired) is dropped, never run late.
- A child that dies (a Go panic aborts its process) is reported on the session and restarted
  with backoff; the others are not affected.
- After a restart every session that was connected is resumed from its stored credentials.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sessions_app.engines import base
from sessions_app.engines.base import EngineEvent
from sessions_app.engines.whatsmeow import protocol
from sessions_app.engines.whatsmeow.child import ChildConfig, child_main

logger = logging.getLogger(__name__)

LEASE_MS = 30_000
RENEW_EVERY = 10.0
SCAN_EVERY = 30.0
MAX_BACKOFF = 60.0


@dataclass
class Child:
    session_id: str
    process: multiprocessing.Process
    conn: object
    phone_number: str | None
    device_jid: str | None = None
    restarts: int = 0
    ending: bool = False  # stopped or logged out on purpose: do not restart
    restart_at: float | None = None
    replies: dict[str, str] = field(default_factory=dict)  # command id -> reply key


class EngineSupervisor:
    def __init__(self, *, redis_client, namespace: str, stream: str, redis_url: str,
                 store_dir: Path, child_target=child_main, worker_id: str | None = None,
                 resumable_sessions=None, proxy_url: str | None = None,
                 lease_ms: int = LEASE_MS, credential_store: str | None = None,
                 media_store=None) -> None:
        self.proxy_url = proxy_url
        self.lease_ms = lease_ms
        # A postgres:// URL shared by every session, or None for one SQLite file per session.
        self.credential_store = credential_store
        # media_store(session_id, event_data, bytes) -> dict to put in the event's "media".
        self.media_store = media_store
        self.redis = redis_client
        self.namespace = namespace
        self.stream = stream
        self.redis_url = redis_url
        self.store_dir = Path(store_dir)
        self.child_target = child_target
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.resumable_sessions = resumable_sessions or (lambda: [])
        self.children: dict[str, Child] = {}
        self.context = multiprocessing.get_context("spawn")
        self.stop_event = threading.Event()
        self._lock = threading.Lock()

    # --- events ---
    def publish(self, *events: EngineEvent) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for event in events:
            pipe.xadd(self.stream, {"event": json.dumps(event.to_dict())})
        pipe.execute()

    # --- leases ---
    def _lease(self, session_id: str) -> bool:
        lease = protocol.lease_key(self.namespace, session_id)
        if self.redis.set(lease, self.worker_id, nx=True, px=self.lease_ms):
            return True
        owner = self.redis.get(lease)
        if owner is not None and owner.decode() == self.worker_id:
            self.redis.pexpire(lease, self.lease_ms)
            return True
        return False

    def _release(self, session_id: str) -> None:
        lease = protocol.lease_key(self.namespace, session_id)
        owner = self.redis.get(lease)
        if owner is not None and owner.decode() == self.worker_id:
            self.redis.delete(lease)

    # --- children ---
    def _spawn(self, session_id: str, phone_number: str | None, restarts: int = 0,
               device_jid: str | None = None) -> None:
        parent_conn, child_conn = self.context.Pipe()
        store = self.credential_store or str(self.store_dir / f"{session_id}.sqlite3")
        config = ChildConfig(session_id=session_id, store_path=store, device_jid=device_jid,
                             redis_url=self.redis_url, stream=self.stream,
                             phone_number=phone_number, proxy_url=self.proxy_url)
        process = self.context.Process(target=self.child_target, args=(config, child_conn),
                                       name=f"engine-{session_id}", daemon=True)
        process.start()
        child = Child(session_id, process, parent_conn, phone_number, device_jid=device_jid,
                      restarts=restarts)
        with self._lock:
            self.children[session_id] = child
        threading.Thread(target=self._read_replies, args=(child,), daemon=True).start()
        logger.info("session %s: engine process %s started", session_id, process.pid)

    def _read_replies(self, child: Child) -> None:
        while True:
            try:
                message = child.conn.recv()
            except (EOFError, OSError):
                return
            if message.get("exit"):
                logger.info("session %s: %s", child.session_id, message["exit"])
                continue
            if "media" in message:
                self._store_media(child.session_id, message["media"], message["data"])
                continue
            reply_to = child.replies.pop(message["id"], None)
            if reply_to:
                pipe = self.redis.pipeline()
                pipe.rpush(reply_to, json.dumps(message))
                pipe.expire(reply_to, 60)
                pipe.execute()

    def _store_media(self, session_id: str, event: dict, data: bytes) -> None:
        event = EngineEvent.from_dict(event)
        if self.media_store is not None:
            try:
                event.data["media"] = self.media_store(session_id, event.data, data)
            except Exception as error:
                logger.exception("storing incoming media of %s failed", session_id)
                event.data["mediaError"] = f"the file could not be stored: {error}"
        self.publish(event)

    def _check_children(self) -> None:
        now = time.monotonic()
        for session_id, child in list(self.children.items()):
            if child.process.is_alive():
                continue
            if child.ending:
                self._forget(session_id)
                continue
            if child.restart_at is None:
                code = child.process.exitcode
                delay = min(2 ** child.restarts, MAX_BACKOFF)
                child.restart_at = now + delay
                logger.warning("session %s: engine process exited (%s), restarting in %.0f s",
                               session_id, code, delay)
                self.publish(EngineEvent(base.DISCONNECTED, session_id, {
                    "reason": f"engine process exited with code {code}; restarting"}))
            elif now >= child.restart_at:
                if self._lease(session_id):
                    self._spawn(session_id, child.phone_number, restarts=child.restarts + 1,
                                device_jid=child.device_jid)
                else:
                    self._forget(session_id)

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self.children.pop(session_id, None)
        self._release(session_id)

    # --- commands ---
    def _queues(self) -> list[str]:
        return [protocol.key(self.namespace, protocol.START_QUEUE)] + [
            protocol.session_queue(self.namespace, sid) for sid in self.children]

    def handle(self, raw: bytes) -> None:
        command = json.loads(raw)
        if command.get("expires", 0) < time.time():
            return
        session_id, op = command["session"], command["op"]
        if op == "start":
            if session_id not in self.children and self._lease(session_id):
                self._spawn(session_id, command["args"].get("phoneNumber"))
            return
        child = self.children.get(session_id)
        if child is None or not child.process.is_alive():
            self._reply(command, {"ok": False, "error": "unavailable",
                                  "reason": "the session's engine process is not running"})
            return
        if op in ("logout", "stop"):
            child.ending = True
        if command.get("reply"):
            child.replies[command["id"]] = command["reply"]
        child.conn.send({"id": command["id"], "op": op, "args": command["args"]})

    def _reply(self, command: dict, message: dict) -> None:
        if command.get("reply"):
            self.redis.rpush(command["reply"], json.dumps({"id": command["id"], **message}))
            self.redis.expire(command["reply"], 60)

    def resume(self) -> None:
        """Take every session that should be running and that no live worker owns."""
        for session_id, phone, device in self.resumable_sessions():
            if session_id not in self.children and self._lease(session_id):
                self._spawn(session_id, phone or None, device_jid=device or None)

    # --- the loop ---
    def run(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.resume()
        last_renew = last_scan = time.monotonic()
        while not self.stop_event.is_set():
            popped = self.redis.blpop(self._queues(), timeout=1)
            if popped is not None:
                try:
                    self.handle(popped[1])
                except Exception:
                    logger.exception("engine command failed")
            self._check_children()
            now = time.monotonic()
            if now - last_renew >= RENEW_EVERY:
                for session_id in list(self.children):
                    if not self._lease(session_id):  # another worker has it now
                        self._stop_child(session_id)
                last_renew = now
            if now - last_scan >= SCAN_EVERY:
                self.resume()
                last_scan = now
        for session_id in list(self.children):
            self._stop_child(session_id)

    def _stop_child(self, session_id: str) -> None:
        child = self.children.get(session_id)
        if child is not None:
            child.ending = True
            child.process.terminate()
            child.process.join(5)
        self._forget(session_id)
