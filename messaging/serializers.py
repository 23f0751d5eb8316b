from rest_framework import serializers

from api.phones import is_group_id, is_lid
from api.serializers import iso
from messaging.models import ACTION_TYPES, Message, MessageStatus, default_chat_id

# The types whose content is a file (`media`).
MEDIA_TYPES = frozenset({"image", "video", "document", "audio", "sticker"})


class MediaOutput(serializers.Serializer):
    url = serializers.CharField(allow_null=True)
    mimeType = serializers.CharField(allow_null=True)
    size = serializers.IntegerField(allow_null=True)
    filename = serializers.CharField(allow_null=True)
    caption = serializers.CharField(allow_null=True)


class LocationOutput(serializers.Serializer):
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()
    name = serializers.CharField(allow_null=True)
    address = serializers.CharField(allow_null=True)


class ContactOutput(serializers.Serializer):
    name = serializers.CharField()
    phoneNumber = serializers.CharField(allow_null=True)
    vcard = serializers.CharField(allow_null=True)


class ReactionOutput(serializers.Serializer):
    senderId = serializers.CharField()
    emoji = serializers.CharField()


class ActionOutput(serializers.Serializer):
    messageId = serializers.CharField()
    emoji = serializers.CharField(required=False)
    text = serializers.CharField(required=False)


class SenderOutput(serializers.Serializer):
    id = serializers.CharField(help_text="WhatsApp's id of the person (may end in @lid)")
    phoneNumber = serializers.CharField(allow_null=True,
                                        help_text="null while WhatsApp withholds it")
    name = serializers.CharField(allow_null=True, help_text="their push name")


class ErrorOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class MessageOutput(serializers.Serializer):
    """The message as the API and the webhooks show it."""

    id = serializers.CharField()
    sessionId = serializers.CharField()
    direction = serializers.ChoiceField(choices=["outbound", "inbound"])
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=[s for s in MessageStatus.values if s != "sending"])
    to = serializers.CharField(allow_null=True)
    text = serializers.CharField(allow_null=True)
    media = MediaOutput(allow_null=True)
    location = LocationOutput(allow_null=True, help_text="type `location` only")
    contacts = ContactOutput(many=True, allow_null=True, help_text="type `contact` only")
    chatId = serializers.CharField(help_text=(
        "the chat: the other side's number (or hidden `…@lid` id while WhatsApp withholds "
        "it), or a group's id (`…@g.us`)"))
    sender = SenderOutput(allow_null=True, help_text="inbound messages: who wrote it")
    replyTo = serializers.CharField(allow_null=True,
                                    help_text="the id of the message this one replies to")
    reactions = ReactionOutput(many=True)
    editedAt = serializers.DateTimeField(allow_null=True)
    revokedAt = serializers.DateTimeField(allow_null=True)
    action = ActionOutput(allow_null=True, help_text=(
        "types `reaction`, `edit` and `revoke` only: the message acted on, and the emoji or "
        "the new text"))
    error = ErrorOutput(allow_null=True)
    whatsappId = serializers.CharField(allow_null=True)
    createdAt = serializers.DateTimeField()
    sentAt = serializers.DateTimeField(allow_null=True)
    deliveredAt = serializers.DateTimeField(allow_null=True)
    readAt = serializers.DateTimeField(allow_null=True)
    failedAt = serializers.DateTimeField(allow_null=True)

    def get_fields(self) -> dict:
        fields = super().get_fields()
        fields["from"] = serializers.CharField(allow_null=True)  # a Python keyword
        return fields

    def to_representation(self, m: Message) -> dict:
        return message_data(m)


def chat_of(m: Message) -> str:
    """The chat a message belongs to: a group's id, or the other side's number (or hidden id
    while WhatsApp withholds the number)."""
    return m.chat_id or default_chat_id(m.direction, m.from_number, m.to_number)


def _number_or_none(address: str) -> str | None:
    """A number, not a hidden id (or a group's)."""
    return None if not address or is_lid(address) or is_group_id(address) else address


def message_data(m: Message) -> dict:
    """The message as the API and the webhooks show it (`MessageOutput` documents the shape).
    Written out by hand and called without a serializer: it runs on the accept path and for
    every webhook event, and building a serializer cost more than this."""
    media = None
    if m.type in MEDIA_TYPES:
        url = m.media_url or None
        if m.direction == "inbound":
            url = f"/v1/messages/{m.id}/media" if m.media_file else None
        media = {"url": url, "mimeType": m.media_mime_type or None,
                 "size": m.media_size, "filename": m.media_filename or None,
                 "caption": m.caption or None}
    return {
        "id": m.id,
        "sessionId": m.session_id,
        "direction": m.direction,
        "from": m.from_number or None,
        "to": m.to_number or None,
        "type": m.type,
        "text": m.text if m.type == "text" else None,
        "media": media,
        "location": m.content if m.type == "location" else None,
        "contacts": m.content if m.type == "contact" else None,
        "chatId": chat_of(m),
        "sender": ({"id": m.sender_id or f"{m.from_number}@s.whatsapp.net",
                    "phoneNumber": _number_or_none(m.from_number),
                    "name": m.sender_name or None}
                   if m.direction == "inbound" else None),
        "replyTo": m.reply_to_id,
        "reactions": m.reactions or [],
        "editedAt": iso(m.edited_at),
        "revokedAt": iso(m.revoked_at),
        "action": m.content if m.type in ACTION_TYPES else None,
        "status": "queued" if m.status == MessageStatus.SENDING else m.status,
        "error": {"code": m.error_code, "message": m.error_message} if m.error_code else None,
        "whatsappId": m.whatsapp_id or None,
        "createdAt": iso(m.created_at),
        "sentAt": iso(m.sent_at),
        "deliveredAt": iso(m.delivered_at),
        "readAt": iso(m.read_at),
        "failedAt": iso(m.failed_at),
    }
