"""The general codes of the seed, the envelope, request ids and the error log."""

import pytest
from django.test import override_settings

from accounts.models import ApiErrorLog
from tests.conftest import assert_error, http_client
from tests.support.servers import database_url_of_test_db, free_port, gunicorn_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("path", ["/v1/nope", "/v1", "/v1/", "/v1/account/extra", "/v1/x/y/z"])
def test_unknown_route_is_resource_not_found(alice, path):
    assert_error(alice.http.get(path), 404, "resource_not_found")


@pytest.mark.parametrize("path", ["/v1/sessions/a%00b", "/v1/messages/a%00b",
                                  "/v1/webhooks/a%00b/deliveries", "/v1/sessions/%00/qr"])
def test_an_id_with_a_nul_byte_is_not_found_not_a_server_error(alice, path):
    """PostgreSQL refuses NUL in text: such an id must never reach it."""
    assert_error(alice.http.get(path), 404, "resource_not_found")
    logged = ApiErrorLog.objects.filter(code="resource_not_found").latest("created_at")
    assert "\x00" not in logged.path


@pytest.mark.parametrize("query", ["sessionId=a%00b", "cursor=%00", "status=x%00",
                                   "to=%00"])
def test_a_query_parameter_with_a_nul_byte_is_invalid_request(alice, query):
    name = query.split("=")[0]
    assert_error(alice.http.get(f"/v1/messages?{query}"), 400, "invalid_request", field=name)


def test_unknown_route_answers_the_envelope_for_any_method(anon):
    assert_error(anon.post("/v1/nope", json={"a": 1}), 404, "resource_not_found")
    assert_error(anon.delete("/v1/nope"), 404, "resource_not_found")


def test_wrong_method_is_method_not_allowed_with_allow(alice):
    response = alice.http.post("/v1/account", json={})
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_options_is_not_an_operation(alice):
    assert_error(alice.http.options("/v1/account"), 405, "method_not_allowed")


def test_an_unexpected_error_is_internal_server_error_without_traceback(alice, monkeypatch):
    def broken(**kwargs):
        raise ZeroDivisionError("secret detail")

    monkeypatch.setattr("accounts.views.account_usage", broken)
    response = alice.http.get("/v1/account", headers={"X-Request-ID": "trace-me-500"})
    assert_error(response, 500, "internal_server_error")
    assert "secret detail" not in response.text
    assert "ZeroDivisionError" not in response.text
    entry = ApiErrorLog.objects.get(request_id="trace-me-500")
    assert entry.status == 500 and entry.code == "internal_server_error"


def test_redis_unreachable_is_service_unavailable(alice):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with override_settings(REDIS_URL=dead_redis):
        response = alice.http.get("/v1/account")
    assert_error(response, 503, "service_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    # and it recovers by itself once Redis is back
    assert alice.http.get("/v1/account").status_code == 200


def test_health_reports_redis_down(anon):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        response = anon.get("/v1/health")
    error = assert_error(response, 503, "service_unavailable")
    assert "redis" in error["details"]["reason"]


def test_health_is_open_and_reports_dependencies(anon):
    response = anon.get("/v1/health")
    assert response.status_code == 200
    assert response.json()["data"] == {
        "status": "ok", "database": "ok", "redis": "ok", "engine": "sandbox",
        "engineHosts": None,
    }


# Superscript two and Arabic-Indic "10": str.isdigit() says yes to both.
@pytest.mark.parametrize("limit", ["\u00b2", "\u0661\u0660", "0", "101", "-1", "1.5", " 5"])
def test_a_limit_that_is_not_an_ascii_number_in_range_is_invalid_request(alice, limit):
    for path in ("/v1/sessions", "/v1/messages", "/v1/webhooks"):
        response = alice.http.get(path, params={"limit": limit})
        assert_error(response, 400, "invalid_request", "limit")


def test_health_is_degraded_while_no_engine_host_runs(anon, settings):
    """The real engine with no `run_engine` host alive: the API still accepts (sends wait
    in their queues), so 200, but not "ok"."""
    settings.WHATSAPP_ENGINE = "whatsmeow"
    data = anon.get("/v1/health").json()["data"]
    assert data["status"] == "degraded"
    assert data["engineHosts"] == {"alive": 0, "sessionsOwned": 0, "capacityLeft": None,
                                   "hosts": []}


def test_with_no_engine_host_a_session_still_starts_sends_queue_and_deletes(alice, settings):
    """The real engine with no `run_engine` host: nothing waits for an answer that cannot
    come, nothing answers 503 (the engine's part is done when a host is back)."""
    from sessions_app.models import Session

    settings.WHATSAPP_ENGINE = "whatsmeow"
    created = alice.http.post("/v1/sessions", json={})
    assert created.status_code == 201 and created.json()["data"]["status"] == "starting"
    session_id = created.json()["data"]["id"]
    Session.objects.filter(pk=session_id).update(status="connected")  # as it was before
    sent = alice.http.post("/v1/messages/text", json={
        "sessionId": session_id, "to": "14155550123", "text": "waits for its host"})
    assert sent.status_code == 201 and sent.json()["data"]["status"] == "queued"
    deleted = alice.http.delete(f"/v1/sessions/{session_id}")
    assert deleted.status_code == 200 and deleted.json()["data"]["status"] == "logged_out"


def test_with_no_engine_host_an_unscanned_qr_code_still_expires(alice, settings):
    from datetime import timedelta

    from django.utils import timezone

    from sessions_app.models import Session
    from sessions_app.services import sessions_expire_overdue

    settings.WHATSAPP_ENGINE = "whatsmeow"
    session_id = alice.http.post("/v1/sessions", json={}).json()["data"]["id"]
    Session.objects.filter(pk=session_id).update(
        status_changed_at=timezone.now() - timedelta(seconds=settings.QR_TTL_SECONDS + 1))
    assert sessions_expire_overdue() == 1  # the engine's stop cannot reach anyone: no matter
    session = Session.objects.get(pk=session_id)
    assert (session.status, session.last_error_code) == ("expired", "login_timeout")


@pytest.mark.subprocess
def test_database_unreachable_is_service_unavailable(alice):
    closed = free_port()
    env = {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed}/nowhere"}
    with gunicorn_server(env, workers=1) as base, http_client(base, alice.raw_key) as client:
        account = client.get("/v1/account")
        health = client.get("/v1/health")
    assert_error(account, 503, "service_unavailable")
    assert int(account.headers["Retry-After"]) > 0
    error = assert_error(health, 503, "service_unavailable")
    assert "database" in error["details"]["reason"]


@pytest.mark.subprocess
def test_the_production_server_serves_the_api(alice):
    """gunicorn with the real settings, against this test's PostgreSQL database and Redis."""
    env = {"DATABASE_URL": database_url_of_test_db()}
    with gunicorn_server(env, workers=1) as base, http_client(base, alice.raw_key) as client:
        assert client.get("/v1/account").status_code == 200
        with http_client(base) as anon:
            assert anon.get("/v1/health").status_code == 200


def test_request_id_is_echoed_when_sane(alice):
    response = alice.http.get("/v1/account", headers={"X-Request-ID": "client-abc.123"})
    assert response.headers["X-Request-ID"] == "client-abc.123"


@pytest.mark.parametrize("bad", ["", "has space", "x" * 200, "<script>"])
def test_request_id_is_replaced_when_not_sane(alice, bad):
    response = alice.http.get("/v1/account", headers={"X-Request-ID": bad})
    assert response.headers["X-Request-ID"].startswith("req_")


def test_every_error_is_recorded_with_its_request_id_account_and_key(live_server, alice):
    key, raw = alice.new_key(scopes=["sessions:read"])
    with http_client(live_server.url, raw) as client:
        response = client.get("/v1/account", headers={"X-Request-ID": "support-case-42"})
    assert response.status_code == 403
    entry = ApiErrorLog.objects.get(request_id="support-case-42")
    assert entry.account_id == alice.account.id
    assert entry.key_prefix == key.prefix
    assert (entry.method, entry.path, entry.status) == ("GET", "/v1/account", 403)
    assert entry.code == "insufficient_permissions"
    assert "account:read" in entry.details["reason"]


def test_unauthenticated_and_routing_errors_are_recorded_too(anon):
    anon.get("/v1/account", headers={"X-Request-ID": "no-key-1"})
    anon.get("/v1/missing", headers={"X-Request-ID": "no-route-1"})
    assert ApiErrorLog.objects.get(request_id="no-key-1").code == "missing_api_key"
    assert ApiErrorLog.objects.get(request_id="no-route-1").code == "resource_not_found"


def test_a_failing_error_log_does_not_change_the_answer(anon, monkeypatch):
    def broken_create(**kwargs):
        raise RuntimeError("log table gone")

    monkeypatch.setattr(ApiErrorLog.objects, "create", broken_create)
    assert_error(anon.get("/v1/account"), 401, "missing_api_key")


def test_successful_responses_use_the_success_envelope(alice):
    body = alice.http.get("/v1/account").json()
    assert body["success"] is True and "data" in body


def test_accept_header_never_changes_the_json_answer(alice):
    response = alice.http.get("/v1/account", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")


# --- hostile bodies and requests get their documented code, never a 500 --------------------


def test_a_body_over_the_size_limit_is_invalid_request(alice, settings):
    body = b'{"name": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + b'"}'
    response = alice.http.post("/v1/sessions", content=body,
                               headers={"Content-Type": "application/json"})
    error = assert_error(response, 400, "invalid_request")
    assert "too large" in error["details"]["reason"]


def test_json_nested_too_deep_is_invalid_request(alice):
    body = "[" * 5000 + "]" * 5000
    response = alice.http.post("/v1/sessions", content=body,
                               headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_request")


def test_a_lone_surrogate_in_a_key_or_a_value_is_invalid_request(alice):
    for body in ('{"\\udfff": 1}', '{"name": "\\ud800"}', '{"name": ["x", {"a": "\\udc00"}]}'):
        response = alice.http.post("/v1/sessions", content=body,
                                   headers={"Content-Type": "application/json"})
        assert_error(response, 400, "invalid_request")
    # A whole pair is a character like any other (an emoji, escaped).
    paired = alice.http.post("/v1/sessions", content='{"name": "\\ud83d\\ude00"}',
                             headers={"Content-Type": "application/json"})
    assert paired.status_code == 201 and paired.json()["data"]["name"] == "\U0001f600"


def test_the_schema_answers_a_json_accept_header(anon):
    response = anon.get("/v1/schema", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


def test_the_unknown_path_error_is_compact_json_like_every_answer(anon):
    response = anon.get("/v1/no/such/path")
    assert response.status_code == 404
    assert b": " not in response.content and b", " not in response.content


def test_an_error_about_a_parameter_with_a_nul_in_its_name_is_still_recorded(alice):
    from accounts.models import ApiErrorLog

    response = alice.http.post("/v1/sessions", content='{"name": "x", "a\\u0000b": 1}',
                               headers={"Content-Type": "application/json",
                                        "X-Request-ID": "req-nul-1"})
    assert_error(response, 400, "invalid_request", "a\x00b")
    entry = ApiErrorLog.objects.get(request_id="req-nul-1")
    assert entry.details["field"] == "a\ufffdb"


def test_error_log_entries_are_purged_after_their_retention(alice, settings):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import ApiErrorLog
    from accounts.services import error_logs_purge

    alice.http.get("/v1/sessions/ses_unknown", headers={"X-Request-ID": "req-old"})
    alice.http.get("/v1/sessions/ses_unknown", headers={"X-Request-ID": "req-new"})
    ApiErrorLog.objects.filter(request_id="req-old").update(
        created_at=timezone.now() - timedelta(days=settings.ERROR_LOG_RETENTION_DAYS, hours=1))
    assert error_logs_purge() == 1
    assert list(ApiErrorLog.objects.values_list("request_id", flat=True)) == ["req-new"]


def test_a_host_header_not_allowed_gets_the_envelope_on_v1(anon):
    response = anon.get("/v1/health", headers={"Host": "evil.example"})
    assert_error(response, 400, "invalid_request")
    assert response.headers["Content-Type"] == "application/json"


def test_a_flood_of_keyless_requests_cannot_fill_the_error_log(anon, alice, settings):
    """Random keys from one address: each is answered, the first ones are recorded; requests
    with a valid key are not capped this way."""
    settings.ERROR_LOG_ANONYMOUS_PER_MINUTE = 5
    for n in range(12):
        response = anon.get("/v1/account", headers={
            "Authorization": f"Bearer wak_{n:012d}_{'x' * 32}", "X-Request-ID": f"flood-{n}"})
        assert_error(response, 401, "invalid_api_key")
    recorded = ApiErrorLog.objects.filter(request_id__startswith="flood-").count()
    assert 5 <= recorded <= 10  # 5 a minute (a minute's turn may allow 5 more)
    for n in range(8):
        alice.http.get("/v1/sessions/ses_unknown", headers={"X-Request-ID": f"keyed-{n}"})
    assert ApiErrorLog.objects.filter(request_id__startswith="keyed-").count() == 8
