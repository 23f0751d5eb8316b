"""Reads for sessions. Another account's session is indistinguishable from a missing one."""

from django.db.models import QuerySet

from api.errors import ApiError, E
from infra.local_cache import LocalTTLCache
from sessions_app.engines import get_engine
from sessions_app.engines.base import EngineError
from sessions_app.models import Session, SessionStatus

# Connected sessions as the send path reads them, per process, up to a second old. Only
# connected ones are kept, so a session that just connected is never refused; one that just
# disconnected elsewhere may accept for that second, and its messages wait in the queue. A
# status change made in this process drops the entry at once.
_sessions_for_send = LocalTTLCache(ttl=1.0)


def sessions_visible(*, account_id: str) -> QuerySet[Session]:
    return Session.objects.filter(account_id=account_id, deleted_at__isnull=True)


def session_get(*, account_id: str, session_id: str, field: str | None = None) -> Session:
    session = sessions_visible(account_id=account_id).filter(pk=session_id).first()
    if session is None:
        raise ApiError(E.session_not_found, field=field)
    return session


def session_is_visible(account_id: str, session_id: str) -> bool:
    return sessions_visible(account_id=account_id).filter(pk=session_id).exists()


def session_count_live(account_id: str) -> int:
    """Sessions that count against the plan's `maxSessions`: not deleted, not logged out."""
    return sessions_visible(account_id=account_id).exclude(status=SessionStatus.LOGGED_OUT).count()


def session_get_for_send(*, account_id: str, session_id: str) -> Session:
    session = _sessions_for_send.get((account_id, session_id))
    if session is None:
        session = session_get(account_id=account_id, session_id=session_id, field="sessionId")
        if session.status == SessionStatus.CONNECTED:
            _sessions_for_send.set((account_id, session_id), session)
    return session


def session_cache_forget(*, account_id: str, session_id: str) -> None:
    _sessions_for_send.delete((account_id, session_id))


def engine_hosts_report() -> tuple[dict | None, bool]:
    """The engine's hosts for `/v1/health` and `/metrics`: how many are alive, the sessions
    they run, the room they have left (None: unlimited); and whether that is healthy (an
    engine outside the service with no host alive is not). None for an in-process engine."""
    try:
        hosts = get_engine().hosts()
    except EngineError:
        hosts = []
    if hosts is None:
        return None, True
    capacities = [host["capacity"] for host in hosts]
    left = (sum(host["capacity"] - host["sessions"] for host in hosts)
            if hosts and None not in capacities else None)
    report = {"alive": len(hosts), "sessionsOwned": sum(host["sessions"] for host in hosts),
              "capacityLeft": left, "hosts": hosts}
    return report, bool(hosts)
