"""Sessions over HTTP: create, QR (JSON and PNG), scan, disconnect, expiry, delete, plan limit,
isolation, and every session code of the seed."""

import base64
import io
from datetime import timedelta

import pytest
import segno
from django.utils import timezone

from accounts.models import Plan
from sessions_app.engines import get_engine
from sessions_app.models import Session, SessionStatusChange
from sessions_app.services import sessions_expire_overdue
from tests.conftest import assert_error, http_client
from tests.support.concurrency import run_concurrently
from webhooks.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def create(tenant, **body):
    response = tenant.http.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def connected(tenant, phone="14155552671"):
    session = create(tenant)
    response = tenant.http.post(f"/v1/sandbox/sessions/{session['id']}/scan",
                                json={"phoneNumber": phone})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def png_of(code: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(code, error="l").save(buffer, kind="png", scale=6, border=4)
    return buffer.getvalue()


# --- create and read ---------------------------------------------------------------------


def test_create_answers_qr_pending_with_a_fresh_qr(alice):
    before = timezone.now()
    session = create(alice, name="shop")
    assert session["id"].startswith("ses_")
    assert session["status"] == "qr_pending"
    assert session["name"] == "shop"
    assert session["phoneNumber"] is None and session["connectedAt"] is None
    assert session["qr"]["code"].startswith("2@")
    prefix = "data:image/png;base64,"
    assert session["qr"]["image"].startswith(prefix)
    image = base64.b64decode(session["qr"]["image"][len(prefix):])
    assert image == png_of(session["qr"]["code"])
    expires = timezone.datetime.fromisoformat(session["qr"]["expiresAt"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=55) <= expires <= timezone.now() + timedelta(seconds=61)


def test_create_with_a_phone_number_gives_a_pairing_code(alice):
    session = create(alice, phoneNumber="+14155552671")
    assert len(session["pairingCode"]) == 8
    assert session["status"] == "qr_pending"


def test_get_and_list(alice):
    first, second = create(alice), create(alice)
    got = alice.http.get(f"/v1/sessions/{first['id']}").json()["data"]
    assert got["id"] == first["id"] and got["status"] == "qr_pending"
    listed = alice.http.get("/v1/sessions").json()
    assert [s["id"] for s in listed["data"]] == [second["id"], first["id"]]
    assert listed["pagination"] == {"nextCursor": None}


def test_list_paginates_with_a_cursor(alice):
    ids = [create(alice)["id"] for _ in range(3)]
    page1 = alice.http.get("/v1/sessions", params={"limit": 2}).json()
    assert [s["id"] for s in page1["data"]] == [ids[2], ids[1]]
    cursor = page1["pagination"]["nextCursor"]
    page2 = alice.http.get("/v1/sessions", params={"limit": 2, "cursor": cursor}).json()
    assert [s["id"] for s in page2["data"]] == [ids[0]]
    assert page2["pagination"]["nextCursor"] is None


def test_list_filters_by_status(alice):
    waiting = create(alice)
    live = connected(alice)
    only = alice.http.get("/v1/sessions", params={"status": "connected"}).json()["data"]
    assert [s["id"] for s in only] == [live["id"]]
    assert waiting["id"] not in [s["id"] for s in only]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_list_query_is_invalid_request(alice, params, field):
    assert_error(alice.http.get("/v1/sessions", params=params), 400, "invalid_request", field)


# --- bad input on create ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"name": 42}, 400, "invalid_parameter_type", "name"),
        ({"name": None}, 400, "invalid_parameter_type", "name"),
        ({"name": "x" * 101}, 400, "invalid_request", "name"),
        ({"nmae": "typo"}, 400, "invalid_request", "nmae"),
        ({"phoneNumber": "415-555-2671"}, 400, "invalid_phone_number", "phoneNumber"),
        ({"phoneNumber": "+1415555"}, 400, "invalid_phone_number", "phoneNumber"),
        ({"phoneNumber": 14155552671}, 400, "invalid_parameter_type", "phoneNumber"),
    ],
)
def test_bad_create_body_gets_its_documented_code(alice, body, status, code, field):
    assert_error(alice.http.post("/v1/sessions", json=body), status, code, field)
    assert not Session.objects.exists()


def test_unparsable_json_is_invalid_request(alice):
    response = alice.http.post("/v1/sessions", content=b'{"name": ',
                               headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_request")


def test_a_body_that_is_not_an_object_is_invalid_request(alice):
    assert_error(alice.http.post("/v1/sessions", json=["a"]), 400, "invalid_request")


def test_a_non_json_content_type_is_invalid_request(alice):
    response = alice.http.post("/v1/sessions", content=b"name=x",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    error = assert_error(response, 400, "invalid_request")
    assert "application/json" in error["details"]["reason"]


def test_an_empty_body_creates_with_defaults(alice):
    response = alice.http.post("/v1/sessions")
    assert response.status_code == 201
    assert response.json()["data"]["name"] == ""


def test_a_missing_required_field_is_missing_required_parameter(alice):
    session = create(alice)
    response = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/scan", json={})
    assert_error(response, 400, "missing_required_parameter", "phoneNumber")


# --- QR -------------------------------------------------------------------------------------


def test_qr_as_json_and_as_png(alice):
    session = create(alice)
    qr = alice.http.get(f"/v1/sessions/{session['id']}/qr").json()["data"]
    assert qr["code"] == session["qr"]["code"]
    png = alice.http.get(f"/v1/sessions/{session['id']}/qr", params={"format": "png"})
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_SIGNATURE)
    assert png.content == png_of(qr["code"])


@pytest.mark.parametrize(("params", "field"), [({"format": "gif"}, "format"),
                                               ({"size": "9"}, "size")])
def test_qr_with_bad_query_is_invalid_request(alice, params, field):
    session = create(alice)
    response = alice.http.get(f"/v1/sessions/{session['id']}/qr", params=params)
    assert_error(response, 400, "invalid_request", field)


def _age_qr(session_id: str) -> None:
    Session.objects.filter(pk=session_id).update(
        qr_expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_reading_an_expired_qr_is_qr_code_expired_and_expires_the_session(alice):
    session = create(alice)
    _age_qr(session["id"])
    assert_error(alice.http.get(f"/v1/sessions/{session['id']}/qr"), 400, "qr_code_expired")
    again = alice.http.get(f"/v1/sessions/{session['id']}").json()["data"]
    assert again["status"] == "expired" and again["qr"] is None
    assert_error(alice.http.get(f"/v1/sessions/{session['id']}/qr"), 400, "qr_code_expired")
    reasons = list(SessionStatusChange.objects.filter(session_id=session["id"])
                   .values_list("to_status", flat=True))
    assert reasons == ["starting", "qr_pending", "expired"]


def test_the_periodic_task_expires_overdue_sessions(alice):
    session = create(alice)
    fresh = create(alice)
    _age_qr(session["id"])
    assert sessions_expire_overdue() == 1
    assert Session.objects.get(pk=session["id"]).status == "expired"
    assert Session.objects.get(pk=fresh["id"]).status == "qr_pending"


def test_scanning_an_expired_qr_is_qr_code_expired(alice):
    session = create(alice)
    _age_qr(session["id"])
    response = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/scan",
                               json={"phoneNumber": "14155552671"})
    assert_error(response, 400, "qr_code_expired")
    assert Session.objects.get(pk=session["id"]).status == "expired"


def test_qr_of_a_starting_session_is_409_with_retry_after(alice):
    session = Session.objects.create(account=alice.account, engine="sandbox")
    response = alice.http.get(f"/v1/sessions/{session.id}/qr")
    assert_error(response, 409, "session_starting")
    assert int(response.headers["Retry-After"]) > 0


def test_qr_of_a_connected_session_is_qr_code_unavailable(alice):
    session = connected(alice)
    error = assert_error(alice.http.get(f"/v1/sessions/{session['id']}/qr"), 409,
                         "qr_code_unavailable")
    assert "connected" in error["details"]["reason"]


# --- sandbox: scan and disconnect -------------------------------------------------------


def test_scan_connects_the_session(alice):
    session = connected(alice, phone="+447911123456")
    assert session["status"] == "connected"
    assert session["phoneNumber"] == "447911123456"
    assert session["qr"] is None and session["connectedAt"] is not None
    assert get_engine().state(session["id"]) == "connected"


def test_scan_with_a_bad_phone_number(alice):
    session = create(alice)
    response = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/scan",
                               json={"phoneNumber": "12"})
    assert_error(response, 400, "invalid_phone_number", "phoneNumber")


def test_disconnect_then_the_documented_errors(alice):
    session = connected(alice)
    url = f"/v1/sandbox/sessions/{session['id']}/disconnect"
    response = alice.http.post(url)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "disconnected" and data["disconnectedAt"] is not None
    assert_error(alice.http.post(url), 400, "session_disconnected")


def test_disconnect_of_a_session_never_connected_is_session_not_connected(alice):
    session = create(alice)
    url = f"/v1/sandbox/sessions/{session['id']}/disconnect"
    assert_error(alice.http.post(url), 400, "session_not_connected")


def test_every_status_change_is_recorded_and_emits_session_status(alice):
    session = connected(alice)
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect")
    alice.http.delete(f"/v1/sessions/{session['id']}")
    history = list(SessionStatusChange.objects.filter(session_id=session["id"])
                   .values_list("to_status", flat=True))
    assert history == ["starting", "qr_pending", "connected", "disconnected", "logged_out"]
    events = Event.objects.filter(session_id=session["id"], type="session.status").order_by("id")
    assert [e.data["status"] for e in events] == history
    assert events[1].data["qr"]["code"].startswith("2@")
    # The event says what the API's session says, timestamps included.
    connected_event = events[2].data
    assert connected_event["createdAt"] == session["createdAt"]
    assert connected_event["connectedAt"] == session["connectedAt"]
    assert events[3].data["disconnectedAt"] is not None


# --- a lifecycle that looks after itself: disconnect reasons, reconnection, restart ----------


def test_a_network_drop_says_why_and_when_it_reconnects(alice):
    session = connected(alice)
    response = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect")
    data = response.json()["data"]
    assert (data["status"], data["lastErrorCode"]) == ("disconnected", "connection_lost")
    assert data["lastError"] and data["reconnectAt"] > data["disconnectedAt"]
    events = Event.objects.filter(session_id=session["id"], type="session.status")
    event = events.order_by("id").last()
    assert (event.data["lastErrorCode"], event.data["reconnectAt"]) == (
        "connection_lost", data["reconnectAt"])


def test_a_network_drop_reconnects_by_itself(alice, settings):
    settings.SANDBOX_RECONNECT_SECONDS = 0
    session = connected(alice)
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect",
                    json={"reason": "network"})
    data = alice.http.get(f"/v1/sessions/{session['id']}").json()["data"]
    assert (data["status"], data["lastErrorCode"], data["reconnectAt"]) == (
        "connected", None, None)
    history = list(SessionStatusChange.objects.filter(session_id=session["id"])
                   .values_list("to_status", flat=True))
    assert history[-2:] == ["disconnected", "connected"]


@pytest.mark.parametrize("reason, status, code", [
    ("logged_out", "logged_out", "logged_out_by_phone"),
    ("stream_replaced", "failed", "stream_replaced"),
    ("banned", "failed", "temporarily_banned"),
])
def test_whatsapps_and_the_phones_decisions_end_the_session(alice, reason, status, code):
    session = connected(alice)
    response = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect",
                               json={"reason": reason})
    data = response.json()["data"]
    assert (data["status"], data["lastErrorCode"], data["reconnectAt"]) == (status, code, None)
    assert data["lastError"]


def test_a_bad_disconnect_reason_is_refused(alice):
    session = connected(alice)
    url = f"/v1/sandbox/sessions/{session['id']}/disconnect"
    assert_error(alice.http.post(url, json={"reason": "meteor"}), 400, "invalid_request",
                 "reason")
    assert_error(alice.http.post(url, json={"reason": 5}), 400, "invalid_parameter_type",
                 "reason")
    assert alice.http.get(f"/v1/sessions/{session['id']}").json()["data"]["status"] == (
        "connected")


@pytest.mark.parametrize("reason", ["network", "stream_replaced", "banned"])
def test_restart_resumes_the_stored_login_without_a_qr_code(alice, reason):
    session = connected(alice, phone="447911123456")
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect", json={"reason": reason})
    response = alice.http.post(f"/v1/sessions/{session['id']}/restart")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["status"], data["phoneNumber"], data["qr"]) == (
        "connected", "447911123456", None)
    assert (data["lastError"], data["lastErrorCode"]) == (None, None)


def test_restart_of_an_expired_session_gives_a_fresh_qr_code(alice):
    session = create(alice)
    Session.objects.filter(pk=session["id"]).update(qr_expires_at=timezone.now())
    expired = alice.http.get(f"/v1/sessions/{session['id']}").json()["data"]
    assert (expired["status"], expired["lastErrorCode"]) == ("expired", "login_timeout")
    data = alice.http.post(f"/v1/sessions/{session['id']}/restart").json()["data"]
    assert data["status"] == "qr_pending" and data["qr"]["code"] != session["qr"]["code"]
    assert data["lastErrorCode"] is None
    again = alice.http.post(f"/v1/sessions/{session['id']}/restart").json()["data"]
    assert again["status"] == "qr_pending" and again["qr"]["code"] != data["qr"]["code"]


def test_a_restarted_login_gets_its_own_qr_deadline(alice, settings):
    session = create(alice)
    Session.objects.filter(pk=session["id"]).update(
        created_at=timezone.now() - timedelta(days=1), qr_expires_at=timezone.now())
    alice.http.get(f"/v1/sessions/{session['id']}")
    alice.http.post(f"/v1/sessions/{session['id']}/restart")
    assert sessions_expire_overdue() == 0
    assert Session.objects.get(pk=session["id"]).status == "qr_pending"


def test_restart_of_a_logged_out_session_is_session_logged_out(alice):
    session = connected(alice)
    alice.http.post(f"/v1/sandbox/sessions/{session['id']}/disconnect",
                    json={"reason": "logged_out"})
    assert_error(alice.http.post(f"/v1/sessions/{session['id']}/restart"), 409,
                 "session_logged_out")


def test_restart_takes_no_parameters_and_needs_sessions_write(live_server, alice):
    session = connected(alice)
    assert_error(alice.http.post(f"/v1/sessions/{session['id']}/restart", json={"now": True}),
                 400, "invalid_request", "now")
    _, read_only = alice.new_key(scopes=["sessions:read"])
    with http_client(live_server.url, read_only) as reader:
        assert_error(reader.post(f"/v1/sessions/{session['id']}/restart"), 403,
                     "insufficient_permissions")


# --- delete --------------------------------------------------------------------------------


def test_delete_logs_out_and_removes(alice):
    session = connected(alice)
    response = alice.http.delete(f"/v1/sessions/{session['id']}")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "logged_out"
    assert_error(alice.http.get(f"/v1/sessions/{session['id']}"), 404, "session_not_found")
    assert_error(alice.http.delete(f"/v1/sessions/{session['id']}"), 404, "session_not_found")
    assert get_engine().state(session["id"]) == "logged_out"
    assert alice.http.get("/v1/sessions").json()["data"] == []


# --- plan limit ----------------------------------------------------------------------------


def test_the_plan_limit_is_session_limit_reached_and_delete_frees_a_slot(make_tenant):
    tenant = make_tenant("solo", plan="free")  # 1 session
    first = create(tenant)
    assert_error(tenant.http.post("/v1/sessions", json={}), 403, "session_limit_reached")
    assert tenant.http.get("/v1/account").json()["data"]["usage"]["sessions"] == 1
    tenant.http.delete(f"/v1/sessions/{first['id']}")
    assert tenant.http.get("/v1/account").json()["data"]["usage"]["sessions"] == 0
    create(tenant)


def test_expired_sessions_count_until_deleted(make_tenant):
    tenant = make_tenant("solo", plan="free")
    session = create(tenant)
    _age_qr(session["id"])
    sessions_expire_overdue()
    assert_error(tenant.http.post("/v1/sessions", json={}), 403, "session_limit_reached")


def test_the_limit_holds_under_concurrent_creates(make_tenant):
    tenant = make_tenant("busy", plan="pro")
    Plan.objects.filter(name="pro").update(max_sessions=3)

    def attempt():
        with http_client(str(tenant.http.base_url), tenant.raw_key) as client:
            return client.post("/v1/sessions", json={}).status_code

    statuses = run_concurrently(10, attempt)
    assert sorted(statuses) == [201] * 3 + [403] * 7
    assert Session.objects.filter(account=tenant.account).count() == 3


# --- isolation and scopes -----------------------------------------------------------------


def test_another_accounts_session_answers_exactly_like_an_unknown_one(alice, bob):
    theirs = connected(alice)["id"]
    unknown = "ses_01ZZZZZZZZZZZZZZZZZZZZZZZZ"
    for session_id in (theirs, unknown):
        for method, path, body in [
            ("GET", f"/v1/sessions/{session_id}", None),
            ("GET", f"/v1/sessions/{session_id}/qr", None),
            ("DELETE", f"/v1/sessions/{session_id}", None),
            ("POST", f"/v1/sandbox/sessions/{session_id}/scan", {"phoneNumber": "14155552671"}),
            ("POST", f"/v1/sandbox/sessions/{session_id}/disconnect", None),
            ("POST", f"/v1/sessions/{session_id}/restart", None),
        ]:
            response = bob.http.request(method, path, json=body)
            error = assert_error(response, 404, "session_not_found")
            assert error == {"code": "session_not_found",
                             "message": "The specified session ID doesn't exist"}
    assert bob.http.get("/v1/sessions").json()["data"] == []
    assert Session.objects.get(pk=theirs).status == "connected"


def test_scopes_split_reading_and_writing(live_server, alice):
    _, read_only = alice.new_key(scopes=["sessions:read"])
    _, write_only = alice.new_key(scopes=["sessions:write"])
    with http_client(live_server.url, read_only) as reader:
        error = assert_error(reader.post("/v1/sessions", json={}), 403,
                             "insufficient_permissions")
        assert "sessions:write" in error["details"]["reason"]
        assert reader.get("/v1/sessions").status_code == 200
    with http_client(live_server.url, write_only) as writer:
        assert writer.post("/v1/sessions", json={}).status_code == 201
        error = assert_error(writer.get("/v1/sessions"), 403, "insufficient_permissions")
        assert "sessions:read" in error["details"]["reason"]


@pytest.mark.parametrize(("policy", "code", "field"), [
    ({"minIntervalSeconds": -1}, "invalid_parameter_value", "sendPolicy.minIntervalSeconds"),
    ({"maxIntervalSeconds": 3601}, "invalid_parameter_value", "sendPolicy.maxIntervalSeconds"),
    ({"minIntervalSeconds": 10, "maxIntervalSeconds": 5}, "invalid_parameter_value",
     "sendPolicy.maxIntervalSeconds"),
    ({"dailyLimit": 0}, "invalid_parameter_value", "sendPolicy.dailyLimit"),
    ({"dailyLimit": 1.5}, "invalid_parameter_type", "sendPolicy.dailyLimit"),
    ({"minIntervalSeconds": "5"}, "invalid_parameter_type", "sendPolicy.minIntervalSeconds"),
    ({"burst": 3}, "invalid_request", "burst"),
])
def test_a_bad_send_policy_is_refused_with_its_code(alice, policy, code, field):
    session = alice.http.post("/v1/sessions", json={}).json()["data"]
    response = alice.http.patch(f"/v1/sessions/{session['id']}", json={"sendPolicy": policy})
    assert_error(response, 400, code, field)


def test_a_send_policy_is_changed_in_part_and_reset_with_null(alice, bob, settings):
    settings.SEND_MIN_INTERVAL_SECONDS = 1
    session = alice.http.post("/v1/sessions", json={}).json()["data"]
    assert session["sendPolicy"] == {"minIntervalSeconds": 1, "maxIntervalSeconds": 1,
                                     "dailyLimit": None}
    url = f"/v1/sessions/{session['id']}"
    alice.http.patch(url, json={"sendPolicy": {"maxIntervalSeconds": 30, "dailyLimit": 500}})
    changed = alice.http.patch(url, json={"name": "shop", "sendPolicy": {"minIntervalSeconds": 5}})
    assert changed.status_code == 200, changed.text
    data = changed.json()["data"]
    assert data["name"] == "shop"
    assert data["sendPolicy"] == {"minIntervalSeconds": 5, "maxIntervalSeconds": 30,
                                  "dailyLimit": 500}
    reset = alice.http.patch(url, json={"sendPolicy": {"maxIntervalSeconds": None,
                                                       "dailyLimit": None}}).json()["data"]
    assert reset["sendPolicy"] == {"minIntervalSeconds": 5, "maxIntervalSeconds": 5,
                                   "dailyLimit": None}
    assert_error(bob.http.patch(url, json={"name": "mine"}), 404, "session_not_found")
