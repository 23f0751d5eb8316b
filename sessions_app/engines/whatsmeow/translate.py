"""neonize (whatsmeow) events -> our EngineEvents, and the sentences a customer reads for
each code. It never imports neonize: the session's process passes neonize's event objects in,
and the supervisor uses it for its own `disconnected` events."""

from __future__ import annotations

import re

from sessions_app.engines import base
from sessions_app.engines.base import EngineEvent

# whatsmeow receipt types -> our statuses (server ack is the send's own return: `sent`).
RECEIPT_STATUS = {"DELIVERED": "delivered", "READ": "read", "PLAYED": "read",
                  "SERVER_ERROR": "failed"}

_MEDIA_FIELDS = {"imageMessage": "image", "videoMessage": "video", "audioMessage": "audio",
                 "documentMessage": "document", "stickerMessage": "sticker"}
# The types whose content is a file to download.
MEDIA_TYPES = frozenset(_MEDIA_FIELDS.values())
_WAID = re.compile(r"waid=(\d{5,15})")


def _contact(card) -> dict:
    """A contact card as the API shows it; the number is the vCard's WhatsApp id, if any."""
    number = _WAID.search(card.vcard or "")
    return {"name": card.displayName or "", "phoneNumber": number.group(1) if number else None,
            "vcard": card.vcard or None}


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
    """A message from a contact (`message_received`), or its reaction, edit or deletion of
    an earlier one; None for what a customer is not told about."""
    source = message.Info.MessageSource
    if source.IsFromMe:
        return None
    body = message.Message
    sender = source.Sender.User or source.Chat.User
    action = _action_event(session_id, body, sender)
    if action is not None:
        return action
    who = source.Sender if source.Sender.User else source.Chat
    data = {"whatsappId": message.Info.ID,
            "from": sender, "senderId": f"{who.User}@{who.Server}",
            "pushName": message.Info.Pushname or None,
            "type": "text", "text": ""}
    if body.conversation:
        data["text"] = body.conversation
    elif body.HasField("extendedTextMessage"):
        data["text"] = body.extendedTextMessage.text
    elif body.HasField("locationMessage"):
        place = body.locationMessage
        data.update(type="location", location={
            "latitude": place.degreesLatitude, "longitude": place.degreesLongitude,
            "name": place.name or None, "address": place.address or None})
    elif body.HasField("contactMessage"):
        data.update(type="contact", contacts=[_contact(body.contactMessage)])
    elif body.HasField("contactsArrayMessage"):
        data.update(type="contact",
                    contacts=[_contact(card) for card in body.contactsArrayMessage.contacts])
    else:
        for field, kind in _MEDIA_FIELDS.items():
            if body.HasField(field):
                media = getattr(body, field)
                data.update(type=kind, text=getattr(media, "caption", "") or "",
                            mimeType=getattr(media, "mimetype", "") or None)
                break
        else:
            return None  # polls, other protocol messages...: nothing a customer is told about
    quoted = _quoted_id(body)
    if quoted:
        data["replyToWhatsappId"] = quoted
    return EngineEvent(base.MESSAGE_RECEIVED, session_id, data)


def _action_event(session_id: str, body, sender: str) -> EngineEvent | None:
    """A reaction to, an edit of or the deletion of an earlier message, if that is what the
    contact sent (WhatsApp sends the last two as protocol messages; an edit may also come
    wrapped in `editedMessage`)."""
    if body.HasField("reactionMessage"):
        reaction = body.reactionMessage
        return EngineEvent(base.REACTION, session_id, {
            "whatsappId": reaction.key.ID, "from": sender, "emoji": reaction.text})
    if body.HasField("editedMessage"):
        body = body.editedMessage.message
    if body.HasField("protocolMessage"):
        protocol = body.protocolMessage
        if protocol.type == protocol.MESSAGE_EDIT:
            edited = protocol.editedMessage
            text = edited.conversation or edited.extendedTextMessage.text
            return EngineEvent(base.EDITED, session_id, {
                "whatsappId": protocol.key.ID, "from": sender, "text": text})
        if protocol.type == protocol.REVOKE:
            return EngineEvent(base.REVOKED, session_id, {
                "whatsappId": protocol.key.ID, "from": sender})
    return None


def _quoted_id(body) -> str:
    """The WhatsApp id of the message this one quotes, if it is a reply: WhatsApp puts it in
    the context of whichever content the message holds."""
    for _field, content in body.ListFields():
        context = getattr(content, "contextInfo", None)
        if context is not None and context.stanzaID:
            return context.stanzaID
    return ""


def _enum_name(event, field: str) -> str:
    value = event.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number.get(
        getattr(event, field))
    return value.name if value else "UNKNOWN"


# whatsmeow's ConnectFailure reasons that are WhatsApp's decision, not a passing failure.
_CONNECT_FAILURE_LOGOUT = {"LOGGED_OUT", "MAIN_DEVICE_GONE", "UNKNOWN_LOGOUT"}
_CONNECT_FAILURE_FINAL = {"TEMP_BANNED": base.TEMPORARILY_BANNED,
                          "CLIENT_OUTDATED": base.CLIENT_OUTDATED,
                          "BAD_USER_AGENT": base.CLIENT_OUTDATED}

# The sentence a customer reads (`lastError`) for each code; whatsmeow's own words go to the
# engine's log, not to the API.
SENTENCES = {
    base.CONNECTION_LOST: "The connection to WhatsApp was lost; the service reconnects by itself.",
    base.ENGINE_UNREACHABLE: "The engine process stopped; the service restarts it by itself.",
    base.LOGGED_OUT_BY_PHONE: "The phone unlinked this device (WhatsApp > Linked devices).",
    base.STREAM_REPLACED: "The number was opened in another WhatsApp Web client, which took "
                          "over; restart the session to take it back.",
    base.TEMPORARILY_BANNED: "WhatsApp banned this number for a while",
    base.CLIENT_OUTDATED: "WhatsApp refused this client version; the engine needs an update.",
    base.ENGINE_ERROR: "The engine failed.",
}


def disconnected_event(session_id: str, code: str = base.CONNECTION_LOST,
                       reconnect_at=None) -> EngineEvent:
    data = {"reason": SENTENCES[code], "code": code}
    if reconnect_at is not None:
        data["reconnectAt"] = reconnect_at.isoformat()
    return EngineEvent(base.DISCONNECTED, session_id, data)


def failed_event(session_id: str, code: str, detail: str = "") -> EngineEvent:
    return EngineEvent(base.FAILED, session_id,
                       {"error": SENTENCES[code] + detail, "code": code})


def logged_out_event(session_id: str, event=None) -> EngineEvent:
    return EngineEvent(base.LOGGED_OUT, session_id, {
        "reason": SENTENCES[base.LOGGED_OUT_BY_PHONE], "code": base.LOGGED_OUT_BY_PHONE})


def temporary_ban_event(session_id: str, event) -> EngineEvent:
    reason = _enum_name(event, "Code").lower().replace("_", " ")
    detail = f" ({reason}; it ends in {event.Expire} s)." if event.Expire else f" ({reason})."
    return failed_event(session_id, base.TEMPORARILY_BANNED, detail)


def connect_failure_event(session_id: str, event) -> EngineEvent:
    """WhatsApp refused the connection: a logout, a ban or an outdated client end the session;
    anything else (its servers' trouble) is a passing loss."""
    reason = _enum_name(event, "Reason")
    if reason in _CONNECT_FAILURE_LOGOUT:
        return logged_out_event(session_id)
    if reason in _CONNECT_FAILURE_FINAL:
        return failed_event(session_id, _CONNECT_FAILURE_FINAL[reason])
    return disconnected_event(session_id)
