"""Engine events that change sessions. Each runs inside the consumer's transaction."""

import logging
from datetime import datetime, timedelta

from django.conf import settings

from sessions_app.engines import base
from sessions_app.engines.base import EngineEvent
from sessions_app.event_consumer import handler_register
from sessions_app.groups import on_group_participants
from sessions_app.models import Session, SessionStatus
from sessions_app.services import session_transition

logger = logging.getLogger(__name__)
S = SessionStatus


def _locked(event: EngineEvent) -> Session | None:
    session = (
        Session.objects.select_for_update()
        .filter(pk=event.session_id, deleted_at__isnull=True)
        .first()
    )
    if session is None:
        return None
    if event.occurred_at < session.status_changed_at:
        logger.info("stale %s for %s ignored", event.type, session.id)
        return None
    return session


def _login_code(event: EngineEvent, reason: str, **fields) -> None:
    """A QR or pairing code: the session waits to be linked, until one deadline that runs
    from the first code (rotating codes do not extend it)."""
    session = _locked(event)
    if session is None or session.status not in (S.STARTING, S.QR_PENDING):
        return
    expires_at = session.qr_expires_at or event.occurred_at + timedelta(
        seconds=settings.QR_TTL_SECONDS)
    # A code means the engine reached WhatsApp: an earlier failed attempt is over.
    session_transition(session, S.QR_PENDING, reason=reason, at=event.occurred_at,
                       announce=True, qr_expires_at=expires_at, last_error="",
                       last_error_code="", reconnect_at=None, **fields)


def on_qr(event: EngineEvent) -> None:
    _login_code(event, "QR code issued", qr_code=event.data["code"])


def on_pairing_code(event: EngineEvent) -> None:
    _login_code(event, "pairing code issued", pairing_code=event.data["code"])


def on_paired(event: EngineEvent) -> None:
    device = event.data.get("deviceJid")
    if device:
        Session.objects.filter(pk=event.session_id).update(engine_device=device)


def on_connected(event: EngineEvent) -> None:
    session = _locked(event)
    if session is None:
        return
    if event.data.get("deviceJid"):
        session.engine_device = event.data["deviceJid"]
        session.save(update_fields=["engine_device"])
    session_transition(
        session, S.CONNECTED, reason="connected", at=event.occurred_at,
        phone_number=event.data.get("phoneNumber") or session.phone_number,
        connected_at=event.occurred_at, qr_code="", pairing_code="", last_error="",
        last_error_code="", reconnect_at=None,
    )


def on_disconnected(event: EngineEvent) -> None:
    """A transient loss: the engine reconnects by itself (at `reconnectAt`, when it says)."""
    session = _locked(event)
    if session is None or session.status in (S.EXPIRED, S.FAILED, S.LOGGED_OUT):
        return
    reason = str(event.data.get("reason") or "the connection was lost")
    code = event.data.get("code") or base.CONNECTION_LOST
    reconnect_at = event.data.get("reconnectAt")
    fields = {"last_error": reason, "last_error_code": code,
              "reconnect_at": datetime.fromisoformat(reconnect_at) if reconnect_at else None}
    if session.status in (S.CONNECTED, S.STARTING) and (
            session.status == S.CONNECTED or session.engine_device):
        # It had a login (or is resuming one): it is disconnected until it reconnects.
        session_transition(session, S.DISCONNECTED, reason=reason[:300], at=event.occurred_at,
                           disconnected_at=event.occurred_at, **fields)
    else:
        # Still disconnected, or a new login whose engine cannot reach WhatsApp yet: the
        # status stays, and keeps its time (the QR deadline of a new login runs from it).
        session_transition(session, session.status, reason=reason[:300],
                           at=session.status_changed_at,
                           announce=code != session.last_error_code, **fields)


def on_logged_out(event: EngineEvent) -> None:
    session = _locked(event)
    if session is None:
        return
    reason = str(event.data.get("reason") or "logged out")
    session_transition(session, S.LOGGED_OUT, reason=reason[:300], at=event.occurred_at,
                       disconnected_at=event.occurred_at, qr_code="", pairing_code="",
                       last_error=reason, reconnect_at=None, engine_device="",
                       last_error_code=event.data.get("code") or base.LOGGED_OUT_BY_PHONE)


def on_failed(event: EngineEvent) -> None:
    session = _locked(event)
    if session is None:
        return
    error = str(event.data.get("error", "the engine failed"))
    session_transition(session, S.FAILED, reason=error[:300], at=event.occurred_at,
                       last_error=error, reconnect_at=None,
                       last_error_code=event.data.get("code") or base.ENGINE_ERROR)


def handlers_register() -> None:
    """Called when the app starts (before messaging's: a session connects before its sends)."""
    handler_register(base.QR, on_qr)
    handler_register(base.PAIRING_CODE, on_pairing_code)
    handler_register(base.PAIRED, on_paired)
    handler_register(base.CONNECTED, on_connected)
    handler_register(base.DISCONNECTED, on_disconnected)
    handler_register(base.LOGGED_OUT, on_logged_out)
    handler_register(base.FAILED, on_failed)
    handler_register(base.GROUP_PARTICIPANTS, on_group_participants)
