"""Writes for messages: accepting sends, status changes and inbound messages. Every status
change past `queued` is recorded in the message's history and emits `message.status`."""

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.authentication import AuthenticatedKey
from accounts.quotas import daily_quota_consume, daily_quota_consume_sql
from api.errors import ApiError, E
from infra.local_cache import LocalTTLCache
from infra.metrics import MESSAGE_STATUS
from infra.sql import insert_from_sql, objects_insert, objects_update, prepared_cursor
from infra.wakeups import wake_after_commit, woken
from messaging.models import STATUS_RANK, Message, MessageStatus, MessageStatusChange
from messaging.serializers import message_data
from sessions_app.engines import get_engine
from sessions_app.engines.base import EngineError
from sessions_app.models import Session
from sessions_app.selectors import session_get_for_send
from sessions_app.services import session_require_sendable
from webhooks.outbox import (
    EventSpec,
    account_webhooks_forget,
    account_webhooks_seen,
    deliveries_schedule,
    event_record,
    events_prepare,
    events_record,
    webhooks_fingerprint_sql,
)

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


def recipient_on_whatsapp(*, session: Session, number: str) -> bool:
    """Ask the engine, with a short cache (a number rarely joins or leaves WhatsApp)."""
    cache_key = f"on-whatsapp:{session.id}:{number}"
    known = _recipients.get(cache_key)
    if known is None:
        known = cache.get(cache_key)
        if known is not None:
            _recipients.set(cache_key, known)
    if known is not None:
        return known
    try:
        on_whatsapp = get_engine().check_numbers(session.id, [number]).get(number, False)
    except EngineError:
        # Cannot tell now: accept, and let the send itself fail if WhatsApp refuses it.
        logger.warning("recipient check failed for session %s", session.id, exc_info=True)
        return True
    ttl = settings.RECIPIENT_CHECK_CACHE_SECONDS if on_whatsapp else 60
    cache.set(cache_key, on_whatsapp, ttl)
    _recipients.set(cache_key, on_whatsapp)  # or this process's next send reads it back
    return on_whatsapp


def message_send(
    *,
    key: AuthenticatedKey,
    session_id: str,
    to: str,
    type: str,
    text: str = "",
    media: MediaSpec | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
) -> Message:
    """Accept an outbound message: checks, quota, insert; the session's sender is woken after
    commit. The quota and the row are one transaction: either both or neither."""
    session = session_get_for_send(account_id=key.account_id, session_id=session_id)
    session_require_sendable(session=session)
    if not recipient_on_whatsapp(session=session, number=to):
        raise ApiError(E.recipient_not_on_whatsapp, field="to")
    message = Message(
        account_id=key.account_id,
        session=session,
        direction="outbound",
        type=type,
        from_number=session.phone_number,
        to_number=to,
        text=text,
        media_url=media.url if media else "",
        media_mime_type=media.mime_type if media else "",
        media_size=media.size if media else None,
        media_filename=media.filename if media else "",
        caption=media.caption if media else "",
        status=MessageStatus.QUEUED,
        idempotency_key=idempotency_key,
        request_id=request_id,
    )
    # (no history row for `queued`: the message's created_at is that moment)
    try:
        accepted = _insert_within_quota(message, account_id=key.account_id,
                                        limit=key.daily_message_limit)
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
    transaction.on_commit(lambda: schedule_session_sender(session.id))
    transaction.on_commit(MESSAGE_STATUS.labels("queued").inc)
    return message


def _insert_within_quota(message: Message, *, account_id: str, limit: int) -> bool:
    """Take one message from today's quota and insert `message`, both or neither. False when
    the quota is used up (nothing is written).

    On PostgreSQL it is one statement, so one round trip and its own transaction: the quota
    upsert in a WITH clause and the INSERT selecting from it (no quota row, no message). The
    accept path's cost is mostly round trips and ORM work, and this removes three round trips
    (BEGIN, a second statement, COMMIT) and the ORM's INSERT compilation. SQLite cannot put an
    INSERT in a WITH clause: there the same two writes run in one transaction."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            if daily_quota_consume(account_id=account_id, limit=limit) is None:
                return False
            message.save(force_insert=True)
        return True
    quota_sql, quota_params = daily_quota_consume_sql(account_id=account_id, limit=limit)
    insert_sql, values = insert_from_sql(message, source="quota")
    sql = f"WITH quota AS ({quota_sql.strip()}) {insert_sql}"
    # Nested in a caller's transaction, a savepoint keeps it usable after an IntegrityError.
    with transaction.atomic() if connection.in_atomic_block else nullcontext(), \
            prepared_cursor() as cursor:
        cursor.execute(sql, [*quota_params, *values])
        inserted = cursor.rowcount == 1
    if inserted:
        message._state.adding, message._state.db = False, connection.alias
    return inserted


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
    after `read` changes nothing). Returns whether it changed."""
    return message_statuses_apply([StatusUpdate(message_id, status, at, whatsapp_id,
                                                error_code, error_message)]) == 1


def _moves_forward(current: str, status: str) -> bool:
    if status == MessageStatus.FAILED:
        return current in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT)
    return current != MessageStatus.FAILED and STATUS_RANK[status] > STATUS_RANK[current]


def _not_before_earlier_steps(message: Message, at: datetime) -> datetime:
    """A step's time, never before the steps already recorded: the sender records `sent` when
    the engine answered, a receipt carries the engine's own clock, and sentAt <= deliveredAt
    <= readAt must hold for customers whatever the order they were applied in."""
    earlier = [moment for moment in (message.sent_at, message.delivered_at) if moment]
    return max([at, *earlier])


def message_statuses_apply(updates: list[StatusUpdate]) -> int:
    """Apply many status updates in their order, with `message_status_apply`'s rules, in a
    few statements: the messages are locked with one SELECT (in id order, so two appliers
    cannot deadlock), changed with one UPDATE, and their history, events and deliveries
    written with one INSERT each. Returns how many updates changed a message."""
    if not updates:
        return 0
    now = timezone.now()
    with transaction.atomic():
        messages = {message.pk: message for message in
                    Message.objects.select_for_update()
                    .filter(pk__in={u.message_id for u in updates}, direction="outbound")
                    .order_by("pk")}
        changed_fields: dict[str, set[str]] = {}
        history: list[MessageStatusChange] = []
        events: list[EventSpec] = []
        for update in updates:
            message = messages.get(update.message_id)
            if message is None or not _moves_forward(message.status, update.status):
                continue
            fields = changed_fields.setdefault(message.pk, set())
            message.status = update.status
            fields.add("status")
            if update.status in _TIMESTAMP_FIELD:
                setattr(message, _TIMESTAMP_FIELD[update.status],
                        _not_before_earlier_steps(message, update.at or now))
                fields.add(_TIMESTAMP_FIELD[update.status])
            if update.whatsapp_id and not message.whatsapp_id:
                message.whatsapp_id = update.whatsapp_id
                fields.add("whatsapp_id")
            if update.status == MessageStatus.FAILED:
                message.error_code = update.error_code or E.message_sending_failed.code
                message.error_message = (update.error_message
                                         or E.message_sending_failed.message)[:500]
                fields |= {"error_code", "error_message"}
            history.append(MessageStatusChange(message=message, status=update.status,
                                               detail=update.error_message[:300]))
            MESSAGE_STATUS.labels(update.status).inc()
            if update.status != MessageStatus.SENDING:
                # The message as it is at this step: a later update in the batch moves it on.
                events.append(EventSpec(message.account_id, "message.status",
                                        message.session_id, message_data(message)))
        if not history:
            return 0
        by_fields: dict[frozenset[str], list[Message]] = {}
        for pk, fields in changed_fields.items():
            by_fields.setdefault(frozenset(fields), []).append(messages[pk])
        for fields, group in by_fields.items():
            objects_update(group, sorted(fields))
        objects_insert(history)
        events_record(events)
    return len(history)


# Names from the models only; every value is a parameter. The last one is the fingerprint of
# the account's webhooks that the statement's deliveries were built from: nothing is written
# unless the webhooks are still those (the `hooks` clause computes the current one).
_SENT_UPDATE_SQL = f"""
UPDATE {Message._meta.db_table} SET status = %s, sent_at = %s, whatsapp_id = %s
WHERE id = %s AND direction = 'outbound' AND status IN (%s, %s)
AND (SELECT fingerprint FROM hooks) IS NOT DISTINCT FROM %s
RETURNING id
"""  # noqa: S608

# A copy of an account's webhooks found stale is read again, this many times at most, before
# the generic path takes over (webhooks that change under every statement).
_SENT_RECORD_TRIES = 3


def message_sent_record(*, message: Message, whatsapp_id: str = "") -> bool:
    """The sender's `sent`, right after the engine took the message: `message_status_apply`'s
    rules and writes, for a message the caller has just claimed (`message` holds its row).

    On PostgreSQL it is one statement, autocommitted, one round trip: the conditional UPDATE
    (only from queued or sending, so a receipt that came first wins, as with the generic path)
    in a WITH clause, and the history row, the `message.status` event and its deliveries
    inserted only if it updated. The deliveries come from this process's copy of the account's
    webhooks (`account_webhooks_seen`); the statement writes nothing unless the webhooks'
    fingerprint, computed in the same snapshot, is the copy's, and a stale copy is read again
    and the statement retried. The generic path takes eight round trips (BEGIN, the locking
    SELECT, the UPDATE, three INSERTs, the webhooks, COMMIT). Returns whether the message
    changed."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return message_status_apply(message_id=message.id, status=MessageStatus.SENT,
                                    whatsapp_id=whatsapp_id)
    # The message as the statement leaves it, for the event: the same values as the generic
    # path computes from the locked row (nothing else changes a claimed message's timestamps).
    message.status = MessageStatus.SENT
    message.sent_at = _not_before_earlier_steps(message, timezone.now())
    if whatsapp_id and not message.whatsapp_id:
        message.whatsapp_id = whatsapp_id
    spec = EventSpec(message.account_id, "message.status", message.session_id,
                     message_data(message))
    history = MessageStatusChange(message=message, status=MessageStatus.SENT, detail="")
    for _try in range(_SENT_RECORD_TRIES):
        webhooks = account_webhooks_seen(message.account_id)
        events, deliveries = events_prepare([spec],
                                            hooks_of={message.account_id: webhooks.hooks})
        clauses = [
            ("hooks", webhooks_fingerprint_sql(), [message.account_id]),
            ("changed", _SENT_UPDATE_SQL,
             [MessageStatus.SENT, message.sent_at, message.whatsapp_id, message.id,
              MessageStatus.QUEUED, MessageStatus.SENDING, webhooks.fingerprint]),
        ]
        for index, row in enumerate([history, *events, *deliveries]):
            clauses.append((f"row{index}", *insert_from_sql(row, source="changed")))
        sql = ("WITH " + ", ".join(f"{name} AS ({clause})"  # noqa: S608
                                   for name, clause, _ in clauses)
               + " SELECT (SELECT count(*) FROM changed), (SELECT fingerprint FROM hooks)")
        with prepared_cursor() as cursor:
            cursor.execute(sql, [value for _, _, params in clauses for value in params])
            updated, fingerprint = cursor.fetchone()
        if fingerprint == webhooks.fingerprint:
            if updated:
                MESSAGE_STATUS.labels(MessageStatus.SENT).inc()
                deliveries_schedule(deliveries)
            return updated == 1
        account_webhooks_forget(message.account_id)  # stale: nothing was written
    return message_status_apply(message_id=message.id, status=MessageStatus.SENT,
                                whatsapp_id=whatsapp_id)


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


def message_fail(*, message_id: str, code: str, reason: str) -> bool:
    return message_status_apply(message_id=message_id, status=MessageStatus.FAILED,
                                error_code=code, error_message=reason)


def message_receive(*, session_id: str, whatsapp_id: str, from_number: str, text: str,
                    at: datetime | None = None, type: str = "text",
                    media: dict | None = None) -> Message | None:
    """Store an inbound message once (the engine may report it twice) and emit
    `message.received`."""
    session = Session.objects.filter(pk=session_id, deleted_at__isnull=True).first()
    if session is None:
        return None
    try:
        with transaction.atomic():
            media = media or {}
            message = Message.objects.create(
                account_id=session.account_id, session=session, direction="inbound",
                type=type, from_number=from_number, to_number=session.phone_number,
                text=text if type == "text" else "", caption=text if type != "text" else "",
                status=MessageStatus.RECEIVED, whatsapp_id=whatsapp_id,
                media_file=media.get("file", ""), media_size=media.get("size"),
                media_mime_type=media.get("mimeType", ""),
            )
            MessageStatusChange.objects.create(message=message, status=MessageStatus.RECEIVED)
            MESSAGE_STATUS.labels("received").inc()
            event_record(account_id=session.account_id, type="message.received",
                         session_id=session.id, data=message_data(message))
    except IntegrityError:
        return Message.objects.filter(session=session, direction="inbound",
                                      whatsapp_id=whatsapp_id).first()
    return message
