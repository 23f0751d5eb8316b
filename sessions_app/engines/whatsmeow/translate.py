"""neonize (whatsmeow) events -> our EngineEvents. Imported only where neonize may be: the
per-session child process, and tests."""

from __future__ import annotations

from sessions_app.engines import base
from sessions_app.engines.base import EngineEvent

# whatsmeow receipt types -> our statuses (server ack is the send's own return: `sent`).
RECEIPT_STATUS = {"DELIVERED": "delivered", "READ": "read", "PLAYED": "read",
                  "SERVER_ERROR": "failed"}

_MEDIA_FIELDS = {"imageMessage": "image", "videoMessage": "video", "audioMessage": "audio",
                 "documentMessage": "document"}


def receipt_events(session_id: str, receipt, message_ids: dict[str, str]) -> list[EngineEvent]:
    kind = receipt.DESCRIPTOR.fields_by_name["Type"].enum_type.values_by_number[receipt.Type].name
    status = RECEIPT_STATUS.get(kind)
    if status is None:
        return []
    events = []
    for whatsapp_id in receipt.MessageIDs:
        data = {"whatsappId": whatsapp_id, "status": status}
        if whatsapp_id in message_ids:
            data["messageId"] = message_ids[whatsapp_id]
        if status == "failed":
            data["error"] = "WhatsApp reported a server error for this message"
        events.append(EngineEvent(base.RECEIPT, session_id, data))
    return events


def message_event(session_id: str, message) -> EngineEvent | None:
    source = message.Info.MessageSource
    if source.IsFromMe:
        return None
    body = message.Message
    data = {"whatsappId": message.Info.ID,
            "from": (source.Sender.User or source.Chat.User),
            "pushName": message.Info.Pushname or None,
            "type": "text", "text": ""}
    if body.conversation:
        data["text"] = body.conversation
    elif body.HasField("extendedTextMessage"):
        data["text"] = body.extendedTextMessage.text
    else:
        for field, kind in _MEDIA_FIELDS.items():
            if body.HasField(field):
                media = getattr(body, field)
                data.update(type=kind, text=getattr(media, "caption", "") or "",
                            mimeType=getattr(media, "mimetype", "") or None)
                break
        else:
            return None  # reactions, protocol messages, ...: nothing a customer is told about
    return EngineEvent(base.MESSAGE_RECEIVED, session_id, data)


def logged_out_event(session_id: str, event) -> EngineEvent:
    reason = event.DESCRIPTOR.fields_by_name["Reason"].enum_type.values_by_number.get(
        event.Reason)
    name = reason.name if reason else "unknown"
    return EngineEvent(base.LOGGED_OUT, session_id,
                       {"reason": f"logged out by WhatsApp ({name})"})


def connect_failure_event(session_id: str, event) -> EngineEvent:
    return EngineEvent(base.FAILED, session_id,
                       {"error": event.Message or "WhatsApp refused the connection"})
