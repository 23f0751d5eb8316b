"""The process of one session: the only place neonize is imported. Started with `spawn` (a
forked Go runtime hangs), it connects, publishes events straight to the Redis stream, and
serves the supervisor's commands over a pipe. A Go panic here kills this process only.

It never outlives its supervisor (the kernel kills it when the supervisor dies, and it exits
when the pipe closes), and it writes nothing to WhatsApp unless the session's lease still
holds the value it was started under (a fencing token): a process whose supervisor lost the
session to another host can no longer act on it.

Exit codes tell the supervisor what to do next: `EXIT_ENDED` (stopped, logged out, or ended
by WhatsApp: do not restart), anything else (the connection ended, a crash): restart it.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass

import redis

from sessions_app.engines import base
from sessions_app.engines.base import EngineError, NotFound, SendRejected, stream_append
from sessions_app.engines.whatsmeow import protocol
from sessions_app.engines.whatsmeow.runner import (
    FINAL_STATES,
    IN_FLIGHT_UNKNOWN,
    NotOwner,
    SessionRunner,
)

EXIT_ENDED = 0
EXIT_RECONNECT = 75  # EX_TEMPFAIL: the connection ended; the supervisor starts a new process
_PR_SET_PDEATHSIG = 1
# How long the ledger remembers a sent message: longer than any message waits in its queue.
SENT_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class ChildConfig:
    session_id: str
    store_path: str  # a SQLite file of this session, or a postgres:// URL shared by all
    redis_url: str
    stream: str
    device_jid: str | None = None  # the stored login to resume (None: pair afresh)
    phone_number: str | None = None
    proxy_url: str | None = None  # http:// or socks5:// (WHATSAPP_PROXY_URL)
    namespace: str = "wa"
    lease_value: str = ""  # the supervisor's lease of the session, with its fencing token


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a supervisor killed with -9
    leaves no orphan holding the session's login)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pipe watch below still ends it
        pass
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(EXIT_ENDED)  # it died before the signal was asked for


# Fencing and the exactly-once ledger in one round trip: nothing happens unless the lease
# still holds this process's value.
_LEDGER_BEGIN = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
if ARGV[2] == '' then return {1} end
local known = redis.call('GET', KEYS[2])
if known then return {2, known} end
redis.call('SET', KEYS[2], '', 'EX', ARGV[3])
return {1}
"""


class RedisLedger:
    """What this session sent, by our message id, in Redis: it outlives the process, so a
    resend after a crash of the child, its supervisor or its host is recognised. A marker is
    set before the send and replaced by the WhatsApp id after it; a marker found without an
    id means a process died mid-send, and the message is not sent again."""

    def __init__(self, client: redis.Redis, config: ChildConfig) -> None:
        self.client = client
        self.namespace = config.namespace
        self.lease_key = protocol.lease_key(config.namespace, config.session_id)
        self.lease_value = config.lease_value
        self.script = client.register_script(_LEDGER_BEGIN)

    def _key(self, message_id: str) -> str:
        return protocol.key(self.namespace, "engine", "sent", message_id)

    def _run(self, message_id: str) -> list:
        try:
            answer = self.script(keys=[self.lease_key, self._key(message_id or "-")],
                                 args=[self.lease_value, message_id, SENT_TTL_SECONDS])
        except redis.RedisError as error:
            raise base.EngineUnavailable(f"the engine cannot reach Redis: {error}") from error
        if answer[0] == 0:
            raise NotOwner("another engine process owns this session now")
        return answer

    def check_owner(self) -> None:
        self._run("")

    def begin(self, message_id: str) -> str | None:
        answer = self._run(message_id)
        if answer[0] == 2:
            known = answer[1].decode()
            if not known:
                raise SendRejected(IN_FLIGHT_UNKNOWN)
            return known
        return None

    def done(self, message_id: str, whatsapp_id: str) -> None:
        self.client.set(self._key(message_id), whatsapp_id, ex=SENT_TTL_SECONDS)

    def abort(self, message_id: str) -> None:
        self.client.delete(self._key(message_id))


class Pipe:
    """The pipe to the supervisor, shared by this process's threads (whatsmeow calls back on
    its own threads)."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, message: dict) -> None:
        with self.lock:
            try:
                self.conn.send(message)
            except (OSError, EOFError):  # the supervisor is gone: so are we
                os._exit(EXIT_ENDED)


def neonize_client(config: ChildConfig):
    """The session's neonize client, on its stored login when it has one."""
    from neonize.client import NewClient  # neonize is imported in this process only

    if config.store_path.startswith("postgres"):
        from neonize.proto.Neonize_pb2 import JID

        jid = None
        if config.device_jid:
            user, _, rest = config.device_jid.partition(":")
            device, _, server = rest.partition("@")
            jid = JID(User=user, Device=int(device or 0), Server=server or "s.whatsapp.net")
        # Several sessions share this store: a new session must not resume another's device.
        return NewClient(config.store_path, jid=jid, uuid=config.session_id,
                         new_device=jid is None)
    os.makedirs(os.path.dirname(config.store_path), exist_ok=True)
    return NewClient(config.store_path, uuid=config.session_id)


def child_main(config: ChildConfig, conn, client_factory=neonize_client,
               events_module=None) -> None:
    """The process's body. `client_factory` and `events_module` are neonize's own but for the
    chaos tests, which run this same process around a fake WhatsApp."""
    die_with_parent()
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s engine[{config.session_id}] %(message)s")
    pipe = Pipe(conn)
    events = redis.Redis.from_url(config.redis_url, socket_connect_timeout=5, socket_timeout=5)

    def publish(*published) -> None:
        stream_append(events, config.stream, published)
        pipe.send({"id": None, "wake": True})  # the supervisor wakes the consumer

    client = client_factory(config)

    def media_sink(event, data: bytes) -> None:
        # The supervisor stores the file (Django storage) and publishes the event.
        pipe.send({"id": None, "media": event.to_dict(), "data": data})

    def notify(state: str, device: str | None) -> None:
        pipe.send({"id": None, "state": state, "deviceJid": device})
        if state in FINAL_STATES:  # ended: leave once the command's answer is out
            threading.Timer(1.0, os._exit, args=(EXIT_ENDED,)).start()

    runner = SessionRunner(
        config.session_id, client, publish, phone_number=config.phone_number,
        media_sink=media_sink, ledger=RedisLedger(events, config), notify=notify,
        events_module=events_module)

    def connect() -> None:
        try:
            if config.proxy_url:
                from neonize.client import ProxySettings

                client.connect(ProxySettings(proxy_address=config.proxy_url))
            else:
                client.connect()
            detail = "the connection ended"
        except Exception as exc:  # dial errors offline, refused proxies, ...
            detail = f"could not connect: {exc}"
        logging.getLogger(__name__).info("connection over: %s (%s)", detail, runner.state)
        # The supervisor decides from the exit code: an ended session stays down, any other
        # ending is reconnected by a new process, with backoff.
        os._exit(EXIT_ENDED if runner.final else EXIT_RECONNECT)

    threading.Thread(target=connect, daemon=True, name="neonize-connect").start()
    serve_commands(runner, pipe, config)


def serve_commands(runner: SessionRunner, pipe: Pipe, config: ChildConfig) -> None:
    while True:
        try:
            command = pipe.conn.recv()
        except (EOFError, OSError):
            os._exit(EXIT_ENDED)  # the supervisor is gone
        op, args = command["op"], command.get("args") or {}
        try:
            result = getattr(runner, op)(**args)
            if hasattr(result, "whatsapp_id"):
                result = {"whatsappId": result.whatsapp_id}
            pipe.send({"id": command["id"], "ok": True, "result": result})
        except EngineError as error:
            kind = ("rejected" if isinstance(error, SendRejected)
                    else "not_found" if isinstance(error, NotFound) else "unavailable")
            pipe.send({"id": command["id"], "ok": False, "error": kind, "reason": str(error)})
            if isinstance(error, NotOwner):
                os._exit(EXIT_ENDED)  # the session is another process's now
        except Exception as error:
            pipe.send({"id": command["id"], "ok": False, "error": "unavailable",
                       "reason": f"{type(error).__name__}: {error}"})
        if op in ("logout", "stop"):
            if op == "logout" and os.path.exists(config.store_path):
                os.remove(config.store_path)
            os._exit(EXIT_ENDED)

