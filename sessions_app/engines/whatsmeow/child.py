"""The process of one session: the only place neonize is imported. Started with `spawn` (a
forked Go runtime hangs), it connects, publishes events straight to the Redis stream, and
serves the supervisor's commands over a pipe. A Go panic here kills this process only."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass

import redis

from sessions_app.engines import base
from sessions_app.engines.base import EngineError, EngineEvent
from sessions_app.engines.whatsmeow.runner import SessionRunner


@dataclass(frozen=True)
class ChildConfig:
    session_id: str
    store_path: str  # a SQLite file of this session, or a postgres:// URL shared by all
    redis_url: str
    stream: str
    device_jid: str | None = None  # to resume this session's device from a shared store
    phone_number: str | None = None
    proxy_url: str | None = None  # http:// or socks5:// (WHATSAPP_PROXY_URL)


def redis_publisher(redis_url: str, stream: str):
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)

    def publish(*events) -> None:
        pipe = client.pipeline(transaction=True)
        for event in events:
            pipe.xadd(stream, {"event": json.dumps(event.to_dict())})
        pipe.execute()

    return publish


def child_main(config: ChildConfig, conn) -> None:
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s engine[{config.session_id}] %(message)s")
    from neonize.client import NewClient  # neonize is imported in this process only

    publish = redis_publisher(config.redis_url, config.stream)
    if config.store_path.startswith("postgres"):
        from neonize.proto.Neonize_pb2 import JID

        jid = None
        if config.device_jid:
            user, _, rest = config.device_jid.partition(":")
            device, _, server = rest.partition("@")
            jid = JID(User=user, Device=int(device or 0), Server=server or "s.whatsapp.net")
        # Several sessions share this store: a new session must not resume another's device.
        client = NewClient(config.store_path, jid=jid, uuid=config.session_id,
                           new_device=jid is None)
    else:
        os.makedirs(os.path.dirname(config.store_path), exist_ok=True)
        client = NewClient(config.store_path, uuid=config.session_id)

    def media_sink(event, data: bytes) -> None:
        # The supervisor stores the file (Django storage) and publishes the event.
        conn.send({"id": None, "media": event.to_dict(), "data": data})

    runner = SessionRunner(config.session_id, client, publish,
                           phone_number=config.phone_number, media_sink=media_sink)

    def connect() -> None:
        try:
            if config.proxy_url:
                from neonize.client import ProxySettings

                client.connect(ProxySettings(proxy_address=config.proxy_url))
            else:
                client.connect()
            error = "the connection ended"
        except Exception as exc:  # dial errors offline, refused proxies, ...
            error = f"could not connect to WhatsApp: {exc}"
        if runner.state not in ("logged_out", "stopped"):
            publish(EngineEvent(base.FAILED, config.session_id, {"error": error}))
        conn.send({"id": None, "exit": error})

    threading.Thread(target=connect, daemon=True, name="neonize-connect").start()

    while True:
        try:
            command = conn.recv()
        except EOFError:
            return  # the supervisor is gone
        op, args = command["op"], command.get("args") or {}
        try:
            if op == "send_media":
                args = {**args, "data": bytes.fromhex(args["data"])}
            result = getattr(runner, op)(**args)
            if hasattr(result, "whatsapp_id"):
                result = {"whatsappId": result.whatsapp_id}
            conn.send({"id": command["id"], "ok": True, "result": result})
        except EngineError as error:
            kind = "rejected" if error.__class__.__name__ == "SendRejected" else "unavailable"
            conn.send({"id": command["id"], "ok": False, "error": kind, "reason": str(error)})
        except Exception as error:
            conn.send({"id": command["id"], "ok": False, "error": "unavailable",
                       "reason": f"{type(error).__name__}: {error}"})
        if op in ("logout", "stop"):
            if op == "logout" and os.path.exists(config.store_path):
                os.remove(config.store_path)
            return
