"""Webhook registration over HTTP: every webhook code of the seed, signatures checked with the
reference verifier (the `standardwebhooks` package), rotation, isolation."""

import json

import pytest
from standardwebhooks.webhooks import Webhook as ReferenceVerifier

from infra import safe_http
from tests.conftest import assert_error
from tests.support.http_server import Route
from tests.support.servers import free_port
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(receiver):
    """The shared receiver, with routes that fail in each way registration must report."""
    receiver.routes.update({
        "/fail": Route(status=500, body=b"boom"),
        "/missing": Route(status=404),
        "/slow": Route(status=200, delay=6.5),
        # Each byte comes well within a read's timeout; the answer as a whole takes 20 s.
        "/drip": Route(status=200, body=b"ok", drip=0.25),
        "/moved": Route(status=302, headers={"Location": "/hook"}),
    })
    return receiver


def create(tenant, receiver, path="/hook", **extra):
    body = {"url": receiver.url(path), "events": ["message.status"], **extra}
    return tenant.http.post("/v1/webhooks", json=body)


def verify(hit, secret):
    """The reference verifier accepts the request (raises if not) and returns the payload."""
    headers = {k.lower(): v for k, v in hit.headers.items()}
    return ReferenceVerifier(secret).verify(hit.body, headers)


def test_create_sends_a_signed_test_event_and_returns_the_secret_once(alice, receiver):
    response = create(alice, receiver, description="orders")
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["id"].startswith("whk_") and data["enabled"] is True
    assert data["events"] == ["message.status"] and data["description"] == "orders"
    assert data["secret"].startswith("whsec_")
    (hit,) = receiver.hits_for("/hook")
    payload = verify(hit, data["secret"])
    assert payload["event"] == "webhook.test"
    assert hit.headers["webhook-id"] == payload["id"]
    assert hit.headers["Content-Type"] == "application/json"
    assert "whatsapp-api-service" in hit.headers["User-Agent"]
    again = alice.http.get(f"/v1/webhooks/{data['id']}").json()["data"]
    assert "secret" not in again


def test_a_given_secret_is_used(alice, receiver):
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    data = create(alice, receiver, secret=secret).json()["data"]
    assert data["secret"] == secret
    verify(receiver.hits_for("/hook")[0], secret)


@pytest.mark.parametrize("secret", ["plain", "whsec_not-base64!!", "whsec_c2hvcnQ="])
def test_a_malformed_secret_is_invalid_request(alice, receiver, secret):
    assert_error(create(alice, receiver, secret=secret), 400, "invalid_request", "secret")


@pytest.mark.parametrize("url", ["", "not a url", "ftp://example.com/hook", "https://",
                                 "https://user:pw@example.com/hook", "//example.com/hook",
                                 "https://example.com:99999/hook",
                                 "https://example.com/" + "x" * 2040])
def test_malformed_urls_are_invalid_webhook_url(alice, receiver, url):
    response = alice.http.post("/v1/webhooks", json={"url": url, "events": ["session.status"]})
    assert_error(response, 400, "invalid_webhook_url", "url")


def test_a_receiver_answering_with_a_non_ascii_header_is_registered(alice, receiver):
    """`X-Note: café` (latin-1 on the wire, as HTTP allows) in the receiver's answer."""
    receiver.routes["/accented"] = Route(status=200, headers={"X-Note": "caf\u00e9"})
    response = create(alice, receiver, path="/accented")
    assert response.status_code == 201, response.text
    hook = response.json()["data"]
    patched = alice.http.patch(f"/v1/webhooks/{hook['id']}", json={"description": "ok"})
    assert patched.status_code == 200


def test_an_empty_url_in_a_change_is_invalid_webhook_url(alice, receiver):
    hook = create(alice, receiver).json()["data"]
    response = alice.http.patch(f"/v1/webhooks/{hook['id']}", json={"url": ""})
    assert_error(response, 400, "invalid_webhook_url", "url")


def test_http_is_refused_while_https_is_required(alice, receiver, settings):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    error = assert_error(create(alice, receiver), 400, "invalid_webhook_url", "url")
    assert "https" in error["details"]["reason"]
    assert receiver.hits == []


def test_private_targets_are_refused_unless_allowed(alice, receiver, settings):
    settings.ALLOW_PRIVATE_URLS = False
    error = assert_error(create(alice, receiver), 400, "invalid_webhook_url", "url")
    assert "loopback" in error["details"]["reason"]
    assert receiver.hits == []


@pytest.mark.parametrize(("events", "named"), [(["message.sent"], "message.sent"),
                                               (["session.status", "bogus"], "bogus")])
def test_unknown_events_are_invalid_webhook_event(alice, receiver, events, named):
    error = assert_error(create(alice, receiver, events=events), 400, "invalid_webhook_event",
                         "events")
    assert named in error["details"]["reason"]


def test_no_events_is_invalid_webhook_event(alice, receiver):
    assert_error(create(alice, receiver, events=[]), 400, "invalid_webhook_event", "events")


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"events": "message.status"}, "invalid_parameter_type", "events"),
    ({"events": [1]}, "invalid_parameter_type", "events"),
    ({"url": None}, "invalid_parameter_type", "url"),
    ({"events": None}, "invalid_parameter_type", "events"),
])
def test_wrong_types(alice, receiver, body, code, field):
    assert_error(create(alice, receiver, **body), 400, code, field)


def test_a_missing_url_is_missing_required_parameter(alice):
    response = alice.http.post("/v1/webhooks", json={"events": ["message.status"]})
    assert_error(response, 400, "missing_required_parameter", "url")


def test_a_refused_connection_is_webhook_url_unreachable(alice, receiver):
    response = alice.http.post("/v1/webhooks", json={
        "url": f"http://127.0.0.1:{free_port()}/hook", "events": ["message.status"]})
    assert_error(response, 400, "webhook_url_unreachable", "url")
    assert not Webhook.objects.exists()


def test_a_name_that_does_not_resolve_is_webhook_url_unreachable(alice, receiver, monkeypatch):
    real_getaddrinfo = safe_http.socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        # The one unknown name fails as DNS would; nothing is asked of a real resolver.
        if host == "hooks.nowhere.invalid":
            raise safe_http.socket.gaierror(-2, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(safe_http.socket, "getaddrinfo", getaddrinfo)
    response = alice.http.post("/v1/webhooks", json={
        "url": "https://hooks.nowhere.invalid/x", "events": ["message.status"]})
    error = assert_error(response, 400, "webhook_url_unreachable", "url")
    assert "resolved" in error["details"]["reason"]


@pytest.mark.parametrize("path", ["/fail", "/missing", "/moved"])
def test_a_non_2xx_answer_to_the_test_event_is_refused(alice, receiver, path):
    error = assert_error(create(alice, receiver, path=path), 400, "webhook_url_unreachable",
                         "url")
    assert "HTTP" in error["details"]["reason"]


@pytest.mark.parametrize("path", ["/slow", "/drip"])
def test_no_answer_within_5_seconds_is_webhook_response_timeout(alice, receiver, path):
    assert_error(create(alice, receiver, path=path), 400, "webhook_response_timeout", "url")
    assert not Webhook.objects.exists()


def test_session_filter_must_be_one_of_the_accounts_sessions(alice, bob, receiver):
    theirs = bob.http.post("/v1/sessions", json={}).json()["data"]["id"]
    for session_id in (theirs, "ses_01ZZZZZZZZZZZZZZZZZZZZZZZZ"):
        assert_error(create(alice, receiver, sessionId=session_id), 404, "session_not_found",
                     "sessionId")
    mine = alice.http.post("/v1/sessions", json={}).json()["data"]["id"]
    assert create(alice, receiver, sessionId=mine).json()["data"]["sessionId"] == mine


def test_list_get_update_delete(alice, receiver):
    first = create(alice, receiver).json()["data"]
    second = create(alice, receiver, events=["session.status"]).json()["data"]
    listed = alice.http.get("/v1/webhooks").json()["data"]
    assert [w["id"] for w in listed] == [second["id"], first["id"]]
    patched = alice.http.patch(f"/v1/webhooks/{first['id']}", json={
        "events": ["message.received", "message.status"], "enabled": False})
    assert patched.status_code == 200
    assert patched.json()["data"]["enabled"] is False
    assert patched.json()["data"]["events"] == ["message.received", "message.status"]
    assert alice.http.delete(f"/v1/webhooks/{first['id']}").json()["data"]["deleted"] is True
    assert_error(alice.http.get(f"/v1/webhooks/{first['id']}"), 404, "resource_not_found")
    assert [w["id"] for w in alice.http.get("/v1/webhooks").json()["data"]] == [second["id"]]


def test_changing_the_url_tests_the_new_one(alice, receiver):
    hook = create(alice, receiver).json()["data"]
    response = alice.http.patch(f"/v1/webhooks/{hook['id']}",
                                json={"url": f"http://127.0.0.1:{free_port()}/x"})
    assert_error(response, 400, "webhook_url_unreachable", "url")
    assert alice.http.get(f"/v1/webhooks/{hook['id']}").json()["data"]["url"] == hook["url"]


def test_rotation_signs_with_both_secrets_during_the_grace_period(alice, receiver):
    hook = create(alice, receiver).json()["data"]
    rotated = alice.http.patch(f"/v1/webhooks/{hook['id']}", json={"rotateSecret": True})
    new_secret = rotated.json()["data"]["secret"]
    assert new_secret != hook["secret"]
    assert alice.http.post(f"/v1/webhooks/{hook['id']}/test").status_code == 200
    hit = receiver.hits_for("/hook")[-1]
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    verify(hit, new_secret)
    verify(hit, hook["secret"])


def test_the_test_route_sends_a_signed_event(alice, receiver):
    hook = create(alice, receiver).json()["data"]
    response = alice.http.post(f"/v1/webhooks/{hook['id']}/test")
    assert response.status_code == 200
    assert response.json()["data"]["statusCode"] == 200
    payload = verify(receiver.hits_for("/hook")[-1], hook["secret"])
    assert payload["event"] == "webhook.test"
    assert json.loads(receiver.hits_for("/hook")[-1].body)["data"] == {"message": "Test event"}
    # The test is recorded as a delivery: listed with its attempt, and replayable.
    result = response.json()["data"]
    assert result["eventId"] == payload["id"]
    listed = alice.http.get(f"/v1/webhooks/{hook['id']}/deliveries",
                            params={"event": "webhook.test"}).json()["data"]
    assert [(d["id"], d["status"], d["attempts"]) for d in listed] == [
        (result["deliveryId"], "succeeded", 1)]
    assert listed[0]["attemptLog"][0]["statusCode"] == 200


def test_a_refused_test_event_is_recorded_as_a_failed_delivery(alice, receiver):
    hook = create(alice, receiver).json()["data"]
    receiver.routes["/hook"] = Route(status=503, body=b"maintenance")
    response = alice.http.post(f"/v1/webhooks/{hook['id']}/test")
    assert_error(response, 400, "webhook_url_unreachable", field="url")
    listed = alice.http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
    assert [(d["event"], d["status"], d["lastStatusCode"]) for d in listed] == [
        ("webhook.test", "failed", 503)]
    assert listed[0]["attemptLog"][0]["responseSnippet"] == "maintenance"


def test_another_accounts_webhook_answers_exactly_like_an_unknown_one(alice, bob, receiver):
    hook = create(alice, receiver).json()["data"]["id"]
    for webhook_id in (hook, "whk_01ZZZZZZZZZZZZZZZZZZZZZZZZ"):
        for method, path in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/test"),
                             ("GET", "/deliveries")]:
            response = bob.http.request(method, f"/v1/webhooks/{webhook_id}{path}",
                                        json={} if method in ("PATCH", "POST") else None)
            error = assert_error(response, 404, "resource_not_found")
            assert error["details"] == {"reason": "No such webhook."}
    assert bob.http.get("/v1/webhooks").json()["data"] == []
    assert Webhook.objects.get(pk=hook).deleted_at is None


def test_scopes(live_server, alice, receiver):
    from tests.conftest import http_client

    _, reader = alice.new_key(scopes=["webhooks:read"])
    with http_client(live_server.url, reader) as client:
        assert client.get("/v1/webhooks").status_code == 200
        error = assert_error(client.post("/v1/webhooks", json={}), 403,
                             "insufficient_permissions")
        assert "webhooks:write" in error["details"]["reason"]
