"""A session's WhatsApp groups: read from and changed through the engine, which knows them;
each answer is kept (`Group`), so that support, the dashboard and chat names have the groups
while the session is away, and reads then answer from what was kept."""

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from api.errors import ApiError, E
from sessions_app.engines import get_engine
from sessions_app.engines.base import EngineError, EngineEvent, NotFound
from sessions_app.models import Group, Session, SessionStatus
from sessions_app.services import engine_unavailable, session_require_sendable
from webhooks.outbox import event_record

SUBJECT_MAX_CHARACTERS = 100
PARTICIPANTS_MAX = 256


def _participants(members: list[dict]) -> list[dict]:
    return [{"id": member["id"], "phoneNumber": member.get("phoneNumber"),
             "isAdmin": bool(member.get("isAdmin"))} for member in members]


def _keep(session: Session, data: dict) -> Group:
    """The group as the engine reported it, kept."""
    group, _created = Group.objects.update_or_create(
        session=session, group_id=data["id"],
        defaults={"subject": data.get("subject") or "",
                  "description": data.get("description") or "",
                  "participants": _participants(data.get("participants") or []),
                  "left_at": None})
    return group


def _mark_left(session: Session, group_id: str) -> None:
    Group.objects.filter(session=session, group_id=group_id, left_at__isnull=True).update(
        left_at=timezone.now())


def _not_found(group_id: str, field: str | None = None) -> ApiError:
    return ApiError(E.group_not_found, field=field,
                    reason=f"This session is not a member of a group {group_id}.")


def groups_list(*, session: Session) -> QuerySet[Group]:
    """The session's groups: asked of WhatsApp while the session is connected (what it no
    longer lists was left), else as last kept."""
    if session.status == SessionStatus.CONNECTED:
        try:
            listed = get_engine().list_groups(session.id)
        except EngineError:
            pass  # the engine cannot tell now: what was kept
        else:
            with transaction.atomic():
                for data in listed:
                    _keep(session, data)
                (Group.objects.filter(session=session, left_at__isnull=True)
                 .exclude(group_id__in=[data["id"] for data in listed])
                 .update(left_at=timezone.now()))
    return Group.objects.filter(session=session, left_at__isnull=True)


def group_get(*, session: Session, group_id: str) -> Group:
    """One of the session's groups, asked of WhatsApp while connected, else as last kept."""
    if session.status == SessionStatus.CONNECTED:
        try:
            return _keep(session, get_engine().group_info(session.id, group_id))
        except NotFound as exc:
            _mark_left(session, group_id)
            raise _not_found(group_id) from exc
        except EngineError:
            pass
    group = Group.objects.filter(session=session, group_id=group_id,
                                 left_at__isnull=True).first()
    if group is None:
        raise _not_found(group_id)
    return group


def group_require_member(*, session: Session, group_id: str, field: str) -> None:
    """For a send to a group: the session must be in it. When the engine cannot tell now, the
    send is accepted (it fails if WhatsApp refuses it)."""
    if Group.objects.filter(session=session, group_id=group_id, left_at__isnull=True).exists():
        return
    try:
        _keep(session, get_engine().group_info(session.id, group_id))
    except NotFound as exc:
        raise _not_found(group_id, field) from exc
    except EngineError:
        return


def group_create(*, session: Session, subject: str, participants: list[str]) -> Group:
    session_require_sendable(session=session, field=None)
    try:
        data = get_engine().create_group(session.id, subject=subject, participants=participants)
    except EngineError as exc:
        raise engine_unavailable(exc) from exc
    return _keep(session, data)


def group_participants_change(*, session: Session, group_id: str, add: list[str],
                              remove: list[str]) -> Group:
    """Add and remove members; `group.participants` events follow from WhatsApp."""
    session_require_sendable(session=session, field=None)
    try:
        data = get_engine().update_group_participants(session.id, group_id, add=add,
                                                      remove=remove)
    except NotFound as exc:
        _mark_left(session, group_id)
        raise _not_found(group_id) from exc
    except EngineError as exc:
        raise engine_unavailable(exc) from exc
    return _keep(session, data)


def group_leave(*, session: Session, group_id: str) -> Group:
    """The session's number leaves the group; the group as it was kept, marked left."""
    session_require_sendable(session=session, field=None)
    try:
        get_engine().leave_group(session.id, group_id)
    except NotFound as exc:
        _mark_left(session, group_id)
        raise _not_found(group_id) from exc
    except EngineError as exc:
        raise engine_unavailable(exc) from exc
    group, _created = Group.objects.get_or_create(session=session, group_id=group_id)
    _mark_left(session, group_id)
    group.refresh_from_db()
    return group


def on_group_participants(event: EngineEvent) -> None:
    """Members of a group changed: the kept group follows, and `group.participants` tells the
    account."""
    session = Session.objects.filter(pk=event.session_id).first()
    if session is None:
        return
    group_id, action = event.data["groupId"], event.data["action"]
    changed = [{"id": who["id"], "phoneNumber": who.get("phoneNumber")}
               for who in event.data.get("participants") or []]
    with transaction.atomic():
        group = (Group.objects.select_for_update()
                 .filter(session=session, group_id=group_id).first())
        if group is not None:
            group.participants = _members_after(group.participants, action, changed)
            group.save(update_fields=["participants", "updated_at"])
        event_record(account_id=session.account_id, type="group.participants",
                     session_id=session.id,
                     data={"groupId": group_id, "action": action, "participants": changed})


def _members_after(members: list[dict], action: str, changed: list[dict]) -> list[dict]:
    ids = {who["id"] for who in changed}
    if action == "add":
        known = {member["id"] for member in members}
        return members + [{**who, "isAdmin": False} for who in changed if who["id"] not in known]
    if action == "remove":
        return [member for member in members if member["id"] not in ids]
    return [{**member, "isAdmin": action == "promote"} if member["id"] in ids else member
            for member in members]


def group_data(group: Group) -> dict:
    return {"id": group.group_id, "subject": group.subject,
            "description": group.description or None, "participants": group.participants}


def group_summary(group: Group) -> dict:
    return {"id": group.group_id, "subject": group.subject,
            "participantsCount": len(group.participants)}

