"""Who wrote and in which chat: senders behind hidden ids (`@lid`), the mapping WhatsApp
discloses and the backfill of what was kept before; the contact lookup; and the chat list."""

import pytest

from messaging.models import Chat, Message
from messaging.sender import session_sender_run
from sessions_app.event_consumer import engine_events_drain
from sessions_app.models import LidMapping
from tests.conftest import assert_error, connected_session, http_client

pytestmark = pytest.mark.django_db(transaction=True)

ANA, BEN = "447911123456", "447911123457"
ANA_LID = "123456789012345@lid"


@pytest.fixture
def session(alice, settings) -> dict:
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    return connected_session(alice)


def inbound(tenant, session: dict, **fields) -> dict:
    response = tenant.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound",
                                json={"text": "hi", **fields})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def get(tenant, message_id: str) -> dict:
    return tenant.http.get(f"/v1/messages/{message_id}").json()["data"]


def contact(tenant, session: dict, phone_or_id: str):
    return tenant.http.get(f"/v1/sessions/{session['id']}/contacts/{phone_or_id}")


def chats(tenant, session: dict, **params) -> dict:
    response = tenant.http.get("/v1/chats", params={"sessionId": session["id"], **params})
    assert response.status_code == 200, response.text
    return response.json()


# --- hidden ids ---------------------------------------------------------------------------


def test_a_sender_behind_a_hidden_id_is_not_given_a_bogus_number(alice, session):
    message = inbound(alice, session, **{"from": ANA, "senderLid": ANA_LID})
    assert message["from"] == ANA_LID
    assert message["chatId"] == ANA_LID
    assert message["sender"] == {"id": ANA_LID, "phoneNumber": None, "name": "Sandbox contact"}
    found = contact(alice, session, ANA_LID).json()["data"]
    assert found == {"id": ANA_LID, "lid": ANA_LID, "phoneNumber": None, "onWhatsApp": True,
                     "name": "Sandbox contact"}


def test_a_reply_to_a_hidden_id_goes_to_that_id(alice, session):
    theirs = inbound(alice, session, **{"from": ANA, "senderLid": ANA_LID})
    reply = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": ANA_LID, "text": "Hello", "replyTo": theirs["id"]})
    assert reply.status_code == 201, reply.text
    assert reply.json()["data"]["chatId"] == ANA_LID
    session_sender_run(session_id=session["id"])
    engine_events_drain()
    assert get(alice, reply.json()["data"]["id"])["status"] == "read"


def test_once_the_number_is_disclosed_earlier_messages_show_it(alice, session):
    hidden = inbound(alice, session, **{"from": ANA, "senderLid": ANA_LID})
    ours = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": ANA_LID, "text": "Who is this?"}).json()["data"]
    assert chats(alice, session)["data"][0]["chatId"] == ANA_LID
    # Ana writes under her number: WhatsApp discloses whose hidden id it was.
    disclosed = inbound(alice, session, **{"from": ANA, "text": "It's Ana"})
    assert disclosed["chatId"] == ANA and disclosed["sender"]["phoneNumber"] == ANA
    earlier = get(alice, hidden["id"])
    assert earlier["from"] == ANA
    assert earlier["chatId"] == ANA
    assert earlier["sender"] == {"id": ANA_LID, "phoneNumber": ANA, "name": "Sandbox contact"}
    assert get(alice, ours["id"])["chatId"] == ANA
    assert LidMapping.objects.get(lid=ANA_LID).phone_number == ANA
    # One chat now, holding both sides and both unread messages.
    listed = chats(alice, session)["data"]
    assert [(chat["chatId"], chat["unreadCount"]) for chat in listed] == [(ANA, 2)]
    assert listed[0]["lastMessage"]["id"] == disclosed["id"]
    # Both ways of naming her lead to the same person.
    by_lid = contact(alice, session, ANA_LID).json()["data"]
    by_number = contact(alice, session, ANA).json()["data"]
    expected = {"id": f"{ANA}@s.whatsapp.net", "lid": ANA_LID, "phoneNumber": ANA,
                "onWhatsApp": True, "name": "Sandbox contact"}
    assert by_lid == by_number == expected
    # Later messages under the hidden id are filed under the number at once.
    later = inbound(alice, session, **{"from": ANA, "senderLid": ANA_LID, "text": "again"})
    assert later["from"] == ANA and later["chatId"] == ANA
    assert later["sender"]["id"] == ANA_LID
    # A send to the hidden id goes to the number's chat.
    sent = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": ANA_LID, "text": "Hi Ana"}).json()["data"]
    assert sent["to"] == ANA and sent["chatId"] == ANA


def test_a_hidden_sender_in_a_group(alice, session):
    group = alice.http.post(f"/v1/sessions/{session['id']}/groups", json={
        "subject": "Team", "participants": [ANA, BEN]}).json()["data"]
    message = inbound(alice, session, **{"from": ANA, "senderLid": ANA_LID,
                                         "chatId": group["id"]})
    assert message["chatId"] == group["id"]
    assert message["from"] == ANA_LID
    assert message["sender"]["phoneNumber"] is None
    inbound(alice, session, **{"from": ANA})  # discloses the number
    backfilled = get(alice, message["id"])
    assert backfilled["chatId"] == group["id"]  # still the group's
    assert backfilled["from"] == ANA and backfilled["sender"]["phoneNumber"] == ANA


# --- the contact lookup -----------------------------------------------------------------------


def test_a_number_is_looked_up(alice, session):
    assert contact(alice, session, f"+{ANA}").json()["data"] == {
        "id": f"{ANA}@s.whatsapp.net", "lid": None, "phoneNumber": ANA, "onWhatsApp": True,
        "name": None}
    assert contact(alice, session, f"{ANA}@s.whatsapp.net").json()["data"]["phoneNumber"] == ANA
    absent = contact(alice, session, "447911120000").json()["data"]
    assert absent["onWhatsApp"] is False and absent["id"] is None


@pytest.mark.parametrize(("value", "code"), [
    ("12", "invalid_phone_number"),
    ("abc@lid", "invalid_parameter_value"),
    ("120363000000000001@g.us", "invalid_parameter_value"),
    ("447911123456@example.com", "invalid_parameter_value"),
])
def test_a_bad_phone_or_id_is_refused(alice, session, value, code):
    assert_error(contact(alice, session, value), 400, code, "phoneOrId")


def test_a_hidden_id_is_resolved_by_the_engines_store_and_kept(alice, session):
    inbound(alice, session, **{"from": ANA, "senderLid": ANA_LID})
    inbound(alice, session, **{"from": ANA})
    LidMapping.objects.all().delete()  # as if only the engine's store had it
    found = contact(alice, session, ANA_LID).json()["data"]
    assert found["phoneNumber"] == ANA
    assert LidMapping.objects.filter(lid=ANA_LID, phone_number=ANA).exists()


# --- the chat list ----------------------------------------------------------------------------


def test_chats_newest_activity_first_with_unread_counts_and_names(alice, session):
    inbound(alice, session, **{"from": ANA, "text": "one"})
    inbound(alice, session, **{"from": ANA, "text": "two"})
    ours = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": BEN, "text": "hello"}).json()["data"]
    # A message joins its chat when the session's sender takes it from the queue.
    assert [chat["chatId"] for chat in chats(alice, session)["data"]] == [ANA]
    session_sender_run(session_id=session["id"])
    engine_events_drain()
    listed = chats(alice, session)
    assert listed["pagination"] == {"nextCursor": None}
    assert [chat["chatId"] for chat in listed["data"]] == [BEN, ANA]
    ben, ana = listed["data"]
    assert ben == {"chatId": BEN, "isGroup": False, "name": None,
                   "lastMessage": get(alice, ours["id"]), "unreadCount": 0}
    assert ana["unreadCount"] == 2 and ana["name"] == "Sandbox contact"
    assert ana["lastMessage"]["text"] == "two"
    # Reading the chat empties its count; a new message puts it first again.
    read = alice.http.post(f"/v1/messages/{ana['lastMessage']['id']}/read")
    assert read.status_code == 200, read.text
    inbound(alice, session, **{"from": ANA, "text": "three"})
    first = chats(alice, session)["data"][0]
    assert first["chatId"] == ANA and first["unreadCount"] == 1


def test_a_group_chat_is_named_by_its_subject(alice, session):
    group = alice.http.post(f"/v1/sessions/{session['id']}/groups", json={
        "subject": "Team", "participants": [ANA]}).json()["data"]
    inbound(alice, session, **{"from": ANA, "chatId": group["id"]})
    chat = chats(alice, session)["data"][0]
    assert (chat["chatId"], chat["isGroup"], chat["name"]) == (group["id"], True, "Team")


def test_chats_are_paginated(alice, session):
    numbers = [f"4479111234{n:02d}" for n in range(50, 55)]
    for number in numbers:
        inbound(alice, session, **{"from": number})
    seen, cursor = [], None
    while True:
        page = chats(alice, session, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [chat["chatId"] for chat in page["data"]]
        cursor = page["pagination"]["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(numbers))


def test_the_chat_list_needs_its_session_and_messages_read(alice, bob, session, live_server):
    assert_error(alice.http.get("/v1/chats"), 400, "missing_required_parameter", "sessionId")
    assert_error(bob.http.get("/v1/chats", params={"sessionId": session["id"]}), 404,
                 "session_not_found", "sessionId")
    assert_error(alice.http.get("/v1/chats", params={"sessionId": session["id"], "x": "1"}),
                 400, "invalid_request", "x")
    assert_error(alice.http.get("/v1/chats", params={"sessionId": session["id"],
                                                     "cursor": "x" * 300}),
                 400, "invalid_request", "cursor")
    _key, raw = alice.new_key(scopes=["sessions:read"])
    with http_client(live_server.url, raw) as client:
        assert_error(client.get("/v1/chats", params={"sessionId": session["id"]}), 403,
                     "insufficient_permissions")


def test_messages_are_listed_by_chat(alice, session):
    inbound(alice, session, **{"from": ANA})
    inbound(alice, session, **{"from": BEN})
    listed = alice.http.get("/v1/messages", params={"chatId": ANA}).json()["data"]
    assert [message["from"] for message in listed] == [ANA]


def test_existing_messages_and_chats_are_backfilled_by_the_migration(alice, session):
    """Rows written before chats existed (no chat id, no chat row), as the migration found
    them: its backfill files each message under its chat and makes the chat rows."""
    import importlib

    from django.apps import apps as django_apps

    inbound(alice, session, **{"from": ANA})
    Message.objects.update(chat_id="")
    Chat.objects.all().delete()
    migration = importlib.import_module("messaging.migrations.0012_chats")
    migration.chats_backfill(django_apps, None)
    assert Message.objects.get().chat_id == ANA
    chat = Chat.objects.get()
    assert (chat.chat_id, chat.unread_count, chat.name) == (ANA, 1, "Sandbox contact")
