"""The per-session sender: drains one session's queue in FIFO order through its engine.

- One sender per session at a time: a lease on the session row, claimed by a conditional
  UPDATE that must change exactly one row, renewed while sending, expiring if the worker dies.
- Each message is claimed by a status transition (`queued` -> `sending`) before it is sent, so
  two senders can never send it twice; the engine gets our message id, so a resend after a
  crash is recognised as the same message.
- Pacing, by the session's send policy: a pause drawn between its two intervals after each
  send (SEND_MIN_INTERVAL_SECONDS by default), and at most its daily limit of sends a UTC day,
  across runs (the next allowed time and the day's count are kept on the session row). A run
  never sleeps through a pause longer than INLINE_PAUSE_SECONDS: it keeps its lease and
  schedules its own continuation for when the next send may go, so a worker's few processes
  pace any number of sessions at once.
- A run drains many messages (a task per message would cap the pipeline at the broker's task
  rate) and hands over to a fresh task after a time budget. Unpaced, it claims up to
  CLAIM_BATCH at a time; what it claimed but did not send goes back to the queue untried.
"""

import functools
import logging
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from infra.sql import statements_prepared
from infra.wakeups import wakeups_held
from messaging.chats import chats_touch_claimed, claimed_chats_sql
from messaging.media import MediaError, media_download
from messaging.models import ACTION_TYPES, Message, MessageStatus
from messaging.services import (
    StatusUpdate,
    message_action_apply,
    message_fail,
    message_statuses_apply,
    schedule_session_sender,
    session_sender_woken,
)
from sessions_app.engines import get_engine
from sessions_app.engines.base import EngineUnavailable, Quote, SendRejected, SentMessage
from sessions_app.models import Session, SessionStatus
from webhooks.outbox import webhooks_read_once

logger = logging.getLogger(__name__)

RUN_BUDGET_SECONDS = 20
# A paced run sleeps through a pause up to this long; a longer one ends it (see above): asleep,
# it would hold one of the worker's processes, and a worker of N processes could pace only N
# sessions at a time (N messages a second at the real engine's 1 s), webhooks waiting behind.
INLINE_PAUSE_SECONDS = 0.05


# The lease's statements, written out: a paced send runs each of them once (a run per
# message), and through the ORM they cost it more CPU than its claim and its send.
_MESSAGES, _SESSIONS = Message._meta.db_table, Session._meta.db_table
_LEASE_TAKE_SQL = f"""
UPDATE {_SESSIONS} SET sender_lease_owner = %s, sender_lease_until = %s
WHERE id = %s AND (sender_lease_until IS NULL OR sender_lease_until < %s
                   OR sender_lease_owner = %s)
RETURNING next_send_at, send_min_interval, send_max_interval, send_daily_limit, sends_day,
          sends_today
"""  # noqa: S608
_LEASE_KEEP_SQL = f"""
UPDATE {_SESSIONS} SET sender_lease_until = %s, next_send_at = %s, sends_day = %s,
                       sends_today = %s
WHERE id = %s AND sender_lease_owner = %s
AND EXISTS (SELECT 1 FROM {_MESSAGES} WHERE session_id = %s
            AND direction = 'outbound' AND status = 'queued')
RETURNING 1
"""  # noqa: S608
_LEASE_RELEASE_SQL = f"""
UPDATE {_SESSIONS} SET sender_lease_owner = '', sender_lease_until = NULL, next_send_at = %s,
                       sends_day = %s, sends_today = %s
WHERE id = %s AND sender_lease_owner = %s
"""  # noqa: S608


def _db_datetime(value: datetime | None) -> str | datetime | None:
    return None if value is None else connection.ops.adapt_datetimefield_value(value)


def _datetime_read(value: str | datetime | None) -> datetime | None:
    """A datetime read by a raw cursor: aware from PostgreSQL; from SQLite (the embedded
    mode), naive in UTC, as Django stores it there, or text."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


@dataclass
class _Pace:
    """When the session may send next, by its send policy: a pause drawn between its two
    intervals after each send (the service's SEND_MIN_INTERVAL_SECONDS by default), and no
    more than its daily limit of sends a UTC day, the rest waiting for the next day."""

    next_send_at: datetime | None
    low: float
    high: float
    daily_limit: int | None
    day: date | None
    count: int

    @property
    def paced(self) -> bool:
        """Sends go one at a time, each claimed after the pause (none: claimed ahead)."""
        return self.high > 0 or self.daily_limit is not None

    def next_at(self) -> datetime | None:
        """The next send's earliest time: the day's limit reached, the next UTC midnight."""
        now = timezone.now()
        if self.daily_limit is not None and self.day == now.date() \
                and self.count >= self.daily_limit:
            return _next_utc_midnight(now)
        return self.next_send_at

    def wait(self) -> float:
        at = self.next_at()
        return 0.0 if at is None else (at - timezone.now()).total_seconds()

    def sent(self) -> None:
        now = timezone.now()
        if self.day != now.date():
            self.day, self.count = now.date(), 0
        self.count += 1
        if self.high > 0:
            # Not a secret: a pause that looks human to WhatsApp.
            pause = random.uniform(self.low, self.high)  # noqa: S311
            self.next_send_at = now + timedelta(seconds=pause)

    def resumes_at(self) -> datetime:
        """When the paused run goes on (what its lease is held until)."""
        now = timezone.now()
        return max(self.next_at() or now, now)


def session_next_send_at(session: Session) -> datetime | None:
    """When the session's next send may go, by its policy (None: now)."""
    policy = session.send_policy()
    pace = _Pace(session.next_send_at, policy["minIntervalSeconds"],
                 policy["maxIntervalSeconds"], policy["dailyLimit"], session.sends_day,
                 session.sends_today)
    at = pace.next_at()
    return at if at is not None and at > timezone.now() else None


def _next_utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def _lease_take(session_id: str, owner: str) -> _Pace | None:
    """Take the session's lease, free, run out or already ours (a renewal, a paused run's
    continuation), and read its pace in the same statement; None if another run holds it."""
    now = timezone.now()
    until = now + timedelta(seconds=settings.SENDER_LEASE_SECONDS)
    with statements_prepared(), connection.cursor() as cursor:
        cursor.execute(_LEASE_TAKE_SQL, [owner, _db_datetime(until), session_id,
                                         _db_datetime(now), owner])
        row = cursor.fetchone()
    if row is None:
        return None
    next_send_at, low, high, daily_limit, day, count = row
    low = settings.SEND_MIN_INTERVAL_SECONDS if low is None else low
    high = max(low, low if high is None else high)
    if isinstance(day, str):  # SQLite
        day = date.fromisoformat(day)
    return _Pace(_datetime_read(next_send_at), low, high, daily_limit, day, count or 0)


def _lease_release(session_id: str, owner: str, pace: _Pace) -> None:
    with statements_prepared(), connection.cursor() as cursor:
        cursor.execute(_LEASE_RELEASE_SQL, [_db_datetime(pace.next_send_at), pace.day,
                                            pace.count, session_id, owner])


def _lease_keep(session_id: str, owner: str, pace: _Pace) -> bool:
    """Hold the lease through a pause if a message waits (the queue's partial index, its
    condition written literally as in `_claim_sql`): until the run resumes, plus a lease's
    length for the continuation to start (if it never does, the lease runs out and the
    sweeper takes over). False, the lease untouched, when none waits."""
    until = pace.resumes_at() + timedelta(seconds=settings.SENDER_LEASE_SECONDS)
    with statements_prepared(), connection.cursor() as cursor:
        cursor.execute(_LEASE_KEEP_SQL, [_db_datetime(until), _db_datetime(pace.next_send_at),
                                         pace.day, pace.count, session_id, owner, session_id])
        return cursor.fetchone() is not None


assert MessageStatus.QUEUED == "queued"


def _has_queued(session_id: str) -> bool:
    """Whether the session has a message waiting, read from the partial index of queue heads
    (its condition written literally, as in `_claim_sql`): a paced run asks after each send."""
    with statements_prepared(), connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {_MESSAGES} WHERE session_id = %s AND "  # noqa: S608
                       "direction = 'outbound' AND status = 'queued' LIMIT 1", [session_id])
        return cursor.fetchone() is not None


# A claimed message's columns, all of them, for the model built from each row.
_MESSAGE_FIELDS = Message._meta.concrete_fields


@functools.cache
def _claim_sql(vendor: str) -> str:
    """The common step of a run in one statement: if the session is still connected, move the
    ready prefix of the head of its queue (up to %s messages, stopping before one that waits
    for its retry: FIFO) from queued to sending and return it.

    The head is found in the partial index `message_outbound_queue`, its condition written
    literally so that any plan uses it. On PostgreSQL the head's rows are locked as they are
    read, which rechecks them against a concurrent change (the sweeper, a retry by support),
    so the UPDATE needs no condition on status: one the planner would use, on a table without
    statistics yet, to scan every queued message. SQLite has one writer at a time and takes
    the recheck in the UPDATE. On PostgreSQL the same statement makes the claimed messages
    their chats' last (`claimed_chats_sql`); on SQLite, which has no UPDATE in a WITH clause,
    the caller does. Table and column names come from the models; every value is a
    parameter."""
    postgresql = vendor == "postgresql"
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _MESSAGE_FIELDS)
    head = f"""head AS (
    SELECT id, next_attempt_at FROM {_MESSAGES}
    WHERE session_id = %s AND direction = 'outbound' AND status = 'queued'
    ORDER BY id LIMIT %s {"FOR UPDATE" if postgresql else ""}
)"""  # noqa: S608
    update = _claim_update_sql(postgresql, columns)
    if not postgresql:
        return f"WITH {head} {update}"
    chats = claimed_chats_sql("claimed")
    return f"WITH {head}, claimed AS ({update}), chats AS ({chats}) SELECT {columns} FROM claimed"  # noqa: S608


def _claim_update_sql(postgresql: bool, columns: str) -> str:
    return f"""
UPDATE {_MESSAGES} SET status = %s, sending_started_at = %s, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM head
    WHERE NOT EXISTS (SELECT 1 FROM head AS waiting
                      WHERE waiting.next_attempt_at > %s AND waiting.id <= head.id)
)
{"" if postgresql else "AND status = 'queued'"}
AND EXISTS (SELECT 1 FROM {_SESSIONS}
            WHERE id = %s AND status = %s AND deleted_at IS NULL)
RETURNING {columns}
"""  # noqa: S608


# Messages claimed per statement. Claiming ahead saves a round trip per message, but only
# when sends are not paced: a paced message would wait in `sending` behind the ones before it.
CLAIM_BATCH = 20


def _claim(session_id: str, pace: _Pace) -> list[Message]:
    """Claim the next messages to send, in queue order, or none when none is ready now (why,
    the caller finds out with the slower queries)."""
    count = 1 if pace.paced else CLAIM_BATCH
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [session_id, count, MessageStatus.SENDING, now, now, session_id,
              SessionStatus.CONNECTED]
    with statements_prepared():
        claimed = list(Message.objects.raw(_claim_sql(connection.vendor), params))
    if claimed and connection.vendor != "postgresql":
        chats_touch_claimed(claimed)
    # Ids sort by creation in any collation (digits and capitals of one length, one prefix).
    return sorted(claimed, key=lambda message: message.id)


def _unclaim(messages: list[Message]) -> None:
    """Give claimed messages that were not sent back to the queue, as if never claimed."""
    if messages:
        Message.objects.filter(pk__in=[message.pk for message in messages],
                               status=MessageStatus.SENDING).update(
            status=MessageStatus.QUEUED, attempts=F("attempts") - 1)


def session_sender_run(*, session_id: str, owner: str | None = None) -> str:
    """Send what is queued for the session. Returns why it stopped (for logs and tests).
    `owner`: the lease of the paused run that this one continues."""
    owner = owner or uuid.uuid4().hex
    pace = _lease_take(session_id, owner)
    if pace is None:
        # The session's wake-up marker stays set: the run holding the lease lets it go when
        # it ends and looks at the queue once more. Let go here, every message accepted while
        # a paced run pauses would start a run that finds the lease taken too.
        return "busy"
    outcome = "failed"  # until _drain returns
    try:
        outcome = _drain(session_id, owner, pace)
    finally:
        # Paused, lease and marker are kept for the continuation, if a message waits.
        if outcome == "paused" and not _lease_keep(session_id, owner, pace):
            outcome = "idle"
        if outcome != "paused":
            _lease_release(session_id, owner, pace)
            session_sender_woken(session_id)  # a message accepted from now on wakes a run
    if outcome == "paused":
        schedule_session_sender(session_id, countdown=max(pace.wait(), 0.0), owner=owner)
    # The next run is woken only now that the lease is free: woken before, it could start,
    # find the lease still taken and end, leaving the queue to the periodic sweeper.
    elif outcome == "budget" or (outcome == "idle" and _has_queued(session_id)):
        # (Idle: a message committed before the marker was let go, its wake-up dropped.)
        schedule_session_sender(session_id)
    return outcome


def _drain(session_id: str, owner: str, pace: _Pace) -> str:
    engine = get_engine()
    started = time.monotonic()
    lease_renewed = time.monotonic()
    claimed: deque[Message] = deque()
    try:
        while True:
            if time.monotonic() - started > RUN_BUDGET_SECONDS:
                return "budget"  # the caller hands over to a fresh run
            if not claimed:
                # Paced (one claimed at a time), the pause comes before the claim.
                wait = pace.wait()
                if wait > INLINE_PAUSE_SECONDS:
                    return "paused"  # if a message waits: the caller keeps the lease
                if wait > 0:
                    time.sleep(wait)
                # Claimed only while the session is connected (checked in the same
                # statement): a session that went away stops its sender at the next claim.
                claimed.extend(_claim(session_id, pace))
            if not claimed:
                outcome = _why_nothing_ready(session_id)
                if outcome is None:
                    continue  # the head changed under us (retried, failed by the sweeper)
                return outcome
            # The wake-ups of the claimed messages (the event consumer's, the webhooks'
            # delivery runs) are sent, each once, when the last of them is done. Their work
            # waits that long, a few sends (it is on the bus and in the database already; a
            # wake-up lost to a crash is the sweepers' to make up). The account's webhooks,
            # which each `sent` event is matched against, are read once for the claim.
            with wakeups_held(), webhooks_read_once():
                while claimed:
                    message = claimed.popleft()
                    if time.monotonic() - lease_renewed > settings.SENDER_LEASE_SECONDS / 4:
                        _lease_take(session_id, owner)  # renew, well before it runs out
                        lease_renewed = time.monotonic()
                    settled = _deliver(engine, session_id, message)
                    pace.sent()
                    if not settled:
                        # It waits for a retry, and everything behind it waits too: FIFO.
                        _unclaim(list(claimed))
                        claimed.clear()
    finally:
        _unclaim(list(claimed))  # a run that stops early leaves nothing claimed


# The session's state and the head of its queue (id, retry time), in one statement: every run
# ends with it. The head is read from the partial index of queue heads, as in `_claim_sql`.
_HEAD = (f"FROM {_MESSAGES} WHERE session_id = %s AND direction = 'outbound' "
         "AND status = 'queued' ORDER BY id LIMIT 1")
_NOTHING_READY_SQL = f"""
SELECT status, deleted_at, (SELECT id {_HEAD}), (SELECT next_attempt_at {_HEAD})
FROM {_SESSIONS} WHERE id = %s
"""  # noqa: S608


def _why_nothing_ready(session_id: str) -> str | None:
    """Why a claim found nothing, or None if it should just claim again."""
    with statements_prepared(), connection.cursor() as cursor:
        cursor.execute(_NOTHING_READY_SQL, [session_id, session_id, session_id])
        row = cursor.fetchone()
    if row is None or row[1] is not None or row[0] != SessionStatus.CONNECTED:
        return "not_connected"  # queued messages wait for the session to come back
    head_id, retry_at = row[2], _datetime_read(row[3])
    if head_id is None:
        return "idle"
    if retry_at and retry_at > timezone.now():
        # The head waits for its retry and everything behind it waits too: FIFO.
        delay = (retry_at - timezone.now()).total_seconds()
        schedule_session_sender(session_id, countdown=max(delay, 0.1))
        return "backoff"
    return None


def _quoted(message_id: str | None) -> Quote | None:
    """A message as WhatsApp knows it, for a reply to quote or an action (reaction, edit,
    deletion) to name. One that never reached WhatsApp (it failed) has nothing to name: a
    reply goes without the quote, an action fails."""
    if message_id is None:
        return None
    quoted = (Message.objects.filter(pk=message_id)
              .only("direction", "type", "from_number", "text", "caption", "whatsapp_id")
              .first())
    if quoted is None or not quoted.whatsapp_id:
        return None
    return Quote(whatsapp_id=quoted.whatsapp_id, sender=quoted.from_number,
                 from_me=quoted.direction == "outbound",
                 text=quoted.text or quoted.caption or f"[{quoted.type}]")


def _send_action(engine, session_id: str, message: Message) -> SentMessage:
    target = _quoted(message.content["messageId"])
    if target is None:
        raise SendRejected("The message it acts on never reached WhatsApp.")
    if message.type == "reaction":
        return engine.send_reaction(session_id, message_id=message.id, to=message.to_number,
                                    target=target, emoji=message.content["emoji"])
    if message.type == "edit":
        return engine.send_edit(session_id, message_id=message.id, to=message.to_number,
                                target_whatsapp_id=target.whatsapp_id,
                                text=message.content["text"])
    return engine.send_revoke(session_id, message_id=message.id, to=message.to_number,
                              target_whatsapp_id=target.whatsapp_id)


def _send_content(engine, session_id: str, message: Message) -> SentMessage:
    """Hand a message's content to the engine; raises MediaError for a file it cannot get."""
    quote = _quoted(message.reply_to_id)
    if message.type == "text":
        return engine.send_text(session_id, message_id=message.id, to=message.to_number,
                                text=message.text, reply_to=quote)
    if message.type == "location":
        location = message.content
        return engine.send_location(
            session_id, message_id=message.id, to=message.to_number,
            latitude=location["latitude"], longitude=location["longitude"],
            name=location.get("name"), address=location.get("address"), reply_to=quote)
    if message.type == "contact":
        return engine.send_contacts(
            session_id, message_id=message.id, to=message.to_number,
            contacts=[{"name": card["name"], "vcard": card["vcard"]}
                      for card in message.content], reply_to=quote)
    data, mime_type = media_download(message)
    return engine.send_media(
        session_id, message_id=message.id, to=message.to_number, kind=message.type,
        data=data, mime_type=mime_type, filename=message.media_filename or None,
        caption=message.caption or None, reply_to=quote)


def _deliver(engine, session_id: str, message: Message) -> bool:
    """Send one claimed message and record the outcome. Returns False when it was put back
    for a retry (the messages behind it must wait), True when it is settled: sent or failed."""
    try:
        if message.type in ACTION_TYPES:
            result = _send_action(engine, session_id, message)
            message_action_apply(action=message)
        else:
            result = _send_content(engine, session_id, message)
    except MediaError as error:
        message_fail(message_id=message.id, code=error.code, reason=error.reason)
        return True
    except SendRejected as rejected:
        message_fail(message_id=message.id, code=rejected.code, reason=rejected.reason)
        return True
    except EngineUnavailable as error:
        _retry_later(message, str(error))
        return False
    except Exception as error:  # an unknown failure is retried, never lost; attempts cap it
        logger.exception("sending %s failed unexpectedly", message.id)
        _retry_later(message, f"unexpected error: {type(error).__name__}")
        return False
    # Recorded at once, message by message: a message sent but not yet recorded is sent
    # again after a crash, and a real engine may not recognise the resend.
    message_statuses_apply([StatusUpdate(message.id, MessageStatus.SENT,
                                          whatsapp_id=result.whatsapp_id)], known=[message])
    return True


def _retry_later(message: Message, reason: str) -> None:
    attempts = Message.objects.values_list("attempts", flat=True).get(pk=message.pk)
    if attempts >= settings.SEND_MAX_ATTEMPTS:
        message_fail(message_id=message.id, code="message_sending_failed",
                     reason=f"Not sent after {attempts} attempts: {reason}")
        return
    delay = min(2 ** attempts, 300)
    Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
        status=MessageStatus.QUEUED, next_attempt_at=timezone.now() + timedelta(seconds=delay),
        error_message=reason[:500],
    )


def messages_sweep() -> dict[str, int]:
    """The safety net, run periodically: requeue what a dead sender left in `sending`, fail
    what waited too long, and wake the sender of every session with ready messages and no
    live sender."""
    now = timezone.now()
    requeued = Message.objects.filter(
        status=MessageStatus.SENDING,
        sending_started_at__lt=now - timedelta(seconds=settings.MESSAGE_SENDING_TIMEOUT_SECONDS),
    ).update(status=MessageStatus.QUEUED)
    # Only where the session is away: behind a connected session's daily limit, a message
    # waits for its day however long the queue is.
    expired_ids = list(
        Message.objects.filter(
            status=MessageStatus.QUEUED, direction="outbound",
            created_at__lt=now - timedelta(seconds=settings.MESSAGE_QUEUE_MAX_AGE_SECONDS),
        ).exclude(session__status=SessionStatus.CONNECTED).values_list("id", flat=True)[:1000]
    )
    for message_id in expired_ids:
        message_fail(
            message_id=message_id, code="message_sending_failed",
            reason="Not sent within the queue's maximum age: the session was not connected.",
        )
    # Not those whose sender holds its lease (sending, or paused between two paced sends):
    # it sees the queue through; if it died, its lease runs out and a later sweep wakes it.
    ready_sessions = set(
        Message.objects.filter(status=MessageStatus.QUEUED, direction="outbound",
                               session__status=SessionStatus.CONNECTED)
        .exclude(session__sender_lease_until__gt=now)
        .values_list("session_id", flat=True).distinct()[:10_000]
    )
    for session_id in ready_sessions:
        # Not deduplicated: a wake-up marker left by a killed worker must not stall a session.
        schedule_session_sender(session_id, dedupe=False)
    return {"requeued": requeued, "expired": len(expired_ids), "woken": len(ready_sessions)}
