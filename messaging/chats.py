"""A session's chats (`Chat`), kept up to date as messages are sent and received, so that
listing them reads one row per chat however many messages it holds. An outbound message
joins its chat when its session's sender claims it (`claimed_chats_sql`, a clause of the
claim's own statement), not on the accept path: accepting stays one statement, and a
session's sends touch its chats one claim at a time, never two processes at once."""

from django.db import connection, transaction
from django.db.models import Max

from api.phones import is_group_id
from messaging.models import Chat, Message

_TOUCH_SQL = """
INSERT INTO {table} (account_id, session_id, chat_id, is_group, name, last_message_id,
                     unread_count)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
_CLAIMED_SQL = """
INSERT INTO {table} (account_id, session_id, chat_id, is_group, name, last_message_id,
                     unread_count)
SELECT account_id, session_id, chat_id, chat_id LIKE '%%@g.us', '', max(id), 0
FROM {claimed} GROUP BY account_id, session_id, chat_id
"""
_ON_CONFLICT = """
ON CONFLICT (session_id, chat_id) DO UPDATE SET
    last_message_id = CASE
        WHEN {table}.last_message_id IS NULL
             OR {table}.last_message_id < excluded.last_message_id
        THEN excluded.last_message_id ELSE {table}.last_message_id END,
    unread_count = {table}.unread_count + excluded.unread_count,
    name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE {table}.name END
"""


def chat_touch(*, message: Message, unread: int = 0, name: str = "") -> None:
    """The message's chat has it as its newest message unless a newer one came first (a
    received message and a claim may commit out of order); `unread` more received messages;
    `name`, if given, is the contact's latest push name. One statement: concurrent messages
    of a chat never lose a count."""
    chat_id = message.chat_id
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(Chat._meta.db_table)
        cursor.execute(_TOUCH_SQL.format(table=table) + _ON_CONFLICT.format(table=table),
                       [message.account_id, message.session_id, chat_id, is_group_id(chat_id),
                        name[:256], message.pk, unread])


def claimed_chats_sql(claimed: str) -> str:
    """The upsert that makes the newest of the messages in `claimed` (a WITH clause returning
    claimed outbound messages) the last message of each of their chats, one row per chat."""
    table = connection.ops.quote_name(Chat._meta.db_table)
    return _CLAIMED_SQL.format(table=table, claimed=claimed) + _ON_CONFLICT.format(table=table)


def chats_touch_claimed(messages: list[Message]) -> None:
    """`claimed_chats_sql` for a database whose claim cannot carry it (SQLite)."""
    newest: dict[str, Message] = {}
    for message in messages:
        newest[message.chat_id] = max(newest.get(message.chat_id, message), message,
                                      key=lambda m: m.pk)
    for message in newest.values():
        chat_touch(message=message)


def chat_unread_recount(*, session_id: str, chat_id: str) -> None:
    unread = Message.objects.filter(session_id=session_id, chat_id=chat_id,
                                    direction="inbound", read_at__isnull=True).count()
    Chat.objects.filter(session_id=session_id, chat_id=chat_id).update(unread_count=unread)


def chats_merge(*, session_id: str, old_chat_id: str, new_chat_id: str) -> None:
    """The chat under a hidden id is the same as the number's (its messages moved there
    already): one chat, with the newer last message and both unread counts."""
    with transaction.atomic():
        old = Chat.objects.select_for_update().filter(session_id=session_id,
                                                      chat_id=old_chat_id).first()
        if old is None:
            return
        new = Chat.objects.select_for_update().filter(session_id=session_id,
                                                      chat_id=new_chat_id).first()
        if new is None:
            old.chat_id = new_chat_id
            old.save(update_fields=["chat_id"])
            return
        new.last_message_id = (Message.objects.filter(session_id=session_id, chat_id=new_chat_id)
                               .aggregate(last=Max("id"))["last"])
        new.unread_count += old.unread_count
        new.name = new.name or old.name
        new.save(update_fields=["last_message", "unread_count", "name"])
        old.delete()
