"""Reads for sessions. Another account's session is indistinguishable from a missing one."""

from django.db.models import QuerySet

from config.errors import ApiError, E
from sessions_app.models import Session, SessionStatus


def sessions_visible(*, account_id: str) -> QuerySet[Session]:
    return Session.objects.filter(account_id=account_id, deleted_at__isnull=True)


def session_get(*, account_id: str, session_id: str, field: str | None = None) -> Session:
    session = sessions_visible(account_id=account_id).filter(pk=session_id).first()
    if session is None:
        raise ApiError(E.session_not_found, field=field)
    return session


def session_count_live(*, account_id: str) -> int:
    """Sessions that count against the plan's `maxSessions`: not deleted, not logged out."""
    return sessions_visible(account_id=account_id).exclude(status=SessionStatus.LOGGED_OUT).count()
