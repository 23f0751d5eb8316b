from django.db import models

from accounts.models import Account
from infra.ids import new_message_id
from sessions_app.models import Session


class MessageStatus(models.TextChoices):
    QUEUED = "queued"
    SENDING = "sending"  # internal: claimed by a sender; the API shows it as queued
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    RECEIVED = "received"


# Outbound statuses only move forward along this order (failed may follow any unsent one).
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


class MessageType(models.TextChoices):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"
    AUDIO = "audio"
    LOCATION = "location"
    CONTACT = "contact"
    STICKER = "sticker"  # inbound only
    # Actions on an earlier message (content: {messageId, ...}), sent through the same queue
    # and counted like any message; what they change shows on that message.
    REACTION = "reaction"
    EDIT = "edit"
    REVOKE = "revoke"


ACTION_TYPES = frozenset({MessageType.REACTION, MessageType.EDIT, MessageType.REVOKE})


def default_chat_id(direction: str, from_number: str, to_number: str) -> str:
    """A message's chat when nothing else names it: the other side."""
    return to_number if direction == "outbound" else from_number


class Message(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_message_id,
                          editable=False)
    # No index of their own: the composite indexes below lead with them (every status change
    # of a message rewrites all its index entries, so each index costs on the send path).
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="messages",
                                db_index=False)
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="messages",
                                db_index=False)
    direction = models.CharField(max_length=10, choices=[("outbound", "outbound"),
                                                         ("inbound", "inbound")])
    type = models.CharField(max_length=10, choices=MessageType.choices)
    # A number's digits, or a full WhatsApp id: a group (`...@g.us`, outbound `to`) or a person
    # whose number WhatsApp withholds (`...@lid`, until it is disclosed).
    from_number = models.CharField(max_length=100, blank=True)
    to_number = models.CharField(max_length=100, blank=True)
    # The conversation: the other side's number (or hidden id) for a direct chat, the group's
    # id for a group.
    chat_id = models.CharField(max_length=100, blank=True)
    text = models.TextField(blank=True)
    media_url = models.URLField(max_length=2048, blank=True)
    media_mime_type = models.CharField(max_length=100, blank=True)
    media_size = models.BigIntegerField(null=True, blank=True)
    media_filename = models.CharField(max_length=255, blank=True)
    # The stored file of an incoming media message (until MEDIA_RETENTION_DAYS).
    media_file = models.CharField(max_length=500, blank=True)
    caption = models.TextField(blank=True)
    # What a location or contact message holds, as the API shows it: {latitude, longitude,
    # name, address}, or a list of {name, phoneNumber, vcard}.
    content = models.JSONField(null=True, blank=True)
    # The message this one replies to (same session and chat). No index: nothing looks
    # messages up by the one they quote.
    # Who wrote an inbound message, as WhatsApp names them: their id (`number@s.whatsapp.net`,
    # or a hidden `...@lid`) and the name they gave themselves (push name).
    sender_id = models.CharField(max_length=100, blank=True)
    sender_name = models.CharField(max_length=256, blank=True)
    # [{senderId, emoji}]: the reactions to this message, ours and the contact's, one each.
    reactions = models.JSONField(null=True, blank=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", db_index=False)
    status = models.CharField(max_length=10, choices=MessageStatus.choices)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    whatsapp_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sending_started_at = models.DateTimeField(null=True, blank=True)
    # NULL, not "": the unique constraint must ignore messages sent without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # SQLite only: PostgreSQL reads an account's messages newest first from its twin
            # on (account, id COLLATE "C") (migration 0004, config/pagination.py); migration
            # 0007 drops this one there, one index fewer to write at every change.
            models.Index(fields=["account", "-id"], name="message_account_id"),
            # Lists of a session's messages by status, and the sweeper's scans.
            models.Index(fields=["session", "status", "id"], name="message_session_queue"),
            # The head of a session's send queue, what the sender asks for before every send.
            # Partial: it holds only what waits, so the head is found without stepping over
            # the session's sent messages, and the planner picks it even before the table's
            # statistics exist (a fresh table otherwise gets a plan that scans the session).
            models.Index(fields=["session", "id"], name="message_outbound_queue",
                         condition=models.Q(status=MessageStatus.QUEUED, direction="outbound")),
            models.Index(fields=["status", "created_at"], name="message_status_created"),
            # Receipts of a real engine that lost our ids name the message by WhatsApp's id.
            models.Index(fields=["session", "whatsapp_id"], name="message_session_waid"),
        ]
        constraints = [
            # A retried send with the same Idempotency-Key can never make a second message.
            # Partial: messages sent without a key have no entry to rewrite at every change.
            models.UniqueConstraint(fields=["account", "idempotency_key"],
                                    condition=models.Q(idempotency_key__isnull=False),
                                    name="message_idempotency_key"),
            # An inbound message the engine reports twice is stored once.
            models.UniqueConstraint(fields=["session", "whatsapp_id"],
                                    condition=models.Q(direction="inbound"),
                                    name="message_inbound_whatsapp_id"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.direction} {self.status}"

    def save(self, *args, **kwargs) -> None:
        if not self.chat_id:
            self.chat_id = default_chat_id(self.direction, self.from_number, self.to_number)
        super().save(*args, **kwargs)


class Chat(models.Model):
    """One conversation of a session, kept as its messages come and go: the last one, and how
    many received ones are unread (`GET /v1/chats`)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="chats",
                                db_index=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="chats",
                                db_index=False)
    chat_id = models.CharField(max_length=100)
    is_group = models.BooleanField(default=False)
    # A group's subject, or the contact's push name.
    name = models.CharField(max_length=256, blank=True)
    # Rewritten by every message of the chat, so kept cheap to rewrite: no database
    # constraint (a check per message) and no index (the session's chats are few enough to
    # sort, and without an index on it the row is rewritten in place, as a HOT update).
    last_message = models.ForeignKey(Message, null=True, on_delete=models.SET_NULL,
                                     related_name="+", db_index=False, db_constraint=False)
    unread_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "chat_id"],
                                               name="chat_session_chat_id")]

    def __str__(self) -> str:
        return self.name or self.chat_id


class MessageStatusChange(models.Model):
    """A message's status history, for support."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="history")
    status = models.CharField(max_length=10)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.status
