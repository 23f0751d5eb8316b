"""The real engine as the web and Celery processes see it: commands to the engine workers
over Redis, answers awaited with a timeout. Never imports neonize."""

from __future__ import annotations

import json
import uuid

from django.conf import settings

from infra.redis import redis_client
from sessions_app.engines import base
from sessions_app.engines.base import EngineUnavailable, SendRejected, SentMessage
from sessions_app.engines.whatsmeow import protocol

COMMAND_TIMEOUT_SECONDS = 30


class RemoteEngine(base.Engine):
    name = "whatsmeow"

    def _redis(self):
        if not settings.REDIS_URL:
            raise EngineUnavailable("the real engine needs REDIS_URL")
        return redis_client()

    def _ns(self) -> str:
        return settings.REDIS_NAMESPACE

    def _call(self, session_id: str, op: str, args: dict | None = None,
              timeout: float = COMMAND_TIMEOUT_SECONDS):
        client = self._redis()
        reply_to = protocol.key(self._ns(), "engine", "reply", uuid.uuid4().hex)
        client.rpush(protocol.session_queue(self._ns(), session_id),
                     protocol.command(op, session_id, args, ttl=timeout, reply_to=reply_to))
        answer = client.blpop([reply_to], timeout=max(1, int(timeout)))
        if answer is None:
            raise EngineUnavailable(f"no engine worker answered {op} within {timeout:.0f} s")
        message = json.loads(answer[1])
        if message.get("ok"):
            return message.get("result")
        if message.get("error") == "rejected":
            raise SendRejected(message.get("reason", "WhatsApp refused the message"))
        raise EngineUnavailable(message.get("reason", "the engine failed"))

    def start(self, session_id: str, *, phone_number: str | None = None) -> None:
        client = self._redis()
        client.rpush(protocol.key(self._ns(), protocol.START_QUEUE),
                     protocol.command("start", session_id, {"phoneNumber": phone_number},
                                      ttl=600))

    def stop(self, session_id: str) -> None:
        self._call(session_id, "stop", timeout=10)

    def logout(self, session_id: str) -> None:
        self._call(session_id, "logout", timeout=15)

    def state(self, session_id: str) -> str | None:
        try:
            return self._call(session_id, "state_name", timeout=5)
        except EngineUnavailable:
            return None

    def send_text(self, session_id: str, *, message_id: str, to: str, text: str) -> SentMessage:
        result = self._call(session_id, "send_text",
                            {"message_id": message_id, "to": to, "text": text})
        return SentMessage(whatsapp_id=result["whatsappId"])

    def send_media(self, session_id: str, *, message_id: str, to: str, kind: str, data: bytes,
                   mime_type: str, filename: str | None, caption: str | None) -> SentMessage:
        result = self._call(session_id, "send_media", {
            "message_id": message_id, "to": to, "kind": kind, "data": data.hex(),
            "mime_type": mime_type, "filename": filename, "caption": caption}, timeout=120)
        return SentMessage(whatsapp_id=result["whatsappId"])

    def check_numbers(self, session_id: str, numbers: list[str]) -> dict[str, bool]:
        return self._call(session_id, "check_numbers", {"numbers": numbers}, timeout=15)

    def mark_read(self, session_id: str, *, chat: str, whatsapp_ids: list[str]) -> None:
        self._call(session_id, "mark_read", {"chat": chat, "whatsapp_ids": whatsapp_ids},
                   timeout=15)
