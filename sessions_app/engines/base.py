"""The engine interface: what the service asks of a WhatsApp connection, and the events an
engine reports back.

Commands go in through an `Engine`; everything an engine observes comes out as `EngineEvent`s
published on the event bus (`engines.bus`), which one consumer (`sessions_app.event_consumer`)
turns into database changes and webhook events. An engine never writes to our database: the
real engine runs in a separate worker process, and the sandbox takes the same path.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

# Event types an engine may publish.
QR = "qr"  # data: {code}
PAIRING_CODE = "pairing_code"  # data: {code}
PAIRED = "paired"  # data: {phoneNumber}
CONNECTED = "connected"  # data: {phoneNumber}
# data: {reason, code, reconnectAt?}: the engine reconnects by itself (at reconnectAt if known).
DISCONNECTED = "disconnected"
LOGGED_OUT = "logged_out"  # data: {reason, code?}
FAILED = "failed"  # data: {error, code}: nothing will be retried
# data: {whatsappId, from, chatId?, senderId, pushName, type, text, ...}: `from` is the sender's
# number, or their hidden id (`...@lid`) while WhatsApp withholds it; `chatId` a group's id
# (`...@g.us`) for a message in a group, absent for a direct chat.
MESSAGE_RECEIVED = "message_received"
RECEIPT = "receipt"  # data: {messageId, whatsappId, status (sent|delivered|read|failed), error?}
# A contact acts on an earlier message, named by its WhatsApp id (`whatsappId`):
REACTION = "reaction"  # data: {whatsappId, from, emoji ("" takes it back)}
EDITED = "edited"  # data: {whatsappId, from, text}
REVOKED = "revoked"  # data: {whatsappId, from}
# WhatsApp disclosed whose number a hidden id (`...@lid`) is: data {lid, phoneNumber}.
IDENTITY = "identity"
# Members of a group changed: data {groupId, action (add|remove|promote|demote), participants:
# [{id, phoneNumber}]}.
GROUP_PARTICIPANTS = "group_participants"

# Why a session is not connected (the session's `lastErrorCode`). The first two are transient:
# the engine reconnects by itself. The others end the session (`expired`, `failed` or
# `logged_out`) until someone restarts it.
ENGINE_UNREACHABLE = "engine_unreachable"
CONNECTION_LOST = "connection_lost"
LOGIN_TIMEOUT = "login_timeout"
ENGINE_ERROR = "engine_error"
LOGGED_OUT_BY_PHONE = "logged_out_by_phone"
STREAM_REPLACED = "stream_replaced"
TEMPORARILY_BANNED = "temporarily_banned"
CLIENT_OUTDATED = "client_outdated"
SESSION_ERROR_CODES = (ENGINE_UNREACHABLE, CONNECTION_LOST, LOGGED_OUT_BY_PHONE, STREAM_REPLACED,
                       TEMPORARILY_BANNED, CLIENT_OUTDATED, LOGIN_TIMEOUT, ENGINE_ERROR)

EVENT_TYPES = frozenset(
    {QR, PAIRING_CODE, PAIRED, CONNECTED, DISCONNECTED, LOGGED_OUT, FAILED, MESSAGE_RECEIVED,
     RECEIPT, REACTION, EDITED, REVOKED, IDENTITY, GROUP_PARTICIPANTS}
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EngineEvent:
    type: str
    session_id: str
    data: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown engine event type {self.type!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "sessionId": self.session_id,
            "data": self.data,
            "occurredAt": self.occurred_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EngineEvent:
        return cls(
            type=raw["type"],
            session_id=raw["sessionId"],
            data=raw.get("data") or {},
            occurred_at=datetime.fromisoformat(raw["occurredAt"]),
        )


def stream_append(client, stream: str, events) -> None:
    """Put events on the bus's Redis stream, all or none: the one way they are written there
    (by the bus itself, the real engine's hosts and their session processes). `client` is a
    redis-py client; the entry's one field, `event`, holds `to_dict()` as JSON."""
    pipe = client.pipeline(transaction=True)
    for event in events:
        pipe.xadd(stream, {"event": json.dumps(event.to_dict())})
    pipe.execute()


class EngineError(Exception):
    """A command the engine could not carry out."""


class EngineUnavailable(EngineError):
    """The engine (or the way to it) is down: transient, worth retrying."""


class NotFound(EngineError):
    """What the command names (a group) is not one the session knows."""


class SendRejected(EngineError):
    """WhatsApp refused this message: permanent for this message, do not retry."""

    def __init__(self, reason: str, code: str = "message_sending_failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class SentMessage:
    whatsapp_id: str


@dataclass(frozen=True)
class Quote:
    """The message a send replies to, as WhatsApp knows it: its id, who wrote it (the
    session's own number when `from_me`) and the words shown in the quote."""

    whatsapp_id: str
    sender: str
    from_me: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"whatsappId": self.whatsapp_id, "sender": self.sender, "fromMe": self.from_me,
                "text": self.text}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Quote | None:
        if not raw:
            return None
        return cls(raw["whatsappId"], raw["sender"], raw["fromMe"], raw["text"])


class Engine(abc.ABC):
    """One implementation per way of reaching WhatsApp. Methods are keyed by our session id;
    `message_id` is our id, given so an engine can recognise a resend of the same message."""

    name: ClassVar[str]
    # True when a command's events are on the bus by the time the command returns (a
    # simulator); a real engine reports later, from its own process.
    reports_synchronously: ClassVar[bool] = False

    def __init__(self, publish) -> None:
        # publish(*events) puts events on the bus, all or none; engines report through it only.
        self.publish = publish

    @abc.abstractmethod
    def start(self, session_id: str, *, phone_number: str | None = None,
              device: str | None = None) -> None:
        """Connect the session, replacing any connection it has. With `device` (the linked
        device a `paired` event named) resume that login: `connected` follows, no QR code.
        Without, log in afresh: QR codes (or a pairing code for `phone_number`) follow."""

    @abc.abstractmethod
    def stop(self, session_id: str) -> None:
        """Drop the connection but keep the credentials."""

    @abc.abstractmethod
    def logout(self, session_id: str) -> None:
        """Unlink the device and forget its credentials; a `logged_out` event follows."""

    @abc.abstractmethod
    def state(self, session_id: str) -> str | None:
        """The engine's own view: `qr_pending`, `connected`, `disconnected`, `logged_out`, or
        None when it knows nothing of the session."""

    @abc.abstractmethod
    def send_text(self, session_id: str, *, message_id: str, to: str, text: str,
                  reply_to: Quote | None = None) -> SentMessage:
        """Send, or raise SendRejected / EngineUnavailable. Receipts follow as events. Every
        send may quote the message it replies to (`reply_to`)."""

    @abc.abstractmethod
    def send_media(
        self,
        session_id: str,
        *,
        message_id: str,
        to: str,
        kind: str,
        data: bytes,
        mime_type: str,
        filename: str | None,
        caption: str | None,
        reply_to: Quote | None = None,
    ) -> SentMessage:
        """Send bytes as image, video, document or audio (`kind`)."""

    @abc.abstractmethod
    def send_location(self, session_id: str, *, message_id: str, to: str, latitude: float,
                      longitude: float, name: str | None, address: str | None,
                      reply_to: Quote | None = None) -> SentMessage:
        """Send a pinned location."""

    @abc.abstractmethod
    def send_contacts(self, session_id: str, *, message_id: str, to: str,
                      contacts: list[dict], reply_to: Quote | None = None) -> SentMessage:
        """Send contact cards: each `{name, vcard}` (one card, or several in one message)."""

    @abc.abstractmethod
    def send_reaction(self, session_id: str, *, message_id: str, to: str, target: Quote,
                      emoji: str) -> SentMessage:
        """React to the message `target` with `emoji` (`""` takes the reaction back)."""

    @abc.abstractmethod
    def send_edit(self, session_id: str, *, message_id: str, to: str, target_whatsapp_id: str,
                  text: str) -> SentMessage:
        """Replace the text of one of the session's own text messages."""

    @abc.abstractmethod
    def send_revoke(self, session_id: str, *, message_id: str, to: str,
                    target_whatsapp_id: str) -> SentMessage:
        """Delete one of the session's own messages for everyone."""

    @abc.abstractmethod
    def check_numbers(self, session_id: str, numbers: list[str]) -> dict[str, bool]:
        """Which of these numbers (digits, international) are on WhatsApp."""

    @abc.abstractmethod
    def send_chat_state(self, session_id: str, *, to: str, state: str) -> None:
        """Show the chat that the session is `typing`, `recording` (a voice note) or neither
        (`paused`)."""

    @abc.abstractmethod
    def mark_read(self, session_id: str, *, chat: str, whatsapp_ids: list[str],
                  sender: str | None = None) -> None:
        """Send read receipts for received messages of a chat; in a group, the messages of
        one `sender` (a member's number or id)."""

    # Groups. A group is `{id, subject, description, participants: [{id, phoneNumber,
    # isAdmin}]}`: `id` ends in `@g.us`; a participant's `id` is WhatsApp's id of them (it may
    # be a hidden `...@lid`), `phoneNumber` their digits or None when WhatsApp hides them.
    @abc.abstractmethod
    def list_groups(self, session_id: str) -> list[dict]:
        """The groups the session is a member of."""

    @abc.abstractmethod
    def group_info(self, session_id: str, group_id: str) -> dict:
        """One group, or NotFound when the session is not in it."""

    @abc.abstractmethod
    def create_group(self, session_id: str, *, subject: str, participants: list[str]) -> dict:
        """A new group of the session's number and these numbers (those not on WhatsApp are
        left out)."""

    @abc.abstractmethod
    def update_group_participants(self, session_id: str, group_id: str, *, add: list[str],
                                  remove: list[str]) -> dict:
        """Add and remove members (numbers); the group as it is after. A
        `group_participants` event follows for each change made."""

    @abc.abstractmethod
    def leave_group(self, session_id: str, group_id: str) -> None:
        """The session's number leaves the group (NotFound when it is not in it)."""

    @abc.abstractmethod
    def resolve_identity(self, session_id: str, *, lid: str | None = None,
                         phone_number: str | None = None) -> dict:
        """What WhatsApp has disclosed to the session of a person named by their hidden id
        (`...@lid`) or their number: `{lid, phoneNumber}`, either None when unknown."""

    def hosts(self) -> list[dict] | None:
        """The processes that run sessions, `{worker, sessions, capacity}` each (capacity None
        when unlimited); None for an engine that runs inside the service's own processes."""
        return None


# What a simulated disconnect may be, and the `lastErrorCode` each leaves.
CHAT_STATES = ("typing", "recording", "paused")

DISCONNECT_REASONS = {"network": CONNECTION_LOST, "logged_out": LOGGED_OUT_BY_PHONE,
                      "stream_replaced": STREAM_REPLACED, "banned": TEMPORARILY_BANNED}


class Simulator(abc.ABC):
    """An engine that plays the phone and WhatsApp too (the sandbox): the `/v1/sandbox` routes
    act through these. Their events follow on the bus like any other."""

    @abc.abstractmethod
    def scan(self, session_id: str, *, phone_number: str) -> None:
        """The phone scans the session's QR code: the session connects."""

    @abc.abstractmethod
    def disconnect(self, session_id: str, *, reason: str = "network") -> None:
        """The connection drops (`DISCONNECT_REASONS`): a network blip reconnects by itself;
        the others are WhatsApp's or the phone's decisions, which end the session."""

    @abc.abstractmethod
    def inbound(self, session_id: str, *, from_number: str, text: str = "", type: str = "text",
                content: dict | list | None = None, reply_to_whatsapp_id: str = "",
                whatsapp_id: str = "", chat_id: str = "", sender_lid: str = "") -> str:
        """A contact sends the session a message: a text, a `location` (`content`: latitude,
        longitude, name, address) or a `contact` (`content`: the cards); returns its WhatsApp
        id. `reply_to_whatsapp_id`: the message it quotes; `whatsapp_id`: the message's own
        id (the same again is the same message, delivered twice), else a new one. `chat_id`:
        a group of the session the contact is in (NotFound for another), else the direct
        chat. `sender_lid`: the contact writes under this hidden id, its number withheld."""

    @abc.abstractmethod
    def inbound_action(self, session_id: str, *, from_number: str, kind: str,
                       whatsapp_id: str, emoji: str = "", text: str = "") -> None:
        """A contact reacts to (`reaction`), edits (`edit`) or deletes (`revoke`) the message
        with this WhatsApp id."""
