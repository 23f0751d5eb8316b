"""Locations, contact cards and canceling a queued message, over HTTP: acceptance, every bad
input's documented code, the send through the sandbox, isolation."""

import pytest

from messaging.models import Message
from messaging.sender import session_sender_run
from sessions_app.engines.sandbox.engine import SandboxEngine
from sessions_app.event_consumer import engine_events_drain
from tests.conftest import assert_error, connected_session

pytestmark = pytest.mark.django_db(transaction=True)

TO = "14155550123"


@pytest.fixture
def session(alice, settings) -> dict:
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0  # receipts at once: no worker needed here
    return connected_session(alice)


def send(tenant, kind: str, session: dict, **fields):
    return tenant.http.post(f"/v1/messages/{kind}",
                            json={"sessionId": session["id"], "to": TO, **fields})


def sent_through_the_sandbox(tenant, message_id: str, session: dict) -> dict:
    session_sender_run(session_id=session["id"])
    engine_events_drain()
    return tenant.http.get(f"/v1/messages/{message_id}").json()["data"]


def test_a_location_is_sent_and_shown(alice, session):
    response = send(alice, "location", session, latitude=48.8584, longitude=2, name="Eiffel")
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["type"] == "location" and data["status"] == "queued"
    assert data["location"] == {"latitude": 48.8584, "longitude": 2.0, "name": "Eiffel",
                                "address": None}
    assert data["text"] is None and data["media"] is None and data["contacts"] is None
    after = sent_through_the_sandbox(alice, data["id"], session)
    assert after["status"] == "read" and after["location"] == data["location"]


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"latitude": 90.5, "longitude": 0}, "invalid_parameter_value", "latitude"),
    ({"latitude": -91, "longitude": 0}, "invalid_parameter_value", "latitude"),
    ({"latitude": 0, "longitude": 180.01}, "invalid_parameter_value", "longitude"),
    ({"latitude": 0, "longitude": -181}, "invalid_parameter_value", "longitude"),
    ({"latitude": "48.8", "longitude": 2}, "invalid_parameter_type", "latitude"),
    ({"latitude": True, "longitude": 2}, "invalid_parameter_type", "latitude"),
    ({"latitude": 1, "longitude": None}, "invalid_parameter_type", "longitude"),
    ({"latitude": 1}, "missing_required_parameter", "longitude"),
    ({"latitude": 1, "longitude": 2, "name": 5}, "invalid_parameter_type", "name"),
    ({"latitude": 1, "longitude": 2, "address": "a" * 513}, "invalid_request", "address"),
    ({"latitude": 1, "longitude": 2, "altitude": 3}, "invalid_request", "altitude"),
])
def test_a_bad_location_is_refused_with_its_code(alice, session, fields, code, field):
    assert_error(send(alice, "location", session, **fields), 400, code, field)
    assert not Message.objects.exists()


@pytest.mark.parametrize("count", [1, 10])
def test_contact_cards_are_sent_with_their_vcards(alice, session, count):
    cards = [{"name": f"Ann {n}", "phoneNumber": f"+1415555{n:04d}"} for n in range(count)]
    response = send(alice, "contact", session, contacts=cards)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["type"] == "contact" and len(data["contacts"]) == count
    first = data["contacts"][0]
    assert first["name"] == "Ann 0" and first["phoneNumber"] == "14155550000"
    assert "FN:Ann 0" in first["vcard"] and "waid=14155550000" in first["vcard"]
    assert sent_through_the_sandbox(alice, data["id"], session)["status"] == "read"


@pytest.mark.parametrize(("contacts", "code", "field"), [
    ([], "invalid_parameter_value", "contacts"),
    ([{"name": "A", "phoneNumber": "14155550100"}] * 11, "invalid_parameter_value", "contacts"),
    ({"name": "A"}, "invalid_parameter_type", "contacts"),
    ("Ann", "invalid_parameter_type", "contacts"),
    ([{"phoneNumber": "14155550100"}], "missing_required_parameter", "contacts.name"),
    ([{"name": "A", "phoneNumber": "555-01"}], "invalid_phone_number", "contacts.phoneNumber"),
    ([{"name": "A", "phoneNumber": 14155550100}], "invalid_parameter_type",
     "contacts.phoneNumber"),
    ([{"name": "A", "phoneNumber": "14155550100", "email": "a@b.c"}], "invalid_request",
     "email"),
])
def test_bad_contact_cards_are_refused_with_their_code(alice, session, contacts, code, field):
    assert_error(send(alice, "contact", session, contacts=contacts), 400, code, field)
    assert not Message.objects.exists()


def test_a_queued_message_can_be_canceled_and_is_never_sent(alice, session):
    message = send(alice, "text", session, text="never mind").json()["data"]
    response = alice.http.post(f"/v1/messages/{message['id']}/cancel")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "failed" and data["failedAt"]
    assert data["error"]["code"] == "message_canceled"
    session_sender_run(session_id=session["id"])
    assert SandboxEngine.send_attempts(message["id"]) == 0
    assert alice.http.get(f"/v1/messages/{message['id']}").json()["data"]["status"] == "failed"
    # canceled once: a second cancel is refused
    assert_error(alice.http.post(f"/v1/messages/{message['id']}/cancel"), 409,
                 "message_not_cancelable")


def test_a_message_already_sent_or_inbound_cannot_be_canceled(alice, session):
    message = send(alice, "text", session, text="gone").json()["data"]
    sent_through_the_sandbox(alice, message["id"], session)
    error = assert_error(alice.http.post(f"/v1/messages/{message['id']}/cancel"), 409,
                         "message_not_cancelable")
    assert "read" in error["details"]["reason"]
    inbound = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound",
                              json={"from": "447911123456", "text": "hi"}).json()["data"]
    assert_error(alice.http.post(f"/v1/messages/{inbound['id']}/cancel"), 409,
                 "message_not_cancelable")


def test_another_accounts_message_cannot_be_canceled_and_looks_unknown(alice, bob, session):
    message = send(alice, "text", session, text="mine").json()["data"]
    assert_error(bob.http.post(f"/v1/messages/{message['id']}/cancel"), 404,
                 "message_not_found")
    assert_error(bob.http.post("/v1/messages/msg_nope/cancel"), 404, "message_not_found")
    assert Message.objects.get(pk=message["id"]).status == "queued"


def inbound(tenant, session: dict, **fields):
    return tenant.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound",
                            json={"from": "447911123456", **fields})


def test_the_sandboxs_contact_sends_a_location_and_contact_cards(alice, session):
    response = inbound(alice, session, type="location", latitude=-33.86, longitude=151.21,
                       address="Bennelong Point")
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["direction"] == "inbound" and data["type"] == "location"
    assert data["location"] == {"latitude": -33.86, "longitude": 151.21, "name": None,
                                "address": "Bennelong Point"}
    response = inbound(alice, session, type="contact",
                       contacts=[{"name": "Ann", "phoneNumber": "14155550100"}])
    assert response.status_code == 201, response.text
    card = response.json()["data"]["contacts"][0]
    assert card["name"] == "Ann" and card["phoneNumber"] == "14155550100" and card["vcard"]


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"type": "location", "latitude": 1}, "missing_required_parameter", "longitude"),
    ({"type": "location", "latitude": 100, "longitude": 1}, "invalid_parameter_value",
     "latitude"),
    ({"type": "contact"}, "missing_required_parameter", "contacts"),
    ({"type": "text"}, "missing_required_parameter", "text"),
    ({"text": "hi", "latitude": 1}, "invalid_request", "latitude"),
    ({"type": "sticker", "text": "hi"}, "invalid_request", "type"),
    ({"type": 5, "text": "hi"}, "invalid_parameter_type", "type"),
])
def test_a_bad_sandbox_inbound_message_is_refused_with_its_code(alice, session, fields, code,
                                                                  field):
    assert_error(inbound(alice, session, **fields), 400, code, field)


def test_a_reply_names_the_message_it_answers_in_either_direction(alice, session):
    question = inbound(alice, session, text="Where are you?").json()["data"]
    answer = alice.http.post("/v1/messages/location", json={
        "sessionId": session["id"], "to": "+447911123456", "latitude": 1, "longitude": 2,
        "replyTo": question["id"]})
    assert answer.status_code == 201, answer.text
    assert answer.json()["data"]["replyTo"] == question["id"]
    assert sent_through_the_sandbox(alice, answer.json()["data"]["id"],
                                    session)["status"] == "read"
    ours = send(alice, "text", session, text="first").json()["data"]
    follow_up = send(alice, "text", session, text="and then", replyTo=ours["id"]).json()["data"]
    assert follow_up["replyTo"] == ours["id"]
    assert alice.http.get(f"/v1/messages/{follow_up['id']}").json()["data"]["replyTo"] \
        == ours["id"]


def test_a_reply_to_an_unknown_foreign_or_other_chats_message_is_message_not_found(
        alice, bob, session):
    theirs = connected_session(bob)
    bobs = bob.http.post("/v1/messages/text", json={
        "sessionId": theirs["id"], "to": TO, "text": "bob's"}).json()["data"]
    other_chat = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": "14155550999", "text": "elsewhere"}).json()["data"]
    for reply_to in ("msg_unknown", bobs["id"], other_chat["id"]):
        assert_error(send(alice, "text", session, text="re", replyTo=reply_to), 404,
                     "message_not_found", "replyTo")
    assert_error(send(alice, "text", session, text="re", replyTo=5), 400,
                 "invalid_parameter_type", "replyTo")


def test_an_inbound_reply_names_the_message_it_quotes_when_it_is_known(alice, session):
    ours = send(alice, "text", session, text="Shall we meet?").json()["data"]
    sent_through_the_sandbox(alice, ours["id"], session)
    reply = inbound(alice, session, text="Yes", replyTo=ours["id"])
    assert reply.status_code == 201, reply.text
    assert reply.json()["data"]["replyTo"] == ours["id"]
    queued = send(alice, "text", session, text="not sent yet").json()["data"]
    assert_error(inbound(alice, session, text="?", replyTo=queued["id"]), 404,
                 "message_not_found", "replyTo")  # WhatsApp never saw it: nothing to quote


def test_the_sender_hands_the_engine_the_quote_of_a_reply(alice, session, monkeypatch):
    from sessions_app.engines.base import Quote

    quotes = []
    real_send_text = SandboxEngine.send_text

    def recording_send_text(self, session_id, *, reply_to=None, **kwargs):
        quotes.append(reply_to)
        return real_send_text(self, session_id, reply_to=reply_to, **kwargs)

    monkeypatch.setattr(SandboxEngine, "send_text", recording_send_text)
    question = inbound(alice, session, text="Where are you?").json()["data"]
    reply = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": "447911123456", "text": "Here",
        "replyTo": question["id"]}).json()["data"]
    sent_through_the_sandbox(alice, reply["id"], session)
    assert quotes == [Quote(whatsapp_id=question["whatsappId"], sender="447911123456",
                            from_me=False, text="Where are you?")]


def test_every_message_names_its_chat_and_a_received_one_its_sender(alice, session):
    ours = send(alice, "text", session, text="hello").json()["data"]
    assert ours["chatId"] == TO and ours["sender"] is None
    theirs = inbound(alice, session, text="hi").json()["data"]
    assert theirs["chatId"] == "447911123456"
    assert theirs["sender"] == {"id": "447911123456@s.whatsapp.net",
                                "phoneNumber": "447911123456", "name": "Sandbox contact"}


def test_a_number_is_looked_up_on_whatsapp_through_the_session(alice, bob, session):
    inbound(alice, session, text="hi")  # the contact wrote once: its push name is known
    url = f"/v1/sessions/{session['id']}/contacts"
    known = alice.http.get(f"{url}/+447911123456")
    assert known.status_code == 200, known.text
    assert known.json()["data"] == {"id": "447911123456@s.whatsapp.net", "lid": None,
                                    "phoneNumber": "447911123456", "onWhatsApp": True,
                                    "name": "Sandbox contact"}
    absent = alice.http.get(f"{url}/14155550000").json()["data"]
    assert (absent["onWhatsApp"], absent["id"], absent["name"]) == (False, None, None)
    assert_error(alice.http.get(f"{url}/12"), 400, "invalid_phone_number", "phoneOrId")
    assert_error(bob.http.get(f"{url}/447911123456"), 404, "session_not_found")
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect",
                    json={"reason": "logged_out"})
    assert_error(alice.http.get(f"{url}/447911123456"), 400, "session_not_connected")


def test_the_same_whatsapp_message_delivered_twice_is_stored_and_announced_once(alice,
                                                                                session):
    from webhooks.models import Event

    first = inbound(alice, session, text="once", whatsappId="3EB0REPLAYED").json()["data"]
    again = inbound(alice, session, text="once", whatsappId="3EB0REPLAYED")
    assert again.status_code == 201, again.text
    assert again.json()["data"]["id"] == first["id"]
    assert first["whatsappId"] == "3EB0REPLAYED"
    assert Message.objects.filter(whatsapp_id="3EB0REPLAYED").count() == 1
    assert Event.objects.filter(type="message.received").count() == 1
    assert_error(inbound(alice, session, text="x", whatsappId=7), 400,
                 "invalid_parameter_type", "whatsappId")
