"""Writes for messages: accepting sends, status changes and inbound messages. Every status
change past `queued` is recorded in the message's history and emits `message.status`."""

import copy
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.authentication import AuthenticatedKey
from accounts.quotas import daily_quota_statement
from api.errors import ApiError, E
from api.phones import is_group_id, is_lid
from infra.local_cache import LocalTTLCache
from infra.metrics import MESSAGE_STATUS
from infra.sql import RowChange, insert_if
from infra.wakeups import wake_after_commit, woken
from messaging.chats import chat_touch, chat_unread_recount
from messaging.identities import identity_resolve, phone_of_lid
from messaging.models import (
    ACTION_TYPES,
    STATUS_RANK,
    Message,
    MessageStatus,
    MessageStatusChange,
)
from messaging.serializers import chat_of, message_data
from sessions_app.engines import get_engine
from sessions_app.engines.base import EngineError
from sessions_app.groups import group_require_member
from sessions_app.models import Session
from sessions_app.selectors import session_get_for_send
from sessions_app.services import engine_unavailable, session_mark_read, session_require_sendable
from webhooks.outbox import EventSpec, changes_record, event_record, webhooks_read_once

logger = logging.getLogger(__name__)

# "This number is on WhatsApp", per process in front of Redis (it rarely changes).
_recipients = LocalTTLCache(ttl=60.0)

TEXT_MAX_CHARACTERS = 4096
CAPTION_MAX_CHARACTERS = 1024

_TIMESTAMP_FIELD = {
    MessageStatus.SENT: "sent_at",
    MessageStatus.DELIVERED: "delivered_at",
    MessageStatus.READ: "read_at",
    MessageStatus.FAILED: "failed_at",
}


@dataclass(frozen=True)
class MediaSpec:
    """A media URL that passed the acceptance probe."""

    url: str
    mime_type: str
    size: int | None
    filename: str
    caption: str


def number_on_whatsapp(*, session: Session, number: str) -> bool:
    """Ask the engine, with a short cache (a number rarely joins or leaves WhatsApp). Raises
    EngineError when the engine cannot tell now."""
    cache_key = f"on-whatsapp:{session.id}:{number}"
    known = _recipients.get(cache_key)
    if known is None:
        known = cache.get(cache_key)
        if known is not None:
            _recipients.set(cache_key, known)
    if known is not None:
        return known
    on_whatsapp = get_engine().check_numbers(session.id, [number]).get(number, False)
    ttl = settings.RECIPIENT_CHECK_CACHE_SECONDS if on_whatsapp else 60
    cache.set(cache_key, on_whatsapp, ttl)
    _recipients.set(cache_key, on_whatsapp)  # or this process's next send reads it back
    return on_whatsapp


def recipient_on_whatsapp(*, session: Session, number: str) -> bool:
    """Whether a send to `number` can be accepted: when the engine cannot tell now, yes (the
    send itself fails if WhatsApp refuses it)."""
    try:
        return number_on_whatsapp(session=session, number=number)
    except EngineError:
        logger.warning("recipient check failed for session %s", session.id, exc_info=True)
        return True


def contact_lookup(*, session: Session, address: str) -> dict:
    """What the session can tell of a person named by number or hidden id (`...@lid`): on
    WhatsApp or not, both their ids when WhatsApp disclosed them, and the name they gave
    themselves in their last message to the session."""
    session_require_sendable(session=session, field=None)
    identity = identity_resolve(session=session, address=address)
    phone, lid = identity["phoneNumber"], identity["lid"]
    on_whatsapp = True  # a hidden id is WhatsApp's own
    if phone is not None:
        try:
            on_whatsapp = number_on_whatsapp(session=session, number=phone)
        except EngineError as exc:
            raise engine_unavailable(exc) from exc
    senders = Q(sender_id=lid) if lid else Q()
    if phone:
        senders |= Q(from_number=phone)
    name = (Message.objects.filter(senders, session=session, direction="inbound")
            .exclude(sender_name="").order_by("-id").values_list("sender_name", flat=True)
            .first())
    whatsapp_id = f"{phone}@s.whatsapp.net" if phone else lid
    return {"id": whatsapp_id if on_whatsapp else None, "lid": lid, "phoneNumber": phone,
            "onWhatsApp": on_whatsapp, "name": name}


def message_send(
    *,
    key: AuthenticatedKey,
    session_id: str,
    to: str,
    type: str,
    text: str = "",
    media: MediaSpec | None = None,
    content: dict | list | None = None,
    reply_to: str | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
    check_recipient: bool = True,
) -> Message:
    """Accept an outbound message: checks, quota, insert; the session's sender is woken after
    commit. `content`: a location's or contacts' fields, as the API shows them."""
    session = session_get_for_send(account_id=key.account_id, session_id=session_id)
    session_require_sendable(session=session)
    if is_lid(to):  # a hidden id whose number is known: the number's chat
        to = phone_of_lid(session_id=session.id, lid=to) or to
    if reply_to is not None and not _in_chat(reply_to, session=session, chat=to):
        raise ApiError(E.message_not_found, field="replyTo",
                       reason="No message of this session's chat with that number has this id.")
    if check_recipient:
        _recipient_check(session=session, to=to)
    message = Message(
        account_id=key.account_id,
        session=session,
        direction="outbound",
        type=type,
        from_number=session.phone_number,
        to_number=to,
        chat_id=to,
        text=text,
        media_url=media.url if media else "",
        media_mime_type=media.mime_type if media else "",
        media_size=media.size if media else None,
        media_filename=media.filename if media else "",
        caption=media.caption if media else "",
        content=content,
        reply_to_id=reply_to,
        status=MessageStatus.QUEUED,
        idempotency_key=idempotency_key,
        request_id=request_id,
    )
    # (no history row for `queued`: the message's created_at is that moment)
    quota = daily_quota_statement(account_id=key.account_id, limit=key.daily_message_limit)
    # Inside a caller's transaction, a savepoint keeps it usable after an IntegrityError.
    savepoint = nullcontext() if transaction.get_autocommit() else transaction.atomic()
    try:
        with savepoint:  # the quota taken and the row inserted: both or neither
            accepted = insert_if(quota, [message])
    except IntegrityError:
        # The same Idempotency-Key already made a message (a retry after a crash): that one.
        existing = Message.objects.filter(account_id=key.account_id,
                                          idempotency_key=idempotency_key).first()
        if idempotency_key is None or existing is None:
            raise
        return existing
    if not accepted:
        raise ApiError(
            E.daily_message_limit_reached,
            reason=f"Your plan allows {key.daily_message_limit} messages per UTC day.",
        )
    schedule_session_sender(session.id)
    transaction.on_commit(MESSAGE_STATUS.labels("queued").inc)
    return message


def _recipient_check(*, session: Session, to: str) -> None:
    """A send's chat must be one WhatsApp can deliver to: a number on WhatsApp, a group the
    session is in (a hidden id is WhatsApp's own)."""
    if is_group_id(to):
        group_require_member(session=session, group_id=to, field="to")
    elif not is_lid(to) and not recipient_on_whatsapp(session=session, number=to):
        raise ApiError(E.recipient_not_on_whatsapp, field="to")


# WhatsApp lets a message be edited this long after it was sent.
EDIT_WINDOW = timedelta(minutes=15)
_SENT_STATUSES = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ)


def message_react(*, key: AuthenticatedKey, session_id: str, message_id: str, emoji: str,
                  idempotency_key: str | None = None, request_id: str = "") -> Message:
    """Queue a reaction to a message of the session (`""` takes ours back)."""
    session_get_for_send(account_id=key.account_id, session_id=session_id)
    target = Message.objects.filter(account_id=key.account_id, session_id=session_id,
                                    pk=message_id).first()
    if target is None:
        raise ApiError(E.message_not_found, field="messageId")
    if target.type in ACTION_TYPES:
        raise ApiError(E.invalid_parameter_value, field="messageId",
                       reason=f"A {target.type} cannot be reacted to.")
    return message_send(key=key, session_id=session_id, to=chat_of(target), type="reaction",
                        content={"messageId": target.id, "emoji": emoji},
                        idempotency_key=idempotency_key, request_id=request_id,
                        check_recipient=False)


def message_edit(*, key: AuthenticatedKey, message_id: str, text: str,
                 idempotency_key: str | None = None, request_id: str = "") -> Message:
    """Queue an edit of one of the account's sent text messages, within WhatsApp's window."""
    target = Message.objects.filter(account_id=key.account_id, pk=message_id).first()
    if target is None:
        raise ApiError(E.message_not_found)
    if target.direction != "outbound" or target.type != "text":
        raise ApiError(E.message_not_editable, reason="Only texts this service sent can be edited.")
    if target.status not in _SENT_STATUSES or target.revoked_at:
        state = "deleted" if target.revoked_at else "queued" if target.status == "sending" \
            else target.status
        raise ApiError(E.message_not_editable, reason=f"It is {state}.")
    # (A receipt may have come before `sent` was recorded: the earliest step known.)
    sent_at = target.sent_at or target.delivered_at or target.read_at or target.created_at
    if timezone.now() - sent_at > EDIT_WINDOW:
        raise ApiError(E.message_not_editable,
                       reason="WhatsApp allows edits for 15 minutes after sending.")
    return message_send(key=key, session_id=target.session_id, to=target.to_number,
                        type="edit", content={"messageId": target.id, "text": text},
                        idempotency_key=idempotency_key, request_id=request_id,
                        check_recipient=False)


def message_revoke(*, key: AuthenticatedKey, message_id: str,
                   idempotency_key: str | None = None, request_id: str = "") -> Message:
    """Queue the deletion for everyone of one of the account's sent messages."""
    target = Message.objects.filter(account_id=key.account_id, pk=message_id).first()
    if target is None:
        raise ApiError(E.message_not_found)
    if target.direction != "outbound" or target.type in ACTION_TYPES:
        raise ApiError(E.message_not_revocable,
                       reason="Only messages this service sent can be deleted.")
    if target.status not in _SENT_STATUSES or target.revoked_at:
        state = "deleted already" if target.revoked_at else "queued" \
            if target.status == "sending" else target.status
        raise ApiError(E.message_not_revocable, reason=f"It is {state}.")
    return message_send(key=key, session_id=target.session_id, to=target.to_number,
                        type="revoke", content={"messageId": target.id},
                        idempotency_key=idempotency_key, request_id=request_id,
                        check_recipient=False)


def message_action_apply(*, action: Message) -> None:
    """What an action of ours does to its message, once WhatsApp took it (the sender calls
    it before recording the action `sent`; applied twice, it changes nothing more)."""
    target = Message.objects.filter(pk=action.content["messageId"]).first()
    if target is None:
        return
    if action.type == "reaction":
        reaction_record(target=target, sender_id=action.from_number,
                        emoji=action.content["emoji"])
    elif action.type == "edit":
        edit_record(target=target, text=action.content["text"])
    elif action.type == "revoke":
        revoke_record(target=target)


def reaction_record(*, target: Message, sender_id: str, emoji: str) -> None:
    """One reaction per sender on a message: a new one replaces it, `""` removes it. Emits
    `message.reaction`."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=target.pk)
        reactions = [r for r in locked.reactions or [] if r["senderId"] != sender_id]
        if emoji:
            reactions.append({"senderId": sender_id, "emoji": emoji})
        Message.objects.filter(pk=locked.pk).update(reactions=reactions)
        event_record(account_id=locked.account_id, type="message.reaction",
                     session_id=locked.session_id,
                     data={"messageId": locked.id, "chatId": chat_of(locked),
                           "senderId": sender_id, "emoji": emoji})


def edit_record(*, target: Message, text: str) -> None:
    """The message's new text, and `message.edited` with the message."""
    with transaction.atomic():
        Message.objects.filter(pk=target.pk).update(text=text, edited_at=timezone.now())
        target.refresh_from_db()
        event_record(account_id=target.account_id, type="message.edited",
                     session_id=target.session_id, data=message_data(target))


def revoke_record(*, target: Message) -> None:
    """The message deleted for everyone (once), and `message.revoked` with the message."""
    with transaction.atomic():
        if not Message.objects.filter(pk=target.pk, revoked_at__isnull=True).update(
                revoked_at=timezone.now()):
            return
        target.refresh_from_db()
        event_record(account_id=target.account_id, type="message.revoked",
                     session_id=target.session_id, data=message_data(target))


def inbound_action_apply(*, session_id: str, kind: str, whatsapp_id: str, sender: str,
                         emoji: str = "", text: str = "") -> bool:
    """A contact's reaction, edit or deletion of a message of the session (named by its
    WhatsApp id). Edits and deletions apply to the contact's own messages only. Returns
    whether the message was known."""
    target = Message.objects.filter(session_id=session_id, whatsapp_id=whatsapp_id).first()
    if target is None:
        return False
    if is_lid(sender):
        sender = phone_of_lid(session_id=session_id, lid=sender) or sender
    if kind == "reaction":
        reaction_record(target=target, sender_id=sender, emoji=emoji)
        return True
    if target.direction != "inbound" or target.from_number != sender:
        return False
    if kind == "edit":
        edit_record(target=target, text=text)
    else:
        revoke_record(target=target)
    return True


def message_mark_read(*, account_id: str, message_id: str) -> Message:
    """Mark a received message, and the chat's unread ones before it, read on the phone's
    side; they show `readAt`."""
    target = Message.objects.filter(account_id=account_id, pk=message_id).first()
    if target is None:
        raise ApiError(E.message_not_found)
    if target.direction != "inbound":
        raise ApiError(E.invalid_request, reason="Only a received message can be marked read.")
    unread = Message.objects.filter(session_id=target.session_id, direction="inbound",
                                    chat_id=target.chat_id, read_at__isnull=True,
                                    pk__lte=target.pk)
    by_sender: dict[str, list[str]] = {}
    for sender, whatsapp_id in unread.exclude(whatsapp_id="").values_list("from_number",
                                                                          "whatsapp_id"):
        by_sender.setdefault(sender, []).append(whatsapp_id)
    if by_sender:
        session = Session.objects.get(pk=target.session_id)
        for sender, whatsapp_ids in by_sender.items():  # in a group, one receipt per sender
            session_mark_read(session=session, chat=target.chat_id, whatsapp_ids=whatsapp_ids,
                              sender=sender)
        unread.update(read_at=timezone.now())
        chat_unread_recount(session_id=target.session_id, chat_id=target.chat_id)
    target.refresh_from_db()
    return target


def _in_chat(message_id: str, *, session: Session, chat: str) -> bool:
    """Whether the message is one of the session's chat `chat`."""
    return Message.objects.filter(pk=message_id, session=session, chat_id=chat).exists()


# The task of a session's sender run (messaging/tasks.py).
SENDER_TASK = "messaging.send_session_messages"


def sender_wake_key(session_id: str) -> str:
    return f"sender-scheduled:{session_id}"


def schedule_session_sender(session_id: str, *, countdown: float | None = None,
                            dedupe: bool = True, owner: str | None = None) -> None:
    """Wake the session's sender after commit (one pending wake-up per session). `owner`: the
    continuation of a paused run, which holds the session's lease under that name."""
    args = (session_id,) if owner is None else (session_id, owner)
    wake_after_commit(SENDER_TASK, *args, key=sender_wake_key(session_id),
                      countdown=countdown, dedupe=dedupe)


def session_sender_woken(session_id: str) -> None:
    """Called by a run as it lets the session's lease go, before it looks at the queue once
    more: from now on, a message accepted wakes a new run."""
    woken(sender_wake_key(session_id))


@dataclass(frozen=True)
class StatusUpdate:
    """A status an outbound message reached (a receipt, or the sender's own `sent`)."""

    message_id: str
    status: str
    at: datetime | None = None
    whatsapp_id: str = ""
    error_code: str = ""
    error_message: str = ""


def message_status_apply(
    *,
    message_id: str,
    status: str,
    at: datetime | None = None,
    whatsapp_id: str = "",
    error_code: str = "",
    error_message: str = "",
) -> bool:
    """Move an outbound message forward to `status` (never backwards: a late `delivered`
    after `read` changes nothing), as `message_statuses_apply` does. Returns whether it
    changed."""
    return message_statuses_apply([StatusUpdate(message_id, status, at, whatsapp_id,
                                                error_code, error_message)]) == 1


def _moves_forward(current: str, status: str) -> bool:
    """Outbound statuses only move forward along STATUS_RANK; `failed` follows any unsent one
    (queued, sending, sent)."""
    if status == MessageStatus.FAILED:
        return current in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT)
    return current != MessageStatus.FAILED and STATUS_RANK[status] > STATUS_RANK[current]


def _not_before_earlier_steps(message: Message, at: datetime) -> datetime:
    """A step's time, never before the steps already recorded: the sender records `sent` when
    the engine answered, a receipt carries the engine's own clock, and sentAt <= deliveredAt
    <= readAt must hold for customers whatever the order they were applied in."""
    earlier = [moment for moment in (message.sent_at, message.delivered_at) if moment]
    return max([at, *earlier])


def _moved(message: Message, update: StatusUpdate, now: datetime) -> tuple[Message, dict]:
    """The message as `update` leaves it (a copy), and the fields it changes."""
    changes: dict[str, Any] = {"status": update.status}
    if update.status in _TIMESTAMP_FIELD:
        changes[_TIMESTAMP_FIELD[update.status]] = _not_before_earlier_steps(
            message, update.at or now)
    if update.whatsapp_id and not message.whatsapp_id:
        changes["whatsapp_id"] = update.whatsapp_id
    if update.status == MessageStatus.FAILED:
        changes["error_code"] = update.error_code or E.message_sending_failed.code
        changes["error_message"] = (update.error_message
                                    or E.message_sending_failed.message)[:500]
    moved = copy.copy(message)
    for name, value in changes.items():
        setattr(moved, name, value)
    return moved, changes


# A message read again this many times at most for one update (each time because another
# change got to it first: a receipt before the sender's `sent`, two consumers at once).
_UPDATE_TRIES = 5


@dataclass
class _Steps:
    """The steps one batch takes a message through: one change of its row, from the status it
    was read in to the last step's state, and a history entry and an event for each step
    (with the update's place in the batch, so that events keep the batch's order)."""

    read_as: Message
    moved: Message
    fields: set[str]
    history: list[MessageStatusChange]
    events: list[tuple[int, EventSpec]]
    updates: list[StatusUpdate]


def _steps_of(message: Message, updates: list[tuple[int, StatusUpdate]], now: datetime
              ) -> _Steps | None:
    """The updates of one message that move it forward, in order, each from where the one
    before left it; None when none does."""
    steps = _Steps(message, message, set(), [], [], [])
    for place, update in updates:
        if not _moves_forward(steps.moved.status, update.status):
            continue
        steps.moved, changes = _moved(steps.moved, update, now)
        steps.fields |= changes.keys()
        steps.history.append(MessageStatusChange(message=steps.moved, status=update.status,
                                                 detail=update.error_message[:300]))
        # The message as it is at this step: a later step of the batch moves it on.
        steps.events.append((place, EventSpec(steps.moved.account_id, "message.status",
                                              steps.moved.session_id,
                                              message_data(steps.moved))))
        steps.updates.append(update)
    return steps if steps.updates else None


def message_statuses_apply(updates: list[StatusUpdate], *,
                           known: list[Message] | tuple = ()) -> int:
    """Apply status updates in their order. The updates that move an outbound message forward
    make one change of its row, to the state the last of them leaves it in, made only if it
    is still in the status it was read in, and written with a history entry and a
    `message.status` event (with its deliveries) for each step: all the batch's messages in
    one write (one statement on PostgreSQL). A message another change got to first is read
    again and its updates decided again. `known`: the messages as the caller has just read
    them (the sender's claimed ones); the others are read here, in one query. Returns how many
    updates changed a message."""
    messages = {message.pk: message for message in known}
    unread = {update.message_id for update in updates} - messages.keys()
    updates_of: dict[str, list[tuple[int, StatusUpdate]]] = {}
    for place, update in enumerate(updates):
        updates_of.setdefault(update.message_id, []).append((place, update))
    now, applied = timezone.now(), 0
    # The messages read here are locked until the batch ends (in id order, so two appliers
    # cannot deadlock): a second applier of later receipts waits for this one, and a message
    # never skips a step because its receipts were applied out of order.
    with (transaction.atomic() if unread else nullcontext()), webhooks_read_once():
        if unread:
            messages.update((message.pk, message) for message in
                            Message.objects.select_for_update()
                            .filter(pk__in=unread, direction="outbound").order_by("pk"))
        pending = list(updates_of)
        for _try in range(_UPDATE_TRIES):
            batch = [steps for message_id in pending
                     if (message := messages.get(message_id)) is not None
                     and (steps := _steps_of(message, updates_of[message_id], now))]
            made = changes_record(
                [RowChange(steps.moved, tuple(steps.fields), guard="status",
                           expected=steps.read_as.status, rows=tuple(steps.history))
                 for steps in batch],
                [event for _place, event in sorted(
                    ((place, (index, spec)) for index, steps in enumerate(batch)
                     for place, spec in steps.events), key=lambda item: item[0])])
            pending = []
            for steps, events in zip(batch, made, strict=True):
                if events is None:  # changed meanwhile: read it again, decide again
                    pending.append(steps.moved.pk)
                    messages[steps.moved.pk] = Message.objects.filter(pk=steps.moved.pk).first()
                    continue
                applied += len(steps.updates)
                for update in steps.updates:
                    MESSAGE_STATUS.labels(update.status).inc()
            if not pending:
                break
        else:
            logger.warning("status updates of %s not applied: changed under each of %s tries",
                           pending, _UPDATE_TRIES)
    return applied


def message_retry(*, message: Message, reason: str = "retried by support") -> bool:
    """Queue a failed outbound message again (it was counted against the quota when first
    accepted, so it is not counted again). Returns False when it is not a failed one."""
    with transaction.atomic():
        updated = Message.objects.filter(
            pk=message.pk, direction="outbound", status=MessageStatus.FAILED
        ).update(status=MessageStatus.QUEUED, error_code="", error_message="", failed_at=None,
                 attempts=0, next_attempt_at=None)
        if not updated:
            return False
        MessageStatusChange.objects.create(message=message, status=MessageStatus.QUEUED,
                                           detail=reason[:300])
        transaction.on_commit(lambda: schedule_session_sender(message.session_id))
    return True


def message_cancel(*, account_id: str, message_id: str) -> Message:
    """Fail a message still queued with `message_canceled`, so that it is never sent. Its row
    is locked meanwhile: a sender claiming it waits, then finds it failed."""
    with transaction.atomic():
        message = (Message.objects.select_for_update()
                   .filter(account_id=account_id, pk=message_id).first())
        if message is None:
            raise ApiError(E.message_not_found)
        if message.direction != "outbound" or message.status != MessageStatus.QUEUED:
            shown = "queued" if message.status == MessageStatus.SENDING else message.status
            reason = ("It is being sent." if message.status == MessageStatus.SENDING
                      else f"It is {shown}.")
            raise ApiError(E.message_not_cancelable, reason=reason)
        message_statuses_apply([StatusUpdate(
            message.id, MessageStatus.FAILED, None, "", E.message_canceled.code,
            "Canceled by the API before it was sent.")], known=[message])
    message.refresh_from_db()
    return message


def message_fail(*, message_id: str, code: str, reason: str) -> bool:
    return message_status_apply(message_id=message_id, status=MessageStatus.FAILED,
                                error_code=code, error_message=reason)


def message_receive(*, session_id: str, whatsapp_id: str, from_number: str, text: str,
                    at: datetime | None = None, type: str = "text",
                    media: dict | None = None,
                    content: dict | list | None = None,
                    reply_to_whatsapp_id: str = "", sender_id: str = "",
                    sender_name: str = "", chat_id: str = "") -> Message | None:
    """Store an inbound message once (the engine may report it twice) and emit
    `message.received`. `from_number`: the sender's number, or their hidden id (replaced by
    the number when it is known); `chat_id`: a group's id, else the chat is the sender's."""
    session = Session.objects.filter(pk=session_id, deleted_at__isnull=True).first()
    if session is None:
        return None
    if is_lid(from_number):
        from_number = phone_of_lid(session_id=session.id, lid=from_number) or from_number
    # The message it quotes, when this service knows it (one of the session's, either way).
    reply_to = (Message.objects.filter(session=session, whatsapp_id=reply_to_whatsapp_id)
                .values_list("id", flat=True).first() if reply_to_whatsapp_id else None)
    try:
        with transaction.atomic():
            media = media or {}
            message = Message.objects.create(
                account_id=session.account_id, session=session, direction="inbound",
                type=type, from_number=from_number, to_number=session.phone_number,
                chat_id=chat_id or from_number,
                text=text if type == "text" else "", caption=text if type != "text" else "",
                status=MessageStatus.RECEIVED, whatsapp_id=whatsapp_id,
                media_file=media.get("file", ""), media_size=media.get("size"),
                media_mime_type=media.get("mimeType", ""), content=content,
                reply_to_id=reply_to, sender_id=sender_id[:100], sender_name=sender_name[:256],
            )
            MessageStatusChange.objects.create(message=message, status=MessageStatus.RECEIVED)
            chat_touch(message=message, unread=1,
                       name="" if is_group_id(message.chat_id) else sender_name)
            MESSAGE_STATUS.labels("received").inc()
            event_record(account_id=session.account_id, type="message.received",
                         session_id=session.id, data=message_data(message))
    except IntegrityError:
        return Message.objects.filter(session=session, direction="inbound",
                                      whatsapp_id=whatsapp_id).first()
    return message
