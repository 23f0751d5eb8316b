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


USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
GROUP_SERVER = "g.us"


def jid_text(jid) -> str:
    """A neonize JID as `user@server` (no device part)."""
    return f"{jid.User}@{jid.Server}"


def address_of(jid) -> str:
    """How the API names a person or chat: a number's digits, else the full id (a hidden
    `...@lid`, a group's `...@g.us`)."""
    return jid.User if jid.Server == USER_SERVER else jid_text(jid)


def person(jid, alternative=None) -> dict:
    """A person as WhatsApp named them, `{id, lid, phoneNumber}`: `jid` may be their number's
    id or their hidden one; `alternative`, when WhatsApp sent it, is the other of the two."""
    ids = [candidate for candidate in (jid, alternative) if candidate is not None
           and candidate.User]
    phone = next((c.User for c in ids if c.Server == USER_SERVER), None)
    lid = next((jid_text(c) for c in ids if c.Server == LID_SERVER), None)
    return {"id": jid_text(jid), "lid": lid, "phoneNumber": phone}


def identity_events(session_id: str, people: list[dict]) -> list[EngineEvent]:
    """An `identity` event for each person whose hidden id and number are both known."""
    return [EngineEvent(base.IDENTITY, session_id,
                        {"lid": who["lid"], "phoneNumber": who["phoneNumber"]})
            for who in people if who["lid"] and who["phoneNumber"]]


def message_sender(message) -> dict:
    """Who wrote a message (`person`): the sender, or in a direct chat with no sender set, the
    chat itself."""
    source = message.Info.MessageSource
    who = source.Sender if source.Sender.User else source.Chat
    return person(who, source.SenderAlt if source.SenderAlt.User else None)


def message_event(session_id: str, message, who: dict | None = None) -> EngineEvent | None:
    """A message from a contact (`message_received`), or its reaction, edit or deletion of
    an earlier one; None for what a customer is not told about. `who`: its sender
    (`message_sender`) with what else is known of them."""
    source = message.Info.MessageSource
    if source.IsFromMe:
        return None
    body = message.Message
    who = who or message_sender(message)
    sender = who["phoneNumber"] or who["id"]
    action = _action_event(session_id, body, sender)
    if action is not None:
        return action
    data = {"whatsappId": message.Info.ID,
            "from": sender, "senderId": who["id"],
            "pushName": message.Info.Pushname or None,
            "type": "text", "text": ""}
    if source.IsGroup or source.Chat.Server == GROUP_SERVER:
        data["chatId"] = jid_text(source.Chat)
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


def group_data(info) -> dict:
    """A neonize GroupInfo as the engine interface shows a group."""
    participants = []
    for member in info.Participants:
        who = person(member.JID, member.PhoneNumber if member.PhoneNumber.User else
                     member.LID if member.LID.User else None)
        participants.append({**who, "isAdmin": bool(member.IsAdmin or member.IsSuperAdmin)})
    return {"id": jid_text(info.JID), "subject": info.GroupName.Name,
            "description": info.GroupTopic.Topic or None, "participants": participants}


_PARTICIPANT_CHANGES = (("Join", "add"), ("Leave", "remove"), ("Promote", "promote"),
                        ("Demote", "demote"))


def group_participants_events(session_id: str, event) -> list[EngineEvent]:
    """A group's members changed (whatsmeow's GroupInfo event): one event per kind of change."""
    events = []
    for field, action in _PARTICIPANT_CHANGES:
        members = [person(jid) for jid in getattr(event, field)]
        if members:
            events.append(EngineEvent(base.GROUP_PARTICIPANTS, session_id, {
                "groupId": jid_text(event.JID), "action": action,
                "participants": [{"id": who["id"], "phoneNumber": who["phoneNumber"]}
                                 for who in members]}))
    return events


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
