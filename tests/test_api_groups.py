"""Groups through the API with the sandbox engine: create, list, read, change members, leave;
sends to a group and messages in one; `group.participants`; isolation and every refusal."""

import pytest

from messaging.sender import session_sender_run
from sessions_app.event_consumer import engine_events_drain
from sessions_app.models import Group
from tests.conftest import assert_error, connected_session, http_client
from webhooks.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

OURS = "14155552671"  # connected_session's number
ANA, BEN, CAL = "447911123456", "447911123457", "14155550123"
NOT_ON_WHATSAPP = "447911120000"


@pytest.fixture
def session(alice, settings) -> dict:
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    return connected_session(alice)


def create(tenant, session: dict, **body):
    body = {"subject": "Team", "participants": [ANA, BEN], **body}
    return tenant.http.post(f"/v1/sessions/{session['id']}/groups", json=body)


@pytest.fixture
def group(alice, session) -> dict:
    response = create(alice, session)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def members(group: dict) -> dict[str, bool]:
    return {member["phoneNumber"]: member["isAdmin"] for member in group["participants"]}


def test_a_group_is_created_with_the_session_as_admin(alice, session, group):
    assert group["id"].endswith("@g.us")
    assert group["subject"] == "Team"
    assert group["description"] is None
    assert members(group) == {OURS: True, ANA: False, BEN: False}
    for member in group["participants"]:
        assert member["id"] == f"{member['phoneNumber']}@s.whatsapp.net"


def test_a_number_not_on_whatsapp_is_left_out_of_a_new_group(alice, session):
    group = create(alice, session, participants=[ANA, NOT_ON_WHATSAPP]).json()["data"]
    assert set(members(group)) == {OURS, ANA}


def test_groups_are_listed_and_read(alice, session, group):
    listed = alice.http.get(f"/v1/sessions/{session['id']}/groups").json()
    assert listed["data"] == [{"id": group["id"], "subject": "Team", "participantsCount": 3}]
    assert listed["pagination"] == {"nextCursor": None}
    detail = alice.http.get(f"/v1/sessions/{session['id']}/groups/{group['id']}")
    assert detail.status_code == 200
    assert detail.json()["data"] == group


def test_the_list_is_paginated(alice, session):
    made = {create(alice, session, subject=f"G{n}").json()["data"]["id"] for n in range(3)}
    first = alice.http.get(f"/v1/sessions/{session['id']}/groups", params={"limit": 2}).json()
    assert len(first["data"]) == 2 and first["pagination"]["nextCursor"]
    rest = alice.http.get(f"/v1/sessions/{session['id']}/groups", params={
        "limit": 2, "cursor": first["pagination"]["nextCursor"]}).json()
    assert {g["id"] for g in first["data"] + rest["data"]} == made
    assert rest["pagination"]["nextCursor"] is None


def test_members_are_added_and_removed_with_an_event_for_each_change(alice, session, group):
    url = f"/v1/sessions/{session['id']}/groups/{group['id']}/participants"
    response = alice.http.post(url, json={"add": [CAL, NOT_ON_WHATSAPP], "remove": [BEN]})
    assert response.status_code == 200, response.text
    assert members(response.json()["data"]) == {OURS: True, ANA: False, CAL: False}
    engine_events_drain()
    changes = [event.data for event in Event.objects.filter(type="group.participants")
               .order_by("id")]
    assert changes == [
        {"groupId": group["id"], "action": "add",
         "participants": [{"id": f"{CAL}@s.whatsapp.net", "phoneNumber": CAL}]},
        {"groupId": group["id"], "action": "remove",
         "participants": [{"id": f"{BEN}@s.whatsapp.net", "phoneNumber": BEN}]},
    ]
    kept = Group.objects.get(group_id=group["id"])
    assert {member["phoneNumber"] for member in kept.participants} == {OURS, ANA, CAL}
    feed = alice.http.get("/v1/events", params={"types": "group.participants"}).json()["data"]
    assert [event["data"]["action"] for event in feed] == ["add", "remove"]


def test_leaving_a_group_makes_it_unknown(alice, session, group):
    url = f"/v1/sessions/{session['id']}/groups/{group['id']}"
    response = alice.http.delete(url)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["id"] == group["id"]
    assert_error(alice.http.get(url), 404, "group_not_found")
    assert_error(alice.http.delete(url), 404, "group_not_found")
    assert alice.http.get(f"/v1/sessions/{session['id']}/groups").json()["data"] == []


def test_a_text_to_a_group_is_sent_in_the_groups_chat(alice, session, group):
    response = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": group["id"], "text": "Hello team"})
    assert response.status_code == 201, response.text
    message = response.json()["data"]
    assert message["to"] == group["id"] and message["chatId"] == group["id"]
    session_sender_run(session_id=session["id"])
    engine_events_drain()
    sent = alice.http.get(f"/v1/messages/{message['id']}").json()["data"]
    assert sent["status"] == "read" and sent["error"] is None


def test_a_send_to_a_group_the_session_is_not_in_is_refused(alice, session):
    response = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": "120363000000000001@g.us", "text": "hi"})
    assert_error(response, 404, "group_not_found", "to")


def test_a_member_writes_in_the_group(alice, session, group):
    response = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound", json={
        "from": ANA, "chatId": group["id"], "text": "Morning all"})
    assert response.status_code == 201, response.text
    message = response.json()["data"]
    assert message["chatId"] == group["id"]
    assert message["from"] == ANA
    assert message["sender"] == {"id": f"{ANA}@s.whatsapp.net", "phoneNumber": ANA,
                                 "name": "Sandbox contact"}
    reply = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": group["id"], "text": "Morning",
        "replyTo": message["id"]})
    assert reply.status_code == 201, reply.text
    # A message of the group is not one of the member's direct chat.
    direct = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": ANA, "text": "x", "replyTo": message["id"]})
    assert_error(direct, 404, "message_not_found", "replyTo")


def test_only_members_write_in_a_group_of_the_session(alice, session, group):
    url = f"/v1/sandbox/sessions/{session['id']}/inbound"
    assert_error(alice.http.post(url, json={"from": CAL, "chatId": group["id"], "text": "hi"}),
                 400, "invalid_parameter_value", "from")
    assert_error(alice.http.post(url, json={"from": ANA, "chatId": "120363000000000001@g.us",
                                            "text": "hi"}), 404, "group_not_found")
    assert_error(alice.http.post(url, json={"from": ANA, "chatId": ANA, "text": "hi"}),
                 400, "invalid_parameter_value", "chatId")


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"subject": ""}, "invalid_request", "subject"),
    ({"subject": "x" * 101}, "invalid_request", "subject"),
    ({"participants": []}, "invalid_request", "participants"),
    ({"participants": "447911123456"}, "invalid_parameter_type", "participants"),
    ({"participants": ["12"]}, "invalid_phone_number", "participants"),
    ({"participants": [ANA] * 257}, "invalid_parameter_value", "participants"),
])
def test_bad_group_creations_get_their_documented_error(alice, session, body, code, field):
    response = create(alice, session, **body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["details"]["field"] == field


@pytest.mark.parametrize(("body", "code", "field"), [
    ({}, "missing_required_parameter", "add"),
    ({"add": [], "remove": []}, "missing_required_parameter", "add"),
    ({"add": ["abc"]}, "invalid_phone_number", "add"),
    ({"remove": [123]}, "invalid_parameter_type", "remove"),
])
def test_bad_member_changes_get_their_documented_error(alice, session, group, body, code,
                                                       field):
    response = alice.http.post(
        f"/v1/sessions/{session['id']}/groups/{group['id']}/participants", json=body)
    assert_error(response, 400, code, field)


@pytest.mark.parametrize("group_id", ["abc", "123@g.us", "1203630000000001@lid",
                                     "447911123456"])
def test_a_malformed_group_id_is_refused(alice, session, group_id):
    response = alice.http.get(f"/v1/sessions/{session['id']}/groups/{group_id}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == "groupId"


def test_an_unknown_group_is_not_found(alice, session):
    base = f"/v1/sessions/{session['id']}/groups/120363000000000001@g.us"
    assert_error(alice.http.get(base), 404, "group_not_found")
    assert_error(alice.http.post(f"{base}/participants", json={"add": [ANA]}), 404,
                 "group_not_found")


def test_another_accounts_groups_are_out_of_reach(alice, bob, session, group):
    base = f"/v1/sessions/{session['id']}/groups"
    assert_error(bob.http.get(base), 404, "session_not_found")
    assert_error(bob.http.get(f"{base}/{group['id']}"), 404, "session_not_found")
    assert_error(bob.http.delete(f"{base}/{group['id']}"), 404, "session_not_found")
    bobs = connected_session(bob, phone="14155552672")
    # Bob's own session does not know Alice's group: exactly like an unknown one.
    assert_error(bob.http.get(f"/v1/sessions/{bobs['id']}/groups/{group['id']}"), 404,
                 "group_not_found")
    assert_error(bob.http.post("/v1/messages/text", json={
        "sessionId": bobs["id"], "to": group["id"], "text": "hi"}), 404, "group_not_found", "to")


def test_reading_groups_needs_sessions_read_and_changing_them_sessions_write(
        alice, session, group, live_server):
    _key, raw = alice.new_key(scopes=["messages:read"])
    with http_client(live_server.url, raw) as reader:
        response = reader.get(f"/v1/sessions/{session['id']}/groups")
        assert_error(response, 403, "insufficient_permissions")
    _key, raw = alice.new_key(scopes=["sessions:read"])
    with http_client(live_server.url, raw) as reader:
        assert reader.get(f"/v1/sessions/{session['id']}/groups").status_code == 200
        assert_error(reader.post(f"/v1/sessions/{session['id']}/groups",
                                 json={"subject": "x", "participants": [ANA]}),
                     403, "insufficient_permissions")


def test_while_the_session_is_away_groups_are_read_as_last_known(alice, session, group,
                                                                 settings):
    settings.SANDBOX_RECONNECT_SECONDS = 60
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect", json={})
    engine_events_drain()
    listed = alice.http.get(f"/v1/sessions/{session['id']}/groups").json()["data"]
    assert [g["id"] for g in listed] == [group["id"]]
    detail = alice.http.get(f"/v1/sessions/{session['id']}/groups/{group['id']}")
    assert detail.json()["data"] == group
    assert_error(create(alice, session), 400, "session_disconnected")
