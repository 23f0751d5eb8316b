"""The sandbox engine: a simulated WhatsApp, documented for users like a payment API's test mode.

- A started session gets a QR code (and a pairing code when a phone number was given).
- `scan` pairs it (it becomes connected), `inbound` delivers a message, `disconnect` drops it:
  a network drop reconnects by itself after SANDBOX_RECONNECT_SECONDS, as a real engine does;
  a logout from the phone, a stream replaced or a ban end the session.
- `start` with the device a scan paired resumes that login (connected again, no QR code).
- Numbers ending in 0000 are not on WhatsApp; sends to numbers ending in 0001 are rejected;
  every other send goes sent, delivered, read, SANDBOX_STATUS_DELAY_SECONDS apart.
- Groups are created, listed, joined and left like real ones; a number not on WhatsApp is
  never added to one.
- A contact may write under a hidden id (`...@lid`): its number is withheld until it writes
  again without it, when the sandbox discloses it (an `identity` event), as WhatsApp does once
  the number is shared.

It keeps its simulated phone state in the cache (shared by every process) and reports only
through events on the bus, exactly like the real engine.
"""

import hashlib
import secrets
from base64 import b64encode
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache

from infra.wakeups import enqueue
from sessions_app.engines import base
from sessions_app.engines.base import (
    EngineEvent,
    EngineUnavailable,
    NotFound,
    SendRejected,
    SentMessage,
    Simulator,
)

_STATE_TTL_SECONDS = 60 * 60 * 24 * 30
# What the sandbox remembers per message (attempts, delivered): a resend comes within minutes
# (a sender that died between the send and recording it), and a busy sandbox makes two keys
# per message, which a month of keeping grew without bound under load.
_MESSAGE_TTL_SECONDS = 60 * 60 * 24
NOT_ON_WHATSAPP_SUFFIX = "0000"
REJECTED_SUFFIX = "0001"
# The tasks that publish a receipt when it is due, and reconnect after a network drop
# (sandbox/tasks.py).
PUBLISH_TASK = "sandbox.publish_event"
RECONNECT_TASK = "sandbox.reconnect"
# The simulated phone's linked device, as a `paired` event names it (the stored login).
_DEVICE_SUFFIX = ":1@s.whatsapp.net"
GROUP_SUFFIX = "@g.us"
LID_SUFFIX = "@lid"
_UNCONNECTED = ("qr_pending", "disconnected", "logged_out", "failed", "stopped")


def _fake_key() -> str:
    return b64encode(secrets.token_bytes(32)).decode()


class SandboxEngine(base.Engine, Simulator):
    name = "sandbox"
    reports_synchronously = True

    # --- simulated phone state ---
    @staticmethod
    def _key(session_id: str) -> str:
        return f"sandbox:{session_id}"

    def _get(self, session_id: str) -> dict:
        return cache.get(self._key(session_id)) or {}

    def _set(self, session_id: str, **state) -> None:
        cache.set(self._key(session_id), {**self._get(session_id), **state}, _STATE_TTL_SECONDS)

    # --- the interface ---
    def start(self, session_id: str, *, phone_number: str | None = None,
              device: str | None = None) -> None:
        if device and device.endswith(_DEVICE_SUFFIX):
            phone = device.removesuffix(_DEVICE_SUFFIX)
            self._set(session_id, state="connected", phone=phone)
            self.publish(EngineEvent(base.CONNECTED, session_id, {"phoneNumber": phone}))
            return
        # The shape of a WhatsApp Web QR payload: ref, noise key, identity key, adv secret.
        code = f"2@{secrets.token_urlsafe(48)},{_fake_key()},{_fake_key()},{_fake_key()}"
        self._set(session_id, state="qr_pending", phone=None)
        self.publish(EngineEvent(base.QR, session_id, {"code": code}))
        if phone_number:
            pairing = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTVWXYZ23456789") for _ in range(8))
            self.publish(EngineEvent(base.PAIRING_CODE, session_id, {"code": pairing}))

    def stop(self, session_id: str) -> None:
        if self._get(session_id).get("state") == "connected":
            self._set(session_id, state="disconnected")
            self.publish(EngineEvent(base.DISCONNECTED, session_id, {"reason": "stopped"}))
        else:
            self._set(session_id, state="stopped")

    def logout(self, session_id: str) -> None:
        self._set(session_id, state="logged_out")
        self.publish(EngineEvent(base.LOGGED_OUT, session_id, {"reason": "logged out"}))

    def state(self, session_id: str) -> str | None:
        return self._get(session_id).get("state")

    def _send(self, session_id: str, message_id: str, to: str) -> SentMessage:
        # Only a state the sandbox knows refuses: its memory (the cache) may have been lost
        # with a Redis restart, which real WhatsApp would not forget; the sender has already
        # checked in the database that the session is connected.
        state_key, delivered_key = self._key(session_id), f"sandbox:delivered:{message_id}"
        known = self._count_attempt_and_read(message_id, [state_key, delivered_key])
        state = known.get(state_key, {}).get("state")
        if state in _UNCONNECTED:
            raise EngineUnavailable("the sandbox phone is not connected")
        if to.endswith(NOT_ON_WHATSAPP_SUFFIX) or to.endswith(REJECTED_SUFFIX):
            raise SendRejected(f"WhatsApp rejected the message to {to} (sandbox)")
        if to.endswith(GROUP_SUFFIX) and state_key in known and (
                to not in known[state_key].get("groups", {})):
            raise SendRejected(f"The session is not a member of the group {to} (sandbox)")
        # Derived from our id: a resend of the same message is the same WhatsApp message, and
        # like WhatsApp the sandbox delivers it only once. "Delivered" is marked only after
        # its receipts are on the bus: a crash in between makes the resend publish them again
        # (the consumer ignores receipts that do not move a message forward).
        whatsapp_id = "SBX" + hashlib.sha256(message_id.encode()).hexdigest()[:20].upper()
        if known.get(delivered_key):
            return SentMessage(whatsapp_id=whatsapp_id)
        receipts = [
            EngineEvent(base.RECEIPT, session_id,
                        {"messageId": message_id, "whatsappId": whatsapp_id, "status": status})
            for status in ("sent", "delivered", "read")
        ]
        delay = settings.SANDBOX_STATUS_DELAY_SECONDS
        if delay <= 0:
            self.publish(*receipts)
        else:
            # The recipient's phone answers whatever happens to us: its receipts are scheduled
            # before `sent` is announced, so a crash right after cannot lose them.
            for step, receipt in enumerate(receipts[1:], start=1):
                # Stamped with when the phone answers, not with when it was scheduled.
                due = replace(receipt, occurred_at=receipt.occurred_at
                              + timedelta(seconds=delay * step))
                enqueue(PUBLISH_TASK, (due.to_dict(),), countdown=delay * step)
            self.publish(receipts[0])
        cache.set(delivered_key, 1, _MESSAGE_TTL_SECONDS)
        return SentMessage(whatsapp_id=whatsapp_id)

    @staticmethod
    def _count_attempt_and_read(message_id: str, keys: list[str]) -> dict:
        """Count a send attempt of the message and read `keys` (the phone's state, whether
        the message was delivered)."""
        attempts_key = f"sandbox:send-attempts:{message_id}"
        if not cache.add(attempts_key, 1, _MESSAGE_TTL_SECONDS):
            cache.incr(attempts_key)
        return cache.get_many(keys)

    # The simulated phone shows nothing: what a send holds (a quote included) changes nothing
    # of how it is delivered.
    def send_text(self, session_id: str, *, message_id: str, to: str, text: str,
                  reply_to: base.Quote | None = None) -> SentMessage:
        return self._send(session_id, message_id, to)

    def send_media(self, session_id: str, *, message_id: str, to: str, kind: str, data: bytes,
                   mime_type: str, filename: str | None, caption: str | None,
                   reply_to: base.Quote | None = None) -> SentMessage:
        return self._send(session_id, message_id, to)

    def send_location(self, session_id: str, *, message_id: str, to: str, latitude: float,
                      longitude: float, name: str | None, address: str | None,
                      reply_to: base.Quote | None = None) -> SentMessage:
        return self._send(session_id, message_id, to)

    def send_contacts(self, session_id: str, *, message_id: str, to: str,
                      contacts: list[dict], reply_to: base.Quote | None = None) -> SentMessage:
        return self._send(session_id, message_id, to)

    def send_reaction(self, session_id: str, *, message_id: str, to: str, target: base.Quote,
                      emoji: str) -> SentMessage:
        return self._send(session_id, message_id, to)

    def send_edit(self, session_id: str, *, message_id: str, to: str, target_whatsapp_id: str,
                  text: str) -> SentMessage:
        return self._send(session_id, message_id, to)

    def send_revoke(self, session_id: str, *, message_id: str, to: str,
                    target_whatsapp_id: str) -> SentMessage:
        return self._send(session_id, message_id, to)

    @staticmethod
    def send_attempts(message_id: str) -> int:
        """How often the sandbox was asked to send this message, refused asks included (tests
        prove no double sends with it; only the first accepted ask is delivered)."""
        return cache.get(f"sandbox:send-attempts:{message_id}", 0)

    def check_numbers(self, session_id: str, numbers: list[str]) -> dict[str, bool]:
        return {number: not number.endswith(NOT_ON_WHATSAPP_SUFFIX) for number in numbers}

    def send_chat_state(self, session_id: str, *, to: str, state: str) -> None:
        if self._get(session_id).get("state") not in (None, "connected"):
            raise EngineUnavailable("the sandbox phone is not connected")

    def mark_read(self, session_id: str, *, chat: str, whatsapp_ids: list[str],
                  sender: str | None = None) -> None:
        return None

    # --- groups: {group id: {subject, description, participants: {number: is admin}}} ---
    def _connected_state(self, session_id: str) -> dict:
        state = self._get(session_id)
        if state.get("state") in _UNCONNECTED:
            raise EngineUnavailable("the sandbox phone is not connected")
        return state

    def _group(self, session_id: str, group_id: str) -> dict:
        group = self._connected_state(session_id).get("groups", {}).get(group_id)
        if group is None:
            raise NotFound(f"the session is not in the group {group_id}")
        return group

    @staticmethod
    def _group_data(group_id: str, group: dict) -> dict:
        return {"id": group_id, "subject": group["subject"],
                "description": group["description"],
                "participants": [{"id": f"{number}@s.whatsapp.net", "phoneNumber": number,
                                  "isAdmin": admin}
                                 for number, admin in group["participants"].items()]}

    def _save_group(self, session_id: str, group_id: str, group: dict | None) -> None:
        groups = dict(self._get(session_id).get("groups", {}))
        if group is None:
            groups.pop(group_id, None)
        else:
            groups[group_id] = group
        self._set(session_id, groups=groups)

    def list_groups(self, session_id: str) -> list[dict]:
        groups = self._connected_state(session_id).get("groups", {})
        return [self._group_data(group_id, group) for group_id, group in groups.items()]

    def group_info(self, session_id: str, group_id: str) -> dict:
        return self._group_data(group_id, self._group(session_id, group_id))

    def create_group(self, session_id: str, *, subject: str, participants: list[str]) -> dict:
        own = self._connected_state(session_id).get("phone") or ""
        group_id = f"120363{secrets.randbelow(10**12):012d}{GROUP_SUFFIX}"
        members = {own: True}
        members.update({number: False for number in participants
                        if not number.endswith(NOT_ON_WHATSAPP_SUFFIX) and number != own})
        group = {"subject": subject, "description": None, "participants": members}
        self._save_group(session_id, group_id, group)
        return self._group_data(group_id, group)

    def update_group_participants(self, session_id: str, group_id: str, *, add: list[str],
                                  remove: list[str]) -> dict:
        group = self._group(session_id, group_id)
        members = dict(group["participants"])
        added = [number for number in add
                 if number not in members and not number.endswith(NOT_ON_WHATSAPP_SUFFIX)]
        removed = [number for number in remove if number in members]
        members.update({number: False for number in added})
        for number in removed:
            del members[number]
        group = {**group, "participants": members}
        self._save_group(session_id, group_id, group)
        self.publish(*[
            EngineEvent(base.GROUP_PARTICIPANTS, session_id, {
                "groupId": group_id, "action": action,
                "participants": [{"id": f"{number}@s.whatsapp.net", "phoneNumber": number}
                                 for number in numbers]})
            for action, numbers in (("add", added), ("remove", removed)) if numbers])
        return self._group_data(group_id, group)

    def leave_group(self, session_id: str, group_id: str) -> None:
        self._group(session_id, group_id)
        self._save_group(session_id, group_id, None)

    # --- hidden ids: {number: its @lid}, and the ones whose number was disclosed ---
    def resolve_identity(self, session_id: str, *, lid: str | None = None,
                         phone_number: str | None = None) -> dict:
        disclosed = self._get(session_id).get("disclosed", {})
        if lid is not None:
            phone_number = next((number for number, known in disclosed.items()
                                 if known == lid), None)
        else:
            lid = disclosed.get(phone_number)
        return {"lid": lid, "phoneNumber": phone_number}

    # --- sandbox controls (the /v1/sandbox routes) ---
    def scan(self, session_id: str, *, phone_number: str) -> None:
        self._set(session_id, state="connected", phone=phone_number)
        device = f"{phone_number}{_DEVICE_SUFFIX}"
        self.publish(
            EngineEvent(base.PAIRED, session_id,
                        {"phoneNumber": phone_number, "deviceJid": device}),
            EngineEvent(base.CONNECTED, session_id, {"phoneNumber": phone_number}))

    def disconnect(self, session_id: str, *, reason: str = "network") -> None:
        code = base.DISCONNECT_REASONS[reason]
        if reason == "logged_out":
            self._set(session_id, state="logged_out")
            self.publish(EngineEvent(base.LOGGED_OUT, session_id, {
                "reason": "The phone unlinked this device (sandbox).", "code": code}))
            return
        if reason != "network":
            self._set(session_id, state="failed")
            error = {
                "stream_replaced": "The number was opened in another WhatsApp Web client "
                                   "(sandbox).",
                "banned": "WhatsApp banned the number for a while (sandbox).",
            }[reason]
            self.publish(EngineEvent(base.FAILED, session_id, {"error": error, "code": code}))
            return
        self._set(session_id, state="disconnected")
        delay = settings.SANDBOX_RECONNECT_SECONDS
        reconnect_at = base.utcnow() + timedelta(seconds=delay)
        self.publish(EngineEvent(base.DISCONNECTED, session_id, {
            "reason": "The connection to WhatsApp dropped (sandbox).", "code": code,
            "reconnectAt": reconnect_at.isoformat()}))
        if delay <= 0:
            self.reconnect(session_id)
        else:
            enqueue(RECONNECT_TASK, (session_id,), countdown=delay)

    def reconnect(self, session_id: str) -> None:
        """The network is back: a session still disconnected by it connects again."""
        state = self._get(session_id)
        if state.get("state") == "disconnected":
            self._set(session_id, state="connected")
            self.publish(EngineEvent(base.CONNECTED, session_id,
                                     {"phoneNumber": state.get("phone")}))

    def inbound(self, session_id: str, *, from_number: str, text: str = "", type: str = "text",
                content: dict | list | None = None, reply_to_whatsapp_id: str = "",
                whatsapp_id: str = "", chat_id: str = "", sender_lid: str = "") -> str:
        state = self._get(session_id)
        if chat_id and from_number not in self._group(session_id, chat_id)["participants"]:
            raise NotFound(f"{from_number} is not a member of the group {chat_id}")
        whatsapp_id = whatsapp_id or "SBXIN" + secrets.token_hex(10).upper()
        events = []
        hidden, disclosed = dict(state.get("hidden", {})), dict(state.get("disclosed", {}))
        if sender_lid:
            hidden[from_number] = sender_lid
        elif from_number in hidden and from_number not in disclosed:
            # The contact writes under its number now: WhatsApp discloses whose id it was.
            disclosed[from_number] = hidden[from_number]
            events.append(EngineEvent(base.IDENTITY, session_id, {
                "lid": hidden[from_number], "phoneNumber": from_number}))
        if hidden != state.get("hidden", {}) or disclosed != state.get("disclosed", {}):
            self._set(session_id, hidden=hidden, disclosed=disclosed)
        sender = sender_lid or from_number
        data = {"whatsappId": whatsapp_id, "from": sender, "type": type, "text": text,
                "to": state.get("phone"),
                "senderId": sender_lid or f"{from_number}@s.whatsapp.net",
                "pushName": "Sandbox contact"}
        if chat_id:
            data["chatId"] = chat_id
        if type == "location":
            data["location"] = content
        elif type == "contact":
            data["contacts"] = content
        if reply_to_whatsapp_id:
            data["replyToWhatsappId"] = reply_to_whatsapp_id
        self.publish(*events, EngineEvent(base.MESSAGE_RECEIVED, session_id, data))
        return whatsapp_id

    def inbound_action(self, session_id: str, *, from_number: str, kind: str,
                       whatsapp_id: str, emoji: str = "", text: str = "") -> None:
        data = {"whatsappId": whatsapp_id, "from": from_number}
        if kind == "reaction":
            data["emoji"] = emoji
        elif kind == "edit":
            data["text"] = text
        event_type = {"reaction": base.REACTION, "edit": base.EDITED, "revoke": base.REVOKED}
        self.publish(EngineEvent(event_type[kind], session_id, data))
