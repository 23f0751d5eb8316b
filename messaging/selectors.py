"""Reads of messages and chats for the API and the dashboard."""

from django.db.models import QuerySet

from messaging.models import Chat
from messaging.serializers import message_data
from sessions_app.models import Group, Session


def chats_of_session(*, session: Session) -> QuerySet[Chat]:
    """The session's chats that hold a message, with it (newest activity first once ordered
    by `last_message_id` descending)."""
    return (Chat.objects.filter(session=session, last_message__isnull=False)
            .select_related("last_message"))


def chats_data(chats: list[Chat]) -> list[dict]:
    """Chats as the API shows them: a group is named by its subject (as last known)."""
    group_ids = [chat.chat_id for chat in chats if chat.is_group]
    subjects = dict(Group.objects.filter(session_id__in={chat.session_id for chat in chats},
                                         group_id__in=group_ids)
                    .values_list("group_id", "subject")) if group_ids else {}
    return [{"chatId": chat.chat_id, "isGroup": chat.is_group,
             "name": (subjects.get(chat.chat_id) if chat.is_group else chat.name) or None,
             "lastMessage": message_data(chat.last_message) if chat.last_message else None,
             "unreadCount": chat.unread_count}
            for chat in chats]
