"""A session's chats (`Chat`), kept up to date as messages are accepted and received, so that
listing them reads one row per chat however many messages it holds."""

from django.db import connection, transaction
from django.db.models import Max

from api.phones import is_group_id
from infra.sql import GATE, Statement, statement_run
from messaging.models import Chat, Message

# An upsert gated as `infra.sql.insert_if` gates what it writes with a message (GATE).
_TOUCH_SQL = """
INSERT INTO {table} (account_id, session_id, chat_id, is_group, name, last_message_id,
                     unread_count)
SELECT %s, %s, %s, %s, %s, %s, %s {gate}
ON CONFLICT (session_id, chat_id) DO UPDATE SET
    last_message_id = CASE
        WHEN {table}.last_message_id IS NULL
             OR {table}.last_message_id < excluded.last_message_id
        THEN excluded.last_message_id ELSE {table}.last_message_id END,
    unread_count = {table}.unread_count + excluded.unread_count,
    name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE {table}.name END
"""


def chat_touch_statement(*, message: Message, unread: int = 0, name: str = "") -> Statement:
    """The message's chat has it as its newest message unless a newer one came first (two
    accepts may commit out of order); `unread` more received messages; `name`, if given, is
    the contact's latest push name. One upsert: concurrent messages of a chat never lose a
    count. Run with the message's insert (`insert_if`'s `also`), or by `chat_touch`."""
    chat_id = message.chat_id
    sql = _TOUCH_SQL.format(table=connection.ops.quote_name(Chat._meta.db_table), gate=GATE)
    return Statement(sql, [message.account_id, message.session_id, chat_id,
                           is_group_id(chat_id), name[:256], message.pk, unread])


def chat_touch(*, message: Message, unread: int = 0, name: str = "") -> None:
    statement_run(chat_touch_statement(message=message, unread=unread, name=name))


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
