"""Sending and reading messages over HTTP: acceptance, validation, quota, idempotency,
isolation. (The queue and worker side: test_worker_messages.py.)"""

import threading

import pytest

from accounts.models import Plan
from messaging.models import Message
from tests.conftest import assert_error, connected_session, http_client
from tests.support.concurrency import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

TO = "14155550123"


@pytest.fixture
def session(alice) -> dict:
    return connected_session(alice)


def send_text(who, session_id, text="hello", to=TO, **headers):
    """Post a text as a tenant (or through any client with its key)."""
    client = getattr(who, "http", who)
    return client.post("/v1/messages/text", json={"sessionId": session_id, "to": to,
                                                       "text": text}, headers=headers)


def test_a_text_is_accepted_queued(alice, session):
    response = send_text(alice, session["id"], to="+14155550123")
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["id"].startswith("msg_")
    assert data["status"] == "queued"
    assert data["direction"] == "outbound" and data["type"] == "text"
    assert data["sessionId"] == session["id"]
    assert data["to"] == "14155550123" and data["from"] == "14155552671"
    assert data["text"] == "hello" and data["media"] is None and data["error"] is None
    assert alice.http.get(f"/v1/messages/{data['id']}").json()["data"]["id"] == data["id"]
    assert alice.http.get("/v1/account").json()["data"]["usage"]["messagesToday"] == 1


def test_length_is_counted_in_characters_not_bytes(alice, session):
    assert send_text(alice, session["id"], text="😀" * 4096).status_code == 201
    response = send_text(alice, session["id"], text="a" * 4097)
    error = assert_error(response, 400, "message_too_long", "text")
    assert "4096" in error["details"]["reason"]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"to": TO, "text": "x"}, "missing_required_parameter", "sessionId"),
        ({"sessionId": "S", "text": "x"}, "missing_required_parameter", "to"),
        ({"sessionId": "S", "to": TO}, "missing_required_parameter", "text"),
        ({"sessionId": "S", "to": 14155550123, "text": "x"}, "invalid_parameter_type", "to"),
        ({"sessionId": "S", "to": TO, "text": ["x"]}, "invalid_parameter_type", "text"),
        ({"sessionId": "S", "to": TO, "text": ""}, "invalid_request", "text"),
        ({"sessionId": "S", "to": "555-1234", "text": "x"}, "invalid_phone_number", "to"),
        ({"sessionId": "S", "to": "+999123", "text": "x"}, "invalid_phone_number", "to"),
        # An Arabic-Indic digit one at the end.
        ({"sessionId": "S", "to": "+1415555267\u0661", "text": "x"}, "invalid_phone_number",
         "to"),
        ({"sessionId": "S", "to": TO, "text": "x", "priority": 1}, "invalid_request",
         "priority"),
    ],
)
def test_bad_send_bodies(alice, session, body, code, field):
    body = {k: (session["id"] if v == "S" else v) for k, v in body.items()}
    assert_error(alice.http.post("/v1/messages/text", json=body), 400, code, field)
    assert not Message.objects.exists()


def test_unknown_or_foreign_session_is_session_not_found(alice, bob, session):
    for session_id in (session["id"], "ses_01ZZZZZZZZZZZZZZZZZZZZZZZZ"):
        assert_error(send_text(bob, session_id), 404, "session_not_found", "sessionId")


def test_a_session_not_yet_connected_is_session_not_connected(alice):
    waiting = alice.http.post("/v1/sessions", json={}).json()["data"]
    assert_error(send_text(alice, waiting["id"]), 400, "session_not_connected", "sessionId")


def test_a_disconnected_session_is_session_disconnected(alice, session):
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect")
    assert_error(send_text(alice, session["id"]), 400, "session_disconnected", "sessionId")


def test_a_recipient_without_whatsapp_is_refused(alice, session):
    assert_error(send_text(alice, session["id"], to="14155550000"), 400,
                 "recipient_not_on_whatsapp", "to")
    assert alice.http.get("/v1/account").json()["data"]["usage"]["messagesToday"] == 0


def test_message_not_found_for_unknown_and_foreign_ids(alice, bob, session):
    mine = send_text(alice, session["id"]).json()["data"]["id"]
    for message_id in (mine, "msg_01ZZZZZZZZZZZZZZZZZZZZZZZZ"):
        error = assert_error(bob.http.get(f"/v1/messages/{message_id}"), 404,
                             "message_not_found")
        assert "details" not in error


def test_list_filters_and_paginates(alice, bob, session):
    ids = [send_text(alice, session["id"], text=f"m{i}").json()["data"]["id"] for i in range(3)]
    page = alice.http.get("/v1/messages", params={"limit": 2}).json()
    assert [m["id"] for m in page["data"]] == [ids[2], ids[1]]
    rest = alice.http.get("/v1/messages", params={"cursor": page["pagination"]["nextCursor"]})
    assert [m["id"] for m in rest.json()["data"]] == [ids[0]]
    queued = alice.http.get("/v1/messages", params={"status": "queued", "direction": "outbound",
                                                    "sessionId": session["id"]}).json()["data"]
    assert len(queued) == 3
    assert alice.http.get("/v1/messages", params={"status": "read"}).json()["data"] == []
    assert bob.http.get("/v1/messages").json()["data"] == []
    assert bob.http.get("/v1/messages", params={"sessionId": session["id"]}).json()["data"] == []


@pytest.mark.parametrize(("params", "field"), [({"status": "lost"}, "status"),
                                               ({"direction": "up"}, "direction"),
                                               ({"to": "x"}, "to")])
def test_bad_list_filters(alice, params, field):
    assert_error(alice.http.get("/v1/messages", params=params), 400, "invalid_request", field)


def test_scopes(live_server, alice, session):
    _, reader = alice.new_key(scopes=["messages:read"])
    with http_client(live_server.url, reader) as client:
        error = assert_error(client.post("/v1/messages/text", json={}), 403,
                             "insufficient_permissions")
        assert "messages:send" in error["details"]["reason"]


# --- daily quota -------------------------------------------------------------------------


def test_the_daily_limit_is_daily_message_limit_reached(make_tenant):
    tenant = make_tenant("small", plan="free")
    Plan.objects.filter(name="free").update(daily_message_limit=2)
    session = connected_session(tenant)
    assert send_text(tenant, session["id"]).status_code == 201
    assert send_text(tenant, session["id"]).status_code == 201
    assert_error(send_text(tenant, session["id"]), 403, "daily_message_limit_reached")
    assert Message.objects.filter(account=tenant.account).count() == 2


def test_fifty_concurrent_senders_never_get_one_message_over(make_tenant):
    tenant = make_tenant("crowd", plan="business")
    Plan.objects.filter(name="business").update(daily_message_limit=20)
    session = connected_session(tenant)

    def attempt():
        with http_client(str(tenant.http.base_url), tenant.raw_key) as client:
            return send_text(client, session["id"]).status_code

    statuses = run_concurrently(50, attempt)
    assert sorted(statuses) == [201] * 20 + [403] * 30
    assert Message.objects.filter(account=tenant.account).count() == 20
    usage = tenant.http.get("/v1/account").json()["data"]["usage"]["messagesToday"]
    assert usage == 20


# --- idempotency ---------------------------------------------------------------------------


def test_same_key_same_body_replays_and_sends_nothing_again(alice, session):
    first = send_text(alice, session["id"], **{"Idempotency-Key": "order-1"})
    again = send_text(alice, session["id"], **{"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert Message.objects.count() == 1
    assert alice.http.get("/v1/account").json()["data"]["usage"]["messagesToday"] == 1


def test_same_key_other_body_is_idempotency_key_reused(alice, session):
    send_text(alice, session["id"], text="a", **{"Idempotency-Key": "k-2"})
    response = send_text(alice, session["id"], text="b", **{"Idempotency-Key": "k-2"})
    assert_error(response, 409, "idempotency_key_reused", "Idempotency-Key")
    assert Message.objects.count() == 1


def test_keys_belong_to_their_account(alice, bob, session):
    send_text(alice, session["id"], **{"Idempotency-Key": "shared"})
    bob_session = connected_session(bob)
    response = send_text(bob, bob_session["id"], **{"Idempotency-Key": "shared"})
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers


def test_an_error_is_not_stored_so_the_key_can_be_retried(alice, session):
    bad = send_text(alice, session["id"], to="14155550000", **{"Idempotency-Key": "k-3"})
    assert bad.status_code == 400
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect")
    blocked = send_text(alice, session["id"], **{"Idempotency-Key": "k-4"})
    assert blocked.status_code == 400
    reconnected = connected_session(alice)
    assert send_text(alice, reconnected["id"], **{"Idempotency-Key": "k-3b"}).status_code == 201


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_invalid_request(alice, session, key):
    response = alice.http.post(
        "/v1/messages/text", json={"sessionId": session["id"], "to": TO, "text": "x"},
        headers={"Idempotency-Key": key.encode("utf-8")},
    )
    assert_error(response, 400, "invalid_request", "Idempotency-Key")
    assert not Message.objects.exists()


def test_concurrent_duplicates_make_one_message_and_the_same_answer(alice, session):
    def attempt():
        with http_client(str(alice.http.base_url), alice.raw_key) as client:
            response = client.post("/v1/messages/text",
                                   json={"sessionId": session["id"], "to": TO, "text": "once"},
                                   headers={"Idempotency-Key": "burst-1"})
        return response.status_code, response.json()

    bodies = run_concurrently(10, attempt)
    assert {status for status, _ in bodies} == {201}
    assert len({body["data"]["id"] for _, body in bodies}) == 1
    assert Message.objects.count() == 1


def test_idempotency_applies_to_every_post(alice):
    first = alice.http.post("/v1/sessions", json={"name": "a"}, headers={"Idempotency-Key": "s1"})
    again = alice.http.post("/v1/sessions", json={"name": "a"}, headers={"Idempotency-Key": "s1"})
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert again.headers["Idempotent-Replayed"] == "true"


# --- inbound (sandbox) ---------------------------------------------------------------------


def test_an_inbound_message_is_stored_and_emits_message_received(alice, session):
    from webhooks.models import Event

    response = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound",
                               json={"from": "+447911123456", "text": "hi there"})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["direction"] == "inbound" and data["status"] == "received"
    assert data["from"] == "447911123456" and data["to"] == "14155552671"
    assert data["text"] == "hi there"
    listed = alice.http.get("/v1/messages", params={"direction": "inbound"}).json()["data"]
    assert [m["id"] for m in listed] == [data["id"]]
    event = Event.objects.get(type="message.received")
    assert event.data["id"] == data["id"]


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"text": "x"}, "missing_required_parameter", "from"),
    ({"from": "123", "text": "x"}, "invalid_phone_number", "from"),
    ({"from": "447911123456", "text": "x" * 4097}, "message_too_long", "text"),
])
def test_bad_inbound_bodies(alice, session, body, code, field):
    response = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound", json=body)
    assert_error(response, 400, code, field)


def test_inbound_needs_a_connected_session(alice):
    waiting = alice.http.post("/v1/sessions", json={}).json()["data"]
    response = alice.http.post(f"/v1/sandbox/sessions/{waiting['id']}/inbound",
                               json={"from": "447911123456", "text": "x"})
    assert_error(response, 400, "session_not_connected")


def test_an_inbound_message_reported_twice_is_stored_once(alice, session):
    from sessions_app.engines import base, publish_event
    from sessions_app.engines.base import EngineEvent
    from sessions_app.event_consumer import engine_events_drain

    event = EngineEvent(base.MESSAGE_RECEIVED, session["id"],
                        {"whatsappId": "DUP1", "from": "447911123456", "text": "twice"})
    publish_event(event)
    publish_event(event)
    engine_events_drain()
    assert Message.objects.filter(direction="inbound", whatsapp_id="DUP1").count() == 1


def test_a_duplicate_while_the_first_still_runs_too_long_is_idempotency_key_in_use(
        alice, session, monkeypatch):
    from accounts import idempotency
    from messaging import views

    entered, release = threading.Event(), threading.Event()
    real_send = views.message_send

    def slow_send(**kwargs):
        entered.set()
        assert release.wait(20)
        return real_send(**kwargs)

    monkeypatch.setattr(views, "message_send", slow_send)
    monkeypatch.setattr(idempotency, "IN_PROGRESS_WAIT_SECONDS", 0.3)
    first = {}
    thread = threading.Thread(target=lambda: first.update(
        response=send_text(alice, session["id"], **{"Idempotency-Key": "slow-1"})))
    thread.start()
    assert entered.wait(10)
    with http_client(str(alice.http.base_url), alice.raw_key) as other:
        duplicate = send_text(other, session["id"], **{"Idempotency-Key": "slow-1"})
    release.set()
    thread.join(20)
    assert_error(duplicate, 409, "idempotency_key_in_use", "Idempotency-Key")
    assert int(duplicate.headers["Retry-After"]) >= 1
    assert first["response"].status_code == 201
    assert Message.objects.count() == 1
