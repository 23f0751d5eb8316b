"""The engine worker (`python manage.py run_engine`): supervises one spawned child process per
live session it owns.

- One owner per session: a Redis lease (`SET NX PX`, renewed every third of its life) whose
  value carries a fencing token; the child checks it before every WhatsApp write. A
  supervisor that cannot renew (Redis gone, or the lease taken) stops its children before
  the lease can expire, so another host never starts a session whose old child still runs.
  Children die with their supervisor (parent-death signal, and a closed pipe).
- Capacity: at most `max_sessions` children per supervisor (0: no limit). Supervisors
  announce how many sessions they run; each takes new and orphaned sessions up to its fair
  share of all sessions over the live hosts with room.
- Commands arrive on Redis lists: `start` on a shared queue (any supervisor), the rest on the
  session's own queue, read only by its owner. Replies go to the caller's reply key. A command
  whose caller already gave up (expired) is dropped, never run late.
- Recovery: a child whose connection ended, that crashed, or that hung while connecting is
  reported (`disconnected`, with `reconnectAt`) and started again from its stored login, with
  backoff; a session ended by WhatsApp or the phone is not. Every few seconds a supervisor
  takes over the sessions that should run and that nobody owns (their host died).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import redis

from sessions_app.engines import base
from sessions_app.engines.base import EngineEvent
from sessions_app.engines.whatsmeow import protocol, translate
from sessions_app.engines.whatsmeow.child import (
    EXIT_ENDED,
    EXIT_RECONNECT,
    ChildConfig,
    child_main,
)
from sessions_app.engines.whatsmeow.runner import FINAL_STATES

logger = logging.getLogger(__name__)

LEASE_MS = 15_000
SCAN_EVERY = 5.0
MAX_BACKOFF = 60.0
# A child that reports no state this long after it started (a hung dial) is restarted.
CONNECT_TIMEOUT = 60.0
# Connected this long, a session's backoff starts again from one second.
STABLE_AFTER = 60.0
# How long a session that ended here is not resumed by a scan (its end reaches the database
# well within it).
ENDED_MEMORY = 60.0
# A start that a less loaded supervisor should take is passed on at most this often.
MAX_HOPS = 3

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class Child:
    session_id: str
    process: multiprocessing.Process
    conn: object
    phone_number: str | None
    lease_value: str
    device_jid: str | None = None
    restarts: int = 0
    ending: bool = False  # stopped, logged out or ended by WhatsApp: do not restart
    restart_at: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    state: str | None = None  # as the child last reported it
    connected_since: float | None = None
    replies: dict[str, str] = field(default_factory=dict)  # command id -> reply key


class EngineSupervisor:
    def __init__(self, *, redis_client, namespace: str, stream: str, redis_url: str,
                 store_dir: Path, child_target=child_main, worker_id: str | None = None,
                 resumable_sessions=None, proxy_url: str | None = None,
                 lease_ms: int = LEASE_MS, credential_store: str | None = None,
                 media_store=None, media_open=None, wake: Callable[[], None] | None = None,
                 max_sessions: int = 0, session_wanted=None, scan_every: float = SCAN_EVERY,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 max_backoff: float = MAX_BACKOFF) -> None:
        self.proxy_url = proxy_url
        self.lease_ms = lease_ms
        self.scan_every = scan_every
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        # Sessions that ended here (WhatsApp's or the phone's decision, or a stop): not
        # resumed by a scan that runs before the database says so; a start clears it.
        self.ended: dict[str, float] = {}
        # A postgres:// URL shared by every session, or None for one SQLite file per session.
        self.credential_store = credential_store
        # media_store(session_id, event_data, bytes) -> dict to put in the event's "media";
        # media_open(name) -> bytes of a file an outgoing media command refers to.
        self.media_store = media_store
        self.media_open = media_open
        self.wake = wake or (lambda: None)  # the event consumer should run now
        self.max_sessions = max_sessions
        self.redis = redis_client
        self.namespace = namespace
        self.stream = stream
        self.redis_url = redis_url
        self.store_dir = Path(store_dir)
        self.child_target = child_target
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # [(session id, phone number for pairing, device)] of the sessions that should run.
        self.resumable_sessions = resumable_sessions or (lambda: [])
        # Whether a session whose child ended unexpectedly should still run.
        self.session_wanted = session_wanted or (lambda session_id: True)
        self.children: dict[str, Child] = {}
        self.context = multiprocessing.get_context("spawn")
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._renew = redis_client.register_script(_RENEW)
        self._release_script = redis_client.register_script(_RELEASE)
        self.renewed_at = time.monotonic()

    # --- events ---
    def publish(self, *events: EngineEvent) -> None:
        base.stream_append(self.redis, self.stream, events)
        self.wake()

    # --- leases ---
    def _acquire(self, session_id: str) -> str | None:
        """A new lease of the session, or None if someone holds it."""
        token = self.redis.incr(protocol.fence_key(self.namespace, session_id))
        value = f"{self.worker_id}:{token}"
        lease = protocol.lease_key(self.namespace, session_id)
        return value if self.redis.set(lease, value, nx=True, px=self.lease_ms) else None

    def _holds(self, session_id: str, value: str) -> bool:
        lease = protocol.lease_key(self.namespace, session_id)
        return bool(self._renew(keys=[lease], args=[value, self.lease_ms]))

    def _release(self, session_id: str, value: str) -> None:
        try:
            self._release_script(keys=[protocol.lease_key(self.namespace, session_id)],
                                 args=[value])
        except redis.RedisError:
            logger.warning("could not release the lease of %s (it expires)", session_id)

    def renew_leases(self) -> None:
        """Renew every lease; stop the children whose lease is gone. If Redis cannot be
        reached, stop them all before the leases can expire and another host starts them."""
        try:
            for session_id, child in list(self.children.items()):
                if child.ending and not child.process.is_alive():
                    continue
                if not self._holds(session_id, child.lease_value):
                    logger.warning("session %s: lease lost, stopping its process", session_id)
                    self._stop_child(session_id, release=False)
            self._announce()
            self.renewed_at = time.monotonic()
        except redis.RedisError:
            unrenewed = time.monotonic() - self.renewed_at
            if unrenewed * 1000 > self.lease_ms * 0.6 and self.children:
                logger.error("leases not renewed for %.1f s: stopping every session here",
                             unrenewed)
                for session_id in list(self.children):
                    self._stop_child(session_id, release=False)

    def _announce(self, starting: int = 0) -> None:
        """Say how many sessions this host runs (`starting`: ones about to start, counted
        before their processes start, which takes a moment the other hosts should not read
        a stale load in)."""
        protocol.host_announce(self.redis, self.namespace, {
            "worker": self.worker_id, "sessions": len(self.children) + starting,
            "capacity": self.max_sessions or None}, self.lease_ms)

    def _has_room(self) -> bool:
        return not self.max_sessions or len(self.children) < self.max_sessions

    # --- children ---
    def _spawn(self, session_id: str, phone_number: str | None, lease_value: str,
               restarts: int = 0, device_jid: str | None = None) -> None:
        parent_conn, child_conn = self.context.Pipe()
        store = self.credential_store or str(self.store_dir / f"{session_id}.sqlite3")
        config = ChildConfig(session_id=session_id, store_path=store, device_jid=device_jid,
                             redis_url=self.redis_url, stream=self.stream,
                             phone_number=phone_number, proxy_url=self.proxy_url,
                             namespace=self.namespace, lease_value=lease_value)
        process = self.context.Process(target=self.child_target, args=(config, child_conn),
                                       name=f"engine-{session_id}", daemon=True)
        process.start()
        child_conn.close()  # the child's end: only the child holds it, so its death is seen
        child = Child(session_id, process, parent_conn, phone_number, lease_value,
                      device_jid=device_jid, restarts=restarts)
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
            try:
                self._on_child_message(child, message)
            except Exception:
                logger.exception("session %s: a message of its process failed",
                                 child.session_id)

    def _on_child_message(self, child: Child, message: dict) -> None:
        if message.get("wake"):
            self.wake()
        elif "state" in message:
            child.state = message["state"]
            child.device_jid = message.get("deviceJid") or child.device_jid
            if child.state == "connected":
                child.connected_since = child.connected_since or time.monotonic()
            else:
                child.connected_since = None
            if child.state in FINAL_STATES:
                child.ending = True  # WhatsApp or the phone ended it: nothing to resume
        elif "media" in message:
            self._store_media(child.session_id, message["media"], message["data"])
        else:
            reply_to = child.replies.pop(message["id"], None)
            if reply_to:
                self._answer(reply_to, message)

    def _store_media(self, session_id: str, event: dict, data: bytes) -> None:
        event = EngineEvent.from_dict(event)
        if self.media_store is not None:
            try:
                event.data["media"] = self.media_store(session_id, event.data, data)
            except Exception as error:
                logger.exception("storing incoming media of %s failed", session_id)
                event.data["mediaError"] = f"the file could not be stored: {error}"
        self.publish(event)

    def check_children(self) -> None:
        now = time.monotonic()
        for session_id, child in list(self.children.items()):
            if child.process.is_alive():
                if child.state is None and now - child.started_at > self.connect_timeout:
                    logger.warning("session %s: no answer from WhatsApp in %.0f s, restarting",
                                   session_id, self.connect_timeout)
                    child.process.kill()
                elif child.connected_since and now - child.connected_since > STABLE_AFTER:
                    child.restarts = 0
                continue
            if child.ending or child.process.exitcode == EXIT_ENDED:
                self.ended[session_id] = now
                self._forget(session_id)
            elif child.restart_at is None:
                self._schedule_restart(child, now)
            elif now >= child.restart_at:
                if self._holds(session_id, child.lease_value):
                    self._spawn(session_id, child.phone_number, child.lease_value,
                                restarts=child.restarts + 1, device_jid=child.device_jid)
                else:
                    self._forget(session_id)

    def _schedule_restart(self, child: Child, now: float) -> None:
        if not self.session_wanted(child.session_id):
            self._forget(child.session_id)
            return
        code = child.process.exitcode
        delay = min(2 ** child.restarts, self.max_backoff)
        child.restart_at = now + delay
        cause = base.CONNECTION_LOST if code == EXIT_RECONNECT else base.ENGINE_UNREACHABLE
        logger.warning("session %s: engine process exited (%s), restarting in %.0f s",
                       child.session_id, code, delay)
        self.publish(translate.disconnected_event(
            child.session_id, cause, reconnect_at=base.utcnow() + timedelta(seconds=delay)))

    def _forget(self, session_id: str, *, release: bool = True) -> None:
        with self._lock:
            child = self.children.pop(session_id, None)
        if child is not None and release:
            self._release(session_id, child.lease_value)

    def _stop_child(self, session_id: str, *, release: bool = True) -> None:
        child = self.children.get(session_id)
        if child is not None:
            child.ending = True
            child.process.terminate()
            child.process.join(5)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(5)
        self._forget(session_id, release=release)

    # --- commands ---
    def _queues(self) -> list[str]:
        own = [protocol.session_queue(self.namespace, sid) for sid in self.children]
        if self._has_room():
            own.insert(0, protocol.key(self.namespace, protocol.START_QUEUE))
        return own or [protocol.key(self.namespace, "engine", "idle", self.worker_id)]

    def handle(self, raw: bytes) -> None:
        command = json.loads(raw)
        if command.get("expires", 0) < time.time():
            return
        session_id, op, args = command["session"], command["op"], command.get("args") or {}
        if op in ("start", "restart"):
            self._start(command, session_id, args)
            return
        child = self.children.get(session_id)
        if child is None or not child.process.is_alive():
            self._reply(command, {"ok": False, "error": "unavailable",
                                  "reason": "the session's engine process is not running"})
            return
        if op in ("logout", "stop"):
            child.ending = True
        if op == "send_media" and "file" in args:  # the bytes come by reference, not by Redis
            args = dict(args)
            try:
                args["data"] = self.media_open(args.pop("file"))
            except Exception as error:
                self._reply(command, {"ok": False, "error": "unavailable",
                                      "reason": f"the media file could not be read: {error}"})
                return
        if command.get("reply"):
            child.replies[command["id"]] = command["reply"]
        child.conn.send({"id": command["id"], "op": op, "args": args})

    def _start(self, command: dict, session_id: str, args: dict) -> None:
        """Start (or restart) a session here, or pass the command to whoever should."""
        phone, device = args.get("phoneNumber"), args.get("device")
        self.ended.pop(session_id, None)
        child = self.children.get(session_id)
        if child is not None:  # ours: a new process, with the same lease
            lease_value = child.lease_value
            self._stop_child(session_id, release=False)
            self._spawn(session_id, phone, lease_value, device_jid=device)
            return
        owner = self.redis.get(protocol.lease_key(self.namespace, session_id))
        if owner is not None:  # another supervisor runs it: it restarts it
            queue = protocol.session_queue(self.namespace, session_id)
            self.redis.rpush(queue, json.dumps({**command, "op": "restart"}))
            self.redis.expire(queue, 60)
            return
        hops = command.get("hops", 0)
        if hops < MAX_HOPS and len(self.children) >= self._fair_share(1):
            # One more would put this host above its share: a less loaded one takes it
            # (this host waits a moment before it reads the queue again, so another can).
            self.redis.rpush(protocol.key(self.namespace, protocol.START_QUEUE),
                             json.dumps({**command, "hops": hops + 1}))
            self.stop_event.wait(0.2)
            return
        lease_value = self._acquire(session_id)
        if lease_value is not None:
            self._announce(starting=1)
            self._spawn(session_id, phone, lease_value, device_jid=device)

    def _reply(self, command: dict, message: dict) -> None:
        """Answer a command here, without its session's process."""
        if command.get("reply"):
            self._answer(command["reply"], {"id": command["id"], **message})

    def _answer(self, reply_to: str, message: dict) -> None:
        """Put an answer where its caller waits; it expires if the caller gave up."""
        pipe = self.redis.pipeline()
        pipe.rpush(reply_to, json.dumps(message))
        pipe.expire(reply_to, 60)
        pipe.execute()

    def resume(self) -> None:
        """Take the sessions that should be running and that no live supervisor owns, up to
        this host's fair share of all sessions (hosts take theirs at the same time, each in
        its own order, so a dead host's sessions are spread at once)."""
        now = time.monotonic()
        self.ended = {sid: at for sid, at in self.ended.items() if now - at < ENDED_MEMORY}
        candidates = [(sid, phone, device) for sid, phone, device in self.resumable_sessions()
                      if sid not in self.children and sid not in self.ended]
        if not candidates:
            return
        leases = self.redis.mget([protocol.lease_key(self.namespace, sid)
                                  for sid, _, _ in candidates])
        unowned = [c for c, lease in zip(candidates, leases, strict=True) if lease is None]
        mine_first = sorted(unowned, key=lambda c: hashlib.blake2b(
            f"{self.worker_id}:{c[0]}".encode()).digest())
        for left, (session_id, phone, device) in enumerate(mine_first):
            # Asked again each time: hosts starting together see each other's load.
            if len(self.children) >= self._fair_share(len(mine_first) - left):
                break
            lease_value = self._acquire(session_id)
            if lease_value is not None:
                # Nobody ran it (its host died, or this one restarted): disconnected until
                # its new process connects, so that its sends wait instead of failing.
                self.publish(translate.disconnected_event(
                    session_id, base.ENGINE_UNREACHABLE, reconnect_at=base.utcnow()))
                self._announce(starting=1)  # the others see this one's load at once
                self._spawn(session_id, phone or None, lease_value, device_jid=device or None)

    def _fair_share(self, unowned: int) -> int:
        """How many sessions this host should run: all sessions spread evenly over the live
        hosts with room, within this host's own cap."""
        others = [host for host in protocol.engine_hosts(self.redis, self.namespace)
                  if host["worker"] != self.worker_id
                  and (not host["capacity"] or host["sessions"] < host["capacity"])]
        total = len(self.children) + sum(host["sessions"] for host in others) + unowned
        share = -(-total // (len(others) + 1))
        return min(share, self.max_sessions) if self.max_sessions else share

    # --- the loop ---
    def run(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # The first scan waits one interval: hosts started together see each other first.
        last_renew, last_scan = 0.0, time.monotonic()
        while not self.stop_event.is_set():
            now = time.monotonic()
            try:
                if now - last_renew >= self.lease_ms / 3000:
                    last_renew = now
                    self.renew_leases()
                if now - last_scan >= self.scan_every:
                    last_scan = now
                    self.resume()
                popped = self.redis.blpop(self._queues(), timeout=1)
                if popped is not None:
                    self.handle(popped[1])
                self.check_children()
            except redis.RedisError as error:
                logger.warning("Redis: %s", error)
                self.renew_leases()  # stops the children if it stays away too long
                self.stop_event.wait(1)
            except Exception:
                # The database away, a bug: said once a second at most, never a busy loop.
                logger.exception("the engine supervisor's loop failed; going on in 1 s")
                self.stop_event.wait(1)
        for session_id in list(self.children):
            self._stop_child(session_id)
        with contextlib.suppress(redis.RedisError):
            protocol.host_withdraw(self.redis, self.namespace, self.worker_id)
