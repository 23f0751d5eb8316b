"""Engine events that change messages. Each runs inside the consumer's transaction."""

from messaging.identities import identity_learn
from messaging.models import Message
from messaging.services import (
    StatusUpdate,
    inbound_action_apply,
    message_receive,
    message_statuses_apply,
    schedule_session_sender,
)
from sessions_app.engines import base
from sessions_app.engines.base import EngineEvent
from sessions_app.event_consumer import handler_register

_RECEIPT_STATUSES = {"sent", "delivered", "read", "failed"}


def _status_update(event: EngineEvent) -> StatusUpdate | None:
    status = event.data.get("status")
    message_id = event.data.get("messageId")
    if not message_id and event.data.get("whatsappId"):
        # A real engine restarted since the send knows only WhatsApp's id.
        message_id = (Message.objects.filter(session_id=event.session_id, direction="outbound",
                                             whatsapp_id=event.data["whatsappId"])
                      .values_list("id", flat=True).first())
    if status not in _RECEIPT_STATUSES or not message_id:
        return None
    return StatusUpdate(message_id=message_id, status=status, at=event.occurred_at,
                        whatsapp_id=event.data.get("whatsappId", ""),
                        error_code=event.data.get("errorCode", ""),
                        error_message=event.data.get("error", ""))


def on_receipt(event: EngineEvent) -> None:
    update = _status_update(event)
    if update is not None:
        message_statuses_apply([update])


def on_receipts(events: list[EngineEvent]) -> None:
    """A run of consecutive receipts, applied together (see `message_statuses_apply`)."""
    message_statuses_apply([update for update in map(_status_update, events) if update])


def on_message_received(event: EngineEvent) -> None:
    message_receive(
        session_id=event.session_id, whatsapp_id=event.data["whatsappId"],
        from_number=event.data["from"], text=event.data.get("text", ""),
        at=event.occurred_at, type=event.data.get("type", "text"),
        media=event.data.get("media"),
        content=event.data.get("location") or event.data.get("contacts"),
        reply_to_whatsapp_id=event.data.get("replyToWhatsappId") or "",
        sender_id=event.data.get("senderId") or "", sender_name=event.data.get("pushName") or "",
        chat_id=event.data.get("chatId") or "",
    )


def on_identity(event: EngineEvent) -> None:
    """WhatsApp disclosed whose number a hidden id is."""
    identity_learn(session_id=event.session_id, lid=event.data["lid"],
                   phone_number=event.data["phoneNumber"])


def on_message_action(event: EngineEvent) -> None:
    """A contact's reaction, edit or deletion of an earlier message."""
    kind = {base.REACTION: "reaction", base.EDITED: "edit", base.REVOKED: "revoke"}[event.type]
    inbound_action_apply(session_id=event.session_id, kind=kind,
                         whatsapp_id=event.data["whatsappId"], sender=event.data["from"],
                         emoji=event.data.get("emoji", ""), text=event.data.get("text", ""))


def on_connected(event: EngineEvent) -> None:
    # Messages queued while the session was away go out now.
    schedule_session_sender(event.session_id)


def handlers_register() -> None:
    """Called when the app starts. Receipts are applied a run at a time; the consumer falls
    back to one by one if a run fails."""
    handler_register(base.RECEIPT, on_receipt, batch=on_receipts)
    handler_register(base.MESSAGE_RECEIVED, on_message_received)
    handler_register(base.CONNECTED, on_connected)
    handler_register(base.IDENTITY, on_identity)
    for kind in (base.REACTION, base.EDITED, base.REVOKED):
        handler_register(kind, on_message_action)
