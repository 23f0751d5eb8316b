"""Sessions: create one, watch its QR code and status live, restart or delete it; its chats
and its groups' members, as last known."""

import re

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from api.errors import ApiError, E
from api.phones import normalize_phone_number
from api.serializers import iso
from dashboard.access import (
    allow_methods,
    error_context,
    form_error_context,
    member_view,
    render_error,
)
from dashboard.forms import SessionCreateForm
from messaging.selectors import chats_data, chats_of_session
from sessions_app.models import Group, Session, SessionStatus
from sessions_app.qr import qr_data_url
from sessions_app.selectors import session_get, sessions_visible
from sessions_app.services import (
    session_create,
    session_delete,
    session_restart,
    sessions_expire_overdue,
)

S = SessionStatus
# Where the page offers a restart (the service takes one from any status but logged_out).
RESTART_OFFERED = (S.DISCONNECTED, S.EXPIRED, S.FAILED)


# What happened, in words, for each `lastErrorCode` of a session that is not connected.
_ENDED_WORDS = {
    "login_timeout": "The QR code was not scanned in time.",
    "logged_out_by_phone": "The phone unlinked this device (WhatsApp > Linked devices).",
    "stream_replaced": "This number was opened in another WhatsApp Web client, which took "
                       "over.",
    "temporarily_banned": "WhatsApp banned this number for a while.",
    "client_outdated": "WhatsApp refused this version of the engine; it needs an update.",
    "engine_error": "The engine failed.",
    "engine_unreachable": "The engine process stopped.",
    "connection_lost": "The connection to WhatsApp dropped.",
}
# Statuses the page explains (a restart is offered for all but logged_out).
ENDED = (*RESTART_OFFERED, S.LOGGED_OUT)


def _ended_text(session: Session) -> str:
    if session.status == S.EXPIRED:
        return _ENDED_WORDS["login_timeout"]
    said = _ENDED_WORDS.get(session.last_error_code) or session.last_error or "No reason given."
    if session.status == S.DISCONNECTED:
        return said + (" The service reconnects by itself"
                       + (f" at {session.reconnect_at:%H:%M:%S} UTC." if session.reconnect_at
                          else "."))
    if session.status == S.LOGGED_OUT:
        return said + " Delete this session and create a new one to link the phone again."
    return said


def session_state(session: Session) -> dict:
    """What the session page shows and its script polls: status, the QR image while there is
    one to scan, the pairing code, why it stopped and how a restart would go."""
    scannable = session.status == SessionStatus.QR_PENDING and bool(session.qr_code)
    resumes = bool(session.engine_device) and session.status != S.EXPIRED
    return {
        "id": session.id,
        "status": session.status,
        "phoneNumber": session.phone_number or None,
        "qr": session.qr_code if scannable else None,
        "qrImage": qr_data_url(session.qr_code) if scannable else None,
        "qrExpiresAt": iso(session.qr_expires_at) if scannable else None,
        "pairingCode": (session.pairing_code or None) if scannable else None,
        "lastError": session.last_error or None,
        "lastErrorCode": session.last_error_code or None,
        "reconnectAt": iso(session.reconnect_at),
        "restartable": session.status in RESTART_OFFERED,
        "endedText": _ended_text(session) if session.status in ENDED else "",
        "restartLabel": "Reconnect now" if resumes else "Get a new QR code",
        "history": [{"at": iso(change.created_at), "from": change.from_status,
                     "to": change.to_status, "reason": change.reason}
                    for change in session.history.order_by("-created_at", "-id")[:HISTORY_SHOWN]],
    }


HISTORY_SHOWN = 50


@member_view()
def session_list(request: HttpRequest) -> HttpResponse:
    sessions_expire_overdue(account_id=request.account.id)
    form = SessionCreateForm(request.POST if request.method == "POST" else None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            # People type "+1 (415) 555-2671"; the API takes the digits.
            phone = re.sub(r"[\s\-().]", "", form.cleaned_data["phone_number"])
            session = session_create(
                account_id=request.account.id, name=form.cleaned_data["name"],
                phone_number=normalize_phone_number(phone, field="phoneNumber") if phone
                else None)
        except ApiError as failure:
            error = error_context(failure)
        else:
            return redirect("dashboard:session", session_id=session.id)
    if form.errors:
        error = form_error_context(form)
    sessions = sessions_visible(account_id=request.account.id).order_by("-created_at")
    return render(request, "dashboard/sessions.html", {
        "nav": "sessions", "form": form, "sessions": sessions, "error": error,
        "plan": request.account.plan,
    }, status=error["status"] if error else 200)


@never_cache
@member_view()
def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    sessions_expire_overdue(account_id=request.account.id)
    session = session_get(account_id=request.account.id, session_id=session_id)
    return render(request, "dashboard/session.html", {
        "nav": "sessions", "session": session, "state": session_state(session),
        "history": session.history.order_by("-created_at", "-id")[:HISTORY_SHOWN],
        "chats": chats_data(list(chats_of_session(session=session)
                                 .order_by("-last_message_id")[:CHATS_SHOWN])),
        "groups": Group.objects.filter(session=session, left_at__isnull=True),
    })


CHATS_SHOWN = 20


@allow_methods("GET")
@member_view()
def session_group(request: HttpRequest, session_id: str, group_id: str) -> HttpResponse:
    """A group of the session and its members, as WhatsApp last reported them."""
    session = session_get(account_id=request.account.id, session_id=session_id)
    group = Group.objects.filter(session=session, group_id=group_id).first()
    if group is None:
        return render_error(request, E.group_not_found)
    return render(request, "dashboard/group.html", {
        "nav": "sessions", "session": session, "group": group})


@never_cache
@allow_methods("GET")
@member_view()
def session_state_json(request: HttpRequest, session_id: str) -> HttpResponse:
    """Polled by the session page every two seconds."""
    sessions_expire_overdue(account_id=request.account.id)
    session = session_get(account_id=request.account.id, session_id=session_id)
    return JsonResponse(session_state(session))


@allow_methods("POST")
@member_view()
def session_restart_view(request: HttpRequest, session_id: str) -> HttpResponse:
    session = session_get(account_id=request.account.id, session_id=session_id)
    try:
        session_restart(session=session, reason="restarted from the dashboard")
    except ApiError as refused:
        return render_error(request, refused)
    return redirect("dashboard:session", session_id=session.id)


@allow_methods("POST")
@member_view()
def session_delete_view(request: HttpRequest, session_id: str) -> HttpResponse:
    session = session_get(account_id=request.account.id, session_id=session_id)
    session_delete(session=session)
    return redirect("dashboard:sessions")
