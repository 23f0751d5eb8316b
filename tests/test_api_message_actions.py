"""Reactions, edits and deletions for everyone, ours (queued and sent like any message) and
the contact's (through the sandbox): what each changes on its message, its event, and every
refusal's documented code."""

from datetime import timedelta

import pytest

from messaging.models import Message
from messaging.sender import session_sender_run
from sessions_app.event_consumer import engine_events_drain
from tests.conftest import assert_error, connected_session
from webhooks.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

CONTACT = "447911123456"
OURS = "14155552671"  # the session's own number (connected_session's phone)


@pytest.fixture
def session(alice, settings) -> dict:
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    return connected_session(alice)


def run_sender(session: dict) -> None:
    session_sender_run(session_id=session["id"])
    engine_events_drain()


def inbound(tenant, session: dict, **fields):
    return tenant.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound",
                            json={"from": CONTACT, **fields})


def sent_text(tenant, session: dict, text: str = "See you at 5") -> dict:
    message = tenant.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": CONTACT, "text": text}).json()["data"]
    run_sender(session)
    return message


def react(tenant, session: dict, message_id: str, emoji: str):
    return tenant.http.post("/v1/messages/reaction", json={
        "sessionId": session["id"], "messageId": message_id, "emoji": emoji})


def get(tenant, message_id: str) -> dict:
    return tenant.http.get(f"/v1/messages/{message_id}").json()["data"]


def events(kind: str) -> list[dict]:
    return [event.data for event in Event.objects.filter(type=kind).order_by("id")]


def test_a_reaction_is_queued_sent_and_shows_on_its_message(alice, session):
    theirs = inbound(alice, session, text="We won!").json()["data"]
    response = react(alice, session, theirs["id"], "🎉")
    assert response.status_code == 201, response.text
    action = response.json()["data"]
    assert action["type"] == "reaction" and action["status"] == "queued"
    assert action["to"] == CONTACT and action["action"] == {"messageId": theirs["id"],
                                                            "emoji": "🎉"}
    assert get(alice, theirs["id"])["reactions"] == []  # not before WhatsApp has it
    run_sender(session)
    assert get(alice, action["id"])["status"] == "read"
    assert get(alice, theirs["id"])["reactions"] == [{"senderId": OURS, "emoji": "🎉"}]
    assert events("message.reaction") == [{"messageId": theirs["id"], "chatId": CONTACT,
                                           "senderId": OURS, "emoji": "🎉"}]
    react(alice, session, theirs["id"], "")  # taken back
    run_sender(session)
    assert get(alice, theirs["id"])["reactions"] == []
    assert alice.http.get("/v1/account").json()["data"]["usage"]["messagesToday"] == 2


@pytest.mark.parametrize(("emoji", "code"), [
    ("a", "invalid_parameter_value"), ("👍 ", "invalid_parameter_value"),
    ("👍" * 17, "invalid_parameter_value"), (1, "invalid_parameter_type"),
    (None, "invalid_parameter_type"),
])
def test_a_reaction_that_is_not_one_emoji_is_refused(alice, session, emoji, code):
    theirs = inbound(alice, session, text="hi").json()["data"]
    assert_error(react(alice, session, theirs["id"], emoji), 400, code, "emoji")


def test_a_reaction_to_an_unknown_foreign_or_action_message_is_refused(alice, bob, session):
    bobs_session = connected_session(bob, phone="14155552672")
    bobs = bob.http.post("/v1/messages/text", json={
        "sessionId": bobs_session["id"], "to": CONTACT, "text": "x"}).json()["data"]
    for message_id in ("msg_unknown", bobs["id"]):
        assert_error(react(alice, session, message_id, "👍"), 404, "message_not_found",
                     "messageId")
    theirs = inbound(alice, session, text="hi").json()["data"]
    reaction = react(alice, session, theirs["id"], "👍").json()["data"]
    assert_error(react(alice, session, reaction["id"], "👍"), 400, "invalid_parameter_value",
                 "messageId")
    assert_error(react(alice, {"id": "ses_unknown"}, theirs["id"], "👍"), 404,
                 "session_not_found", "sessionId")


def test_an_action_on_a_message_that_never_reached_whatsapp_fails(alice, session):
    doomed = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": "14155550001", "text": "refused"}).json()["data"]
    reaction = react(alice, session, doomed["id"], "👍").json()["data"]
    run_sender(session)
    assert get(alice, doomed["id"])["status"] == "failed"
    failed = get(alice, reaction["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "message_sending_failed"


def test_a_sent_text_is_edited_within_15_minutes(alice, session):
    message = sent_text(alice, session)
    response = alice.http.patch(f"/v1/messages/{message['id']}", json={"text": "See you at 6"})
    assert response.status_code == 202, response.text
    action = response.json()["data"]
    assert action["type"] == "edit" and action["action"] == {"messageId": message["id"],
                                                             "text": "See you at 6"}
    run_sender(session)
    edited = get(alice, message["id"])
    assert edited["text"] == "See you at 6" and edited["editedAt"]
    assert [event["id"] for event in events("message.edited")] == [message["id"]]
    assert events("message.edited")[0]["text"] == "See you at 6"


def test_what_cannot_be_edited_is_message_not_editable(alice, session):
    late = sent_text(alice, session)
    Message.objects.filter(pk=late["id"]).update(
        sent_at=Message.objects.get(pk=late["id"]).sent_at - timedelta(minutes=16))
    queued = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": CONTACT, "text": "waiting"}).json()["data"]
    theirs = inbound(alice, session, text="theirs").json()["data"]
    place = alice.http.post("/v1/messages/location", json={
        "sessionId": session["id"], "to": CONTACT, "latitude": 1, "longitude": 2}).json()["data"]
    for message_id, reason in ((late["id"], "15 minutes"), (queued["id"], "queued"),
                               (theirs["id"], "Only texts"), (place["id"], "Only texts")):
        error = assert_error(alice.http.patch(f"/v1/messages/{message_id}",
                                              json={"text": "new"}),
                             409, "message_not_editable")
        assert reason in error["details"]["reason"], error


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"text": "a" * 4097}, "message_too_long", "text"),
    ({"text": 5}, "invalid_parameter_type", "text"),
    ({}, "missing_required_parameter", "text"),
    ({"text": "x", "to": CONTACT}, "invalid_request", "to"),
])
def test_a_bad_edit_is_refused_with_its_code(alice, session, body, code, field):
    message = sent_text(alice, session)
    assert_error(alice.http.patch(f"/v1/messages/{message['id']}", json=body), 400, code,
                 field)


def test_a_sent_message_is_deleted_for_everyone_once(alice, session):
    message = sent_text(alice, session)
    response = alice.http.delete(f"/v1/messages/{message['id']}")
    assert response.status_code == 202, response.text
    assert response.json()["data"]["type"] == "revoke"
    run_sender(session)
    assert get(alice, message["id"])["revokedAt"]
    assert [event["id"] for event in events("message.revoked")] == [message["id"]]
    error = assert_error(alice.http.delete(f"/v1/messages/{message['id']}"), 409,
                         "message_not_revocable")
    assert "deleted already" in error["details"]["reason"]


def test_what_cannot_be_deleted_is_message_not_revocable(alice, bob, session):
    queued = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": CONTACT, "text": "waiting"}).json()["data"]
    theirs = inbound(alice, session, text="theirs").json()["data"]
    for message_id in (queued["id"], theirs["id"]):
        assert_error(alice.http.delete(f"/v1/messages/{message_id}"), 409,
                     "message_not_revocable")
    assert_error(bob.http.delete(f"/v1/messages/{queued['id']}"), 404, "message_not_found")
    assert_error(bob.http.patch(f"/v1/messages/{queued['id']}", json={"text": "x"}), 404,
                 "message_not_found")


def test_the_contact_reacts_edits_and_deletes_through_the_sandbox(alice, session):
    ours = sent_text(alice, session)
    response = inbound(alice, session, reaction={"messageId": ours["id"], "emoji": "❤️"})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["reactions"] == [{"senderId": CONTACT, "emoji": "❤️"}]
    theirs = inbound(alice, session, text="at 5?").json()["data"]
    edited = inbound(alice, session, edit={"messageId": theirs["id"], "text": "at 6?"})
    assert edited.json()["data"]["text"] == "at 6?" and edited.json()["data"]["editedAt"]
    revoked = inbound(alice, session, revoke={"messageId": theirs["id"]})
    assert revoked.json()["data"]["revokedAt"]
    assert [e["emoji"] for e in events("message.reaction")] == ["❤️"]
    assert len(events("message.edited")) == len(events("message.revoked")) == 1


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"reaction": {"messageId": "msg_unknown", "emoji": "👍"}}, "message_not_found",
     "reaction.messageId"),
    ({"edit": {"messageId": "OURS", "text": "mine now"}}, "invalid_parameter_value",
     "edit.messageId"),
    ({"revoke": {"messageId": "OURS"}}, "invalid_parameter_value", "revoke.messageId"),
    ({"reaction": {"messageId": "OURS", "emoji": "x"}}, "invalid_parameter_value", "emoji"),
    ({"reaction": {"messageId": "OURS", "emoji": "👍"}, "revoke": {"messageId": "OURS"}},
     "invalid_request", "revoke"),
    ({"reaction": {"messageId": "OURS", "emoji": "👍"}, "text": "hi"}, "invalid_request",
     "text"),
    ({"edit": {"messageId": "OURS"}}, "missing_required_parameter", "edit.text"),
])
def test_a_bad_sandbox_action_is_refused_with_its_code(alice, session, fields, code, field):
    ours = sent_text(alice, session)
    body = {name: ({**value, "messageId": ours["id"]} if value.get("messageId") == "OURS"
                   else value) if isinstance(value, dict) else value
            for name, value in fields.items()}
    assert_error(inbound(alice, session, **body), 400 if code != "message_not_found" else 404,
                 code, field)


def test_a_received_message_and_the_chat_before_it_are_marked_read(alice, session,
                                                                   monkeypatch):
    from sessions_app.engines.sandbox.engine import SandboxEngine

    marked = []
    monkeypatch.setattr(SandboxEngine, "mark_read",
                        lambda self, session_id, *, chat, whatsapp_ids, sender=None:
                        marked.append((chat, sorted(whatsapp_ids))))
    first, second = (inbound(alice, session, text=text).json()["data"] for text in "ab")
    other_chat = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound", json={
        "from": "447911000000", "text": "elsewhere"}).json()["data"]
    response = alice.http.post(f"/v1/messages/{second['id']}/read")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["readAt"]
    assert get(alice, first["id"])["readAt"] and not get(alice, other_chat["id"])["readAt"]
    assert marked == [(CONTACT, sorted([first["whatsappId"], second["whatsappId"]]))]
    alice.http.post(f"/v1/messages/{second['id']}/read")  # read already: nothing to tell
    assert len(marked) == 1


def test_only_a_received_message_of_ones_own_can_be_marked_read(alice, bob, session):
    ours = sent_text(alice, session)
    assert_error(alice.http.post(f"/v1/messages/{ours['id']}/read"), 400, "invalid_request")
    theirs = inbound(alice, session, text="hi").json()["data"]
    assert_error(bob.http.post(f"/v1/messages/{theirs['id']}/read"), 404, "message_not_found")
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect",
                    json={"reason": "logged_out"})
    assert_error(alice.http.post(f"/v1/messages/{theirs['id']}/read"), 400,
                 "session_not_connected")


@pytest.mark.parametrize("state", ["typing", "recording", "paused"])
def test_a_chat_is_shown_typing(alice, session, state):
    response = alice.http.post(f"/v1/sessions/{session['id']}/typing",
                               json={"to": f"+{CONTACT}", "state": state})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"sessionId": session["id"], "to": CONTACT,
                                       "state": state}
    assert alice.http.get("/v1/account").json()["data"]["usage"]["messagesToday"] == 0


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"to": CONTACT, "state": "dancing"}, 400, "invalid_parameter_value", "state"),
    ({"to": CONTACT, "state": 1}, 400, "invalid_parameter_type", "state"),
    ({"to": "12", "state": "typing"}, 400, "invalid_phone_number", "to"),
    ({"state": "typing"}, 400, "missing_required_parameter", "to"),
])
def test_a_bad_typing_request_is_refused_with_its_code(alice, session, body, status, code,
                                                       field):
    assert_error(alice.http.post(f"/v1/sessions/{session['id']}/typing", json=body), status,
                 code, field)


def test_typing_needs_a_connected_session_of_ones_own(alice, bob, session):
    body = {"to": CONTACT, "state": "typing"}
    assert_error(bob.http.post(f"/v1/sessions/{session['id']}/typing", json=body), 404,
                 "session_not_found")
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect",
                    json={"reason": "logged_out"})
    assert_error(alice.http.post(f"/v1/sessions/{session['id']}/typing", json=body), 400,
                 "session_not_connected")


def test_a_text_whose_receipt_came_before_its_sent_is_still_editable(alice, session):
    message = sent_text(alice, session)
    Message.objects.filter(pk=message["id"]).update(sent_at=None)  # `delivered` came first
    response = alice.http.patch(f"/v1/messages/{message['id']}", json={"text": "fixed"})
    assert response.status_code == 202, response.text
