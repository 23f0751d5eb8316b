"""The real engine as the web and Celery processes see it: commands to the engine supervisors
over Redis, answers awaited with a timeout. Never imports neonize.

Whatever goes wrong on the way (Redis away, no supervisor running the session, no answer in
time) is `EngineUnavailable`: the caller retries later, and a send stays queued.
"""

from __future__ import annotations

import json
import uuid
from functools import lru_cache

import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from sessions_app.engines import base
from sessions_app.engines.base import (
    EngineUnavailable,
    NotFound,
    Quote,
    SendRejected,
    SentMessage,
)
from sessions_app.engines.whatsmeow import protocol

COMMAND_TIMEOUT_SECONDS = 30
MEDIA_TIMEOUT_SECONDS = 120
# A command must be taken up within its timeout, and its answer is awaited this much longer:
# one taken up at the last moment can still answer, so a caller never gives up on a command
# that is about to run (and then retries it while it runs).
_ANSWER_GRACE_SECONDS = 10
# The socket waits longer than any answer may take.
_WAIT_MARGIN_SECONDS = 15


@lru_cache(maxsize=4)
def _waiting_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2,
                                socket_timeout=MEDIA_TIMEOUT_SECONDS + _ANSWER_GRACE_SECONDS
                                + _WAIT_MARGIN_SECONDS)


def outbound_media_name(session_id: str, message_id: str) -> str:
    return f"outbound/{session_id}/{message_id}"


class RemoteEngine(base.Engine):
    name = "whatsmeow"

    def _redis(self) -> redis.Redis:
        if not settings.REDIS_URL:
            raise EngineUnavailable("the real engine needs REDIS_URL")
        return _waiting_client(settings.REDIS_URL)

    def _ns(self) -> str:
        return settings.REDIS_NAMESPACE

    def _call(self, session_id: str, op: str, args: dict | None = None,
              timeout: float = COMMAND_TIMEOUT_SECONDS):
        try:
            return self._call_over_redis(session_id, op, args, timeout)
        except redis.RedisError as error:
            raise EngineUnavailable(f"the engine cannot be reached: {error}") from error

    def _call_over_redis(self, session_id: str, op: str, args: dict | None, timeout: float):
        client = self._redis()
        if client.get(protocol.lease_key(self._ns(), session_id)) is None:
            # Nobody runs the session now: say so at once rather than wait for no answer.
            raise EngineUnavailable("no engine process runs this session now")
        reply_to = protocol.key(self._ns(), "engine", "reply", uuid.uuid4().hex)
        queue = protocol.session_queue(self._ns(), session_id)
        pipe = client.pipeline(transaction=False)
        pipe.rpush(queue, protocol.command(op, session_id, args, ttl=timeout, reply_to=reply_to))
        pipe.expire(queue, int(timeout) + _WAIT_MARGIN_SECONDS)  # never left behind
        pipe.execute()
        answer = client.blpop([reply_to], timeout=max(1, int(timeout)) + _ANSWER_GRACE_SECONDS)
        if answer is None:
            raise EngineUnavailable(f"no engine process answered {op} within {timeout:.0f} s")
        message = json.loads(answer[1])
        if message.get("ok"):
            return message.get("result")
        if message.get("error") == "rejected":
            raise SendRejected(message.get("reason", "WhatsApp refused the message"))
        if message.get("error") == "not_found":
            raise NotFound(message.get("reason", "not found"))
        raise EngineUnavailable(message.get("reason", "the engine failed"))

    def start(self, session_id: str, *, phone_number: str | None = None,
              device: str | None = None) -> None:
        # A start nobody picked up before the QR code would have expired is dropped. One for
        # a session a host runs goes to that host (it replaces the session's process, even
        # when it has no room for another session); any other to whichever host takes it.
        command = protocol.command("start", session_id,
                                   {"phoneNumber": phone_number, "device": device},
                                   ttl=settings.QR_TTL_SECONDS)
        try:
            client = self._redis()
            if client.get(protocol.lease_key(self._ns(), session_id)) is not None:
                queue = protocol.session_queue(self._ns(), session_id)
                client.rpush(queue, command)
                client.expire(queue, settings.QR_TTL_SECONDS)
            else:
                client.rpush(protocol.key(self._ns(), protocol.START_QUEUE), command)
        except redis.RedisError as error:
            raise EngineUnavailable(f"the engine cannot be reached: {error}") from error

    def stop(self, session_id: str) -> None:
        self._call(session_id, "stop", timeout=10)

    def logout(self, session_id: str) -> None:
        self._call(session_id, "logout", timeout=15)

    def state(self, session_id: str) -> str | None:
        try:
            return self._call(session_id, "state_name", timeout=5)
        except EngineUnavailable:
            return None

    def send_text(self, session_id: str, *, message_id: str, to: str, text: str,
                  reply_to: Quote | None = None) -> SentMessage:
        result = self._call(session_id, "send_text",
                            {"message_id": message_id, "to": to, "text": text,
                             "reply_to": reply_to and reply_to.to_dict()})
        return SentMessage(whatsapp_id=result["whatsappId"])

    def send_media(self, session_id: str, *, message_id: str, to: str, kind: str, data: bytes,
                   mime_type: str, filename: str | None, caption: str | None,
                   reply_to: Quote | None = None) -> SentMessage:
        # The bytes travel by a file in the storage the engine hosts share, not through Redis.
        name = default_storage.save(outbound_media_name(session_id, message_id),
                                    ContentFile(data))
        try:
            result = self._call(session_id, "send_media", {
                "message_id": message_id, "to": to, "kind": kind, "file": name,
                "mime_type": mime_type, "filename": filename, "caption": caption,
                "reply_to": reply_to and reply_to.to_dict()},
                timeout=MEDIA_TIMEOUT_SECONDS)
        finally:
            default_storage.delete(name)
        return SentMessage(whatsapp_id=result["whatsappId"])

    def send_location(self, session_id: str, *, message_id: str, to: str, latitude: float,
                      longitude: float, name: str | None, address: str | None,
                      reply_to: Quote | None = None) -> SentMessage:
        result = self._call(session_id, "send_location", {
            "message_id": message_id, "to": to, "latitude": latitude, "longitude": longitude,
            "name": name, "address": address, "reply_to": reply_to and reply_to.to_dict()})
        return SentMessage(whatsapp_id=result["whatsappId"])

    def send_contacts(self, session_id: str, *, message_id: str, to: str,
                      contacts: list[dict], reply_to: Quote | None = None) -> SentMessage:
        result = self._call(session_id, "send_contacts",
                            {"message_id": message_id, "to": to, "contacts": contacts,
                             "reply_to": reply_to and reply_to.to_dict()})
        return SentMessage(whatsapp_id=result["whatsappId"])

    def send_reaction(self, session_id: str, *, message_id: str, to: str, target: Quote,
                      emoji: str) -> SentMessage:
        result = self._call(session_id, "send_reaction", {
            "message_id": message_id, "to": to, "target": target.to_dict(), "emoji": emoji})
        return SentMessage(whatsapp_id=result["whatsappId"])

    def send_edit(self, session_id: str, *, message_id: str, to: str, target_whatsapp_id: str,
                  text: str) -> SentMessage:
        result = self._call(session_id, "send_edit", {
            "message_id": message_id, "to": to, "target_whatsapp_id": target_whatsapp_id,
            "text": text})
        return SentMessage(whatsapp_id=result["whatsappId"])

    def send_revoke(self, session_id: str, *, message_id: str, to: str,
                    target_whatsapp_id: str) -> SentMessage:
        result = self._call(session_id, "send_revoke", {
            "message_id": message_id, "to": to, "target_whatsapp_id": target_whatsapp_id})
        return SentMessage(whatsapp_id=result["whatsappId"])

    def check_numbers(self, session_id: str, numbers: list[str]) -> dict[str, bool]:
        return self._call(session_id, "check_numbers", {"numbers": numbers}, timeout=15)

    def list_groups(self, session_id: str) -> list[dict]:
        return self._call(session_id, "list_groups", timeout=15)

    def group_info(self, session_id: str, group_id: str) -> dict:
        return self._call(session_id, "group_info", {"group_id": group_id}, timeout=15)

    def create_group(self, session_id: str, *, subject: str, participants: list[str]) -> dict:
        return self._call(session_id, "create_group",
                          {"subject": subject, "participants": participants})

    def update_group_participants(self, session_id: str, group_id: str, *, add: list[str],
                                  remove: list[str]) -> dict:
        return self._call(session_id, "update_group_participants",
                          {"group_id": group_id, "add": add, "remove": remove})

    def leave_group(self, session_id: str, group_id: str) -> None:
        self._call(session_id, "leave_group", {"group_id": group_id}, timeout=15)

    def resolve_identity(self, session_id: str, *, lid: str | None = None,
                         phone_number: str | None = None) -> dict:
        return self._call(session_id, "resolve_identity",
                          {"lid": lid, "phone_number": phone_number}, timeout=15)

    def hosts(self) -> list[dict]:
        try:
            return protocol.engine_hosts(self._redis(), self._ns())
        except redis.RedisError as error:
            raise EngineUnavailable(f"the engine cannot be reached: {error}") from error

    def send_chat_state(self, session_id: str, *, to: str, state: str) -> None:
        self._call(session_id, "send_chat_state", {"to": to, "state": state}, timeout=10)

    def mark_read(self, session_id: str, *, chat: str, whatsapp_ids: list[str],
                  sender: str | None = None) -> None:
        self._call(session_id, "mark_read",
                   {"chat": chat, "whatsapp_ids": whatsapp_ids, "sender": sender}, timeout=15)
