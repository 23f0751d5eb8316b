"""Writes for sessions: create, delete, expire, and the status transitions the engine events
drive. Every status change is recorded in the session's history and emits `session.status`."""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from api.errors import ApiError, E
from api.serializers import iso
from sessions_app.engines import base, get_engine
from sessions_app.engines.base import EngineError
from sessions_app.event_consumer import engine_events_drain
from sessions_app.models import Session, SessionStatus, SessionStatusChange
from sessions_app.selectors import session_cache_forget, session_count_live
from webhooks.outbox import event_record

logger = logging.getLogger(__name__)

S = SessionStatus

# Which status may follow which. Anything else an engine reports is stale or out of order.
# `starting` follows any status but `logged_out`: a restart reconnects from wherever it is.
TRANSITIONS: dict[str, set[str]] = {
    S.STARTING: {S.QR_PENDING, S.CONNECTED, S.DISCONNECTED, S.FAILED, S.EXPIRED, S.LOGGED_OUT},
    S.QR_PENDING: {S.QR_PENDING, S.STARTING, S.CONNECTED, S.FAILED, S.EXPIRED, S.LOGGED_OUT},
    S.CONNECTED: {S.DISCONNECTED, S.STARTING, S.FAILED, S.LOGGED_OUT},
    S.DISCONNECTED: {S.CONNECTED, S.STARTING, S.FAILED, S.LOGGED_OUT},
    S.EXPIRED: {S.LOGGED_OUT, S.STARTING},
    S.FAILED: {S.LOGGED_OUT, S.STARTING},
    S.LOGGED_OUT: set(),
}


def session_event_data(session: Session, *, reason: str = "") -> dict:
    """The `data` of a `session.status` event."""
    data = {
        "id": session.id,
        "name": session.name,
        "status": session.status,
        "phoneNumber": session.phone_number or None,
        "lastError": session.last_error or None,
        "lastErrorCode": session.last_error_code or None,
        "reconnectAt": iso(session.reconnect_at),
        "createdAt": iso(session.created_at),
        "connectedAt": iso(session.connected_at),
        "disconnectedAt": iso(session.disconnected_at),
        "reason": reason or None,
    }
    if session.status == S.QR_PENDING and session.qr_code:
        data["qr"] = {"code": session.qr_code, "expiresAt": iso(session.qr_expires_at)}
        data["pairingCode"] = session.pairing_code or None
    return data


def session_transition(
    session: Session,
    to_status: str,
    *,
    reason: str = "",
    at: datetime | None = None,
    announce: bool = False,
    **fields,
) -> bool:
    """Move a (locked) session to `to_status` and save `fields`. Returns False, changing
    nothing, when the transition is not allowed. `announce` emits `session.status` even
    without a status change (a new QR code)."""
    from_status = session.status
    if to_status != from_status and to_status not in TRANSITIONS[from_status]:
        logger.info("session %s: ignored %s -> %s (%s)", session.id, from_status, to_status,
                    reason)
        return False
    if to_status == from_status and not announce and not fields:
        return True
    session.status = to_status
    session.status_changed_at = at or timezone.now()
    for name, value in fields.items():
        setattr(session, name, value)
    session.save(update_fields=["status", "status_changed_at", *fields])
    session_cache_forget(account_id=session.account_id, session_id=session.id)
    if to_status != from_status:
        SessionStatusChange.objects.create(
            session=session, from_status=from_status, to_status=to_status, reason=reason[:300]
        )
    if to_status != from_status or announce:
        event_record(
            account_id=session.account_id,
            type="session.status",
            session_id=session.id,
            data=session_event_data(session, reason=reason),
        )
    return True


def session_create(*, account_id: str, name: str = "", phone_number: str | None = None) -> Session:
    """Create a session and start logging it in. Exact under concurrent creates: the account
    row is locked while the live sessions are counted (SQLite ignores FOR UPDATE; there every
    transaction holds the database's write lock from its BEGIN, see config/settings.py)."""
    engine = get_engine()
    with transaction.atomic():
        account = Account.objects.select_for_update().select_related("plan").get(pk=account_id)
        if session_count_live(account_id=account.id) >= account.plan.max_sessions:
            raise ApiError(
                E.session_limit_reached,
                reason=f"Your plan allows {account.plan.max_sessions} session(s).",
            )
        session = Session.objects.create(
            account=account, name=name, engine=engine.name,
            requested_phone_number=phone_number or "",
        )
        SessionStatusChange.objects.create(session=session, to_status=S.STARTING,
                                           reason="created")
        event_record(account_id=account.id, type="session.status", session_id=session.id,
                     data=session_event_data(session, reason="created"))
    try:
        engine.start(session.id, phone_number=phone_number)
    except EngineError as exc:
        with transaction.atomic():
            locked = Session.objects.select_for_update().get(pk=session.id)
            session_transition(locked, S.FAILED, reason="engine unavailable",
                               last_error=f"The engine could not start the session: {exc}",
                               last_error_code=base.ENGINE_UNREACHABLE)
        raise ApiError(
            E.service_unavailable, reason="The WhatsApp engine is unavailable.",
            headers={"Retry-After": str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)},
        ) from exc
    return session_after_engine_command(session, until=lambda s: s.status != S.STARTING)


def session_restart(*, session: Session, reason: str = "restarted") -> Session:
    """Reconnect now, from whatever status but `logged_out` (`session_logged_out`). A session
    with a stored login resumes it (no QR code); one without, or an expired one, logs in
    afresh with a new QR code and deadline, under the same id."""
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.id)
        if locked.deleted_at is not None:
            raise ApiError(E.session_not_found, field="sessionId")
        if locked.status == S.LOGGED_OUT:
            raise ApiError(E.session_logged_out)
        resume = bool(locked.engine_device) and locked.status != S.EXPIRED
        session_transition(locked, S.STARTING, reason=reason, qr_code="", qr_expires_at=None,
                           pairing_code="", last_error="", last_error_code="",
                           reconnect_at=None)
    try:
        get_engine().start(session.id, phone_number=locked.requested_phone_number or None,
                           device=locked.engine_device if resume else None)
    except EngineError as exc:
        # A resuming session is picked up by the engine when it is back; a new login
        # expires at its QR deadline.
        raise ApiError(
            E.service_unavailable, reason="The WhatsApp engine is unavailable.",
            headers={"Retry-After": str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)},
        ) from exc
    return session_after_engine_command(locked, until=lambda s: s.status != S.STARTING)


def session_after_engine_command(session: Session, *, until=None,
                                 timeout: float = 3.0) -> Session:
    """Apply the events the engine has already reported, then read the session again.

    An engine that reports synchronously (the sandbox) has put its events on the bus already:
    they are applied here, or by a worker's consumer that claimed them first, so wait (bounded)
    until `until(session)` holds and the answer shows the effect. A real engine's events come
    later; its session is answered as it is (`starting`, a `session.status` webhook follows).
    """
    engine_events_drain()
    session.refresh_from_db()
    if until is None or not get_engine().reports_synchronously:
        return session
    deadline = time.monotonic() + timeout
    while not until(session) and time.monotonic() < deadline:
        time.sleep(0.02)
        engine_events_drain()
        session.refresh_from_db()
    return session


def session_delete(*, session: Session) -> None:
    """Log the session out and remove it from the API (the row stays for support)."""
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.id)
        if locked.deleted_at is not None:
            return
        session_transition(locked, S.LOGGED_OUT, reason="deleted through the API",
                           deleted_at=timezone.now(), qr_code="", pairing_code="",
                           reconnect_at=None, engine_device="")
        transaction.on_commit(lambda: _engine_logout(locked.id))


def _engine_logout(session_id: str) -> None:
    try:
        get_engine().logout(session_id)
    except EngineError:
        logger.warning("engine could not log session %s out", session_id, exc_info=True)


def session_expire(*, session_id: str) -> bool:
    """Expire a session whose QR code was not scanned in time. True if it expired now."""
    with transaction.atomic():
        session = Session.objects.select_for_update().filter(pk=session_id).first()
        if session is None or not _qr_overdue(session):
            return False
        expired = session_transition(
            session, S.EXPIRED, reason="QR code not scanned in time", qr_code="",
            pairing_code="", last_error="The QR code was not scanned in time.",
            last_error_code=base.LOGIN_TIMEOUT, reconnect_at=None,
        )
    if expired:
        try:
            get_engine().stop(session_id)
        except EngineError:
            logger.warning("engine could not stop expired session %s", session_id)
    return expired


def _qr_overdue(session: Session) -> bool:
    if session.deleted_at is not None:
        return False
    now = timezone.now()
    if session.status == S.QR_PENDING:
        return session.qr_expires_at is not None and session.qr_expires_at <= now
    # A new login that never produced a QR code gives up at the same deadline, counted from
    # its start. One resuming a stored login has no deadline: its engine keeps reconnecting.
    return session.status == S.STARTING and not session.engine_device and (
        session.status_changed_at + timedelta(seconds=settings.QR_TTL_SECONDS) <= now
    )


def sessions_expire_overdue(*, account_id: str | None = None) -> int:
    now = timezone.now()
    overdue = Session.objects.filter(
        deleted_at__isnull=True, status=S.QR_PENDING, qr_expires_at__lte=now
    ) | Session.objects.filter(
        deleted_at__isnull=True, status=S.STARTING, engine_device="",
        status_changed_at__lte=now - timedelta(seconds=settings.QR_TTL_SECONDS),
    )
    if account_id is not None:
        overdue = overdue.filter(account_id=account_id)
    ids = list(overdue.values_list("id", flat=True)[:1000])
    return sum(session_expire(session_id=session_id) for session_id in ids)


def session_scannable_qr(*, session: Session) -> Session:
    """The session, if its QR code can be shown or scanned now; else the documented error."""
    if _qr_overdue(session):
        session_expire(session_id=session.id)
        session.refresh_from_db()
    if session.status == S.QR_PENDING and session.qr_code:
        return session
    if session.status == S.EXPIRED:
        raise ApiError(E.qr_code_expired)
    if session.status == S.STARTING:
        raise ApiError(E.session_starting, headers={"Retry-After": "2"})
    raise ApiError(E.qr_code_unavailable, reason=f"The session is {session.status}.")


def session_require_sendable(*, session: Session, field: str | None = "sessionId") -> None:
    """Raise the documented error unless messages can go out through this session now."""
    if session.status == S.CONNECTED:
        return
    if session.status == S.DISCONNECTED:
        raise ApiError(E.session_disconnected, field=field)
    raise ApiError(E.session_not_connected, field=field,
                   reason=f"The session is {session.status}.")


def engine_unavailable(exc: Exception) -> ApiError:
    return ApiError(E.service_unavailable, reason=f"The WhatsApp engine is unavailable: {exc}",
                    headers={"Retry-After": str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)})


def session_chat_state_send(*, session: Session, to: str, state: str) -> None:
    """Show a chat that the session is typing, recording a voice note, or neither. Sent at
    once, not queued, and not counted as a message."""
    session_require_sendable(session=session, field=None)
    try:
        get_engine().send_chat_state(session.id, to=to, state=state)
    except EngineError as exc:
        raise engine_unavailable(exc) from exc


def session_mark_read(*, session: Session, chat: str, whatsapp_ids: list[str],
                      sender: str | None = None) -> None:
    """Tell WhatsApp that these messages of a chat were read (blue ticks on the sender's
    phone)."""
    session_require_sendable(session=session, field=None)
    try:
        get_engine().mark_read(session.id, chat=chat, whatsapp_ids=whatsapp_ids,
                               sender=sender)
    except EngineError as exc:
        raise engine_unavailable(exc) from exc


def session_update(*, session: Session, name: str | None = None,
                   send_policy: dict | None = None) -> Session:
    """Rename a session or change its send policy (the keys given; `None` values go back to
    the service's defaults). The next send follows it."""
    fields = []
    if name is not None:
        session.name, fields = name, [*fields, "name"]
    if send_policy is not None:
        columns = {"minIntervalSeconds": "send_min_interval",
                   "maxIntervalSeconds": "send_max_interval", "dailyLimit": "send_daily_limit"}
        for key, column in columns.items():
            if key in send_policy:
                setattr(session, column, send_policy[key])
                fields.append(column)
        if (session.send_max_interval is not None
                and session.send_max_interval < session.send_policy()["minIntervalSeconds"]):
            raise ApiError(E.invalid_parameter_value, field="sendPolicy.maxIntervalSeconds",
                           reason="Must be at least minIntervalSeconds.")
    if fields:
        session.save(update_fields=fields)
    return session
