"""The admin pages for plans, accounts, keys and the error log: they render, creating a key
shows it once, revoking works and takes effect on the API at once."""

import re

import pytest

from accounts.models import ApiErrorLog, ApiKey
from accounts.services import api_key_create
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("model", ["plan", "account", "apikey", "apierrorlog"])
def test_list_and_add_pages_render(operator, alice, model):
    assert operator.get(f"/admin/accounts/{model}/").status_code == 200
    add = operator.get(f"/admin/accounts/{model}/add/")
    assert add.status_code == (403 if model == "apierrorlog" else 200)


def test_account_list_shows_todays_usage(operator, alice):
    from accounts.quotas import daily_quota_consume

    daily_quota_consume(account_id=alice.account.id, limit=100, count=7)
    page = operator.get("/admin/accounts/account/").content.decode()
    assert re.search(r'field-messages_today">7<', page)


def test_creating_a_key_in_the_admin_shows_it_once_and_it_works(operator, alice):
    response = operator.post(
        "/admin/accounts/apikey/add/",
        {"account": alice.account.id, "name": "from admin", "scopes": ["account:read"],
         "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    shown = re.findall(r"wak_[a-z0-9]{12}_[A-Za-z0-9]{32}", response.content.decode())
    assert len(set(shown)) == 1
    key = ApiKey.objects.get(name="from admin")
    assert shown[0].startswith(key.prefix)
    assert shown[0] not in operator.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()


def test_revoke_action_takes_effect_on_the_api(operator, alice):
    assert alice.http.get("/v1/account").status_code == 200
    selected = {"action": "revoke_keys", "_selected_action": [alice.key.pk]}
    asked = operator.post("/admin/accounts/apikey/", selected)  # irreversible: asked first
    assert "stop working at once" in asked.content.decode()
    alice.key.refresh_from_db()
    assert alice.key.revoked_at is None
    response = operator.post("/admin/accounts/apikey/", {**selected, "confirmed": "yes"},
                             follow=True)
    assert response.status_code == 200
    alice.key.refresh_from_db()
    assert alice.key.revoked_at is not None
    assert_error(alice.http.get("/v1/account"), 401, "invalid_api_key")


def test_changing_the_plan_in_the_admin_changes_the_limits_at_once(operator, alice, plans):
    assert alice.http.get("/v1/account").headers["RateLimit-Limit"] == "600"
    response = operator.post(
        f"/admin/accounts/account/{alice.account.pk}/change/",
        {"name": alice.account.name, "plan": plans["free"].pk, "is_active": "on"},
    )
    assert response.status_code == 302
    assert alice.http.get("/v1/account").headers["RateLimit-Limit"] == "60"


def test_error_log_is_read_only_and_searchable_by_request_id(operator, anon):
    anon.get("/v1/account", headers={"X-Request-ID": "find-me-7"})
    entry = ApiErrorLog.objects.get(request_id="find-me-7")
    page = operator.get("/admin/accounts/apierrorlog/", {"q": "find-me-7"}).content.decode()
    assert "find-me-7" in page
    detail = operator.get(f"/admin/accounts/apierrorlog/{entry.pk}/change/")
    assert detail.status_code == 200
    assert b'name="code"' not in detail.content  # no editable inputs


def test_keys_are_listed_by_prefix_never_by_secret(operator, alice):
    _, raw = api_key_create(account=alice.account, name="listed")
    page = operator.get("/admin/accounts/apikey/").content.decode()
    assert raw.split("_", 2)[2] not in page


@pytest.mark.parametrize(
    "url",
    ["/admin/sessions_app/session/", "/admin/sessions_app/engineeventrecord/",
     "/admin/webhooks/event/", "/admin/"],
)
def test_session_and_event_pages_render(operator, alice, url):
    alice.http.post("/v1/sessions", json={})
    assert operator.get(url).status_code == 200


def test_session_detail_shows_its_history_and_the_action_logs_it_out(operator, alice):
    from sessions_app.models import Session

    session_id = alice.http.post("/v1/sessions", json={}).json()["data"]["id"]
    page = operator.get(f"/admin/sessions_app/session/{session_id}/change/").content.decode()
    assert "qr_pending" in page and "QR code issued" in page
    selected = {"action": "log_out_and_remove", "_selected_action": [session_id]}
    asked = operator.post("/admin/sessions_app/session/", selected).content.decode()
    assert "scan a new QR code" in asked and session_id in asked
    assert Session.objects.get(pk=session_id).status == "qr_pending"
    operator.post("/admin/sessions_app/session/", {**selected, "confirmed": "yes"})
    assert Session.objects.get(pk=session_id).status == "logged_out"
    assert_error(alice.http.get(f"/v1/sessions/{session_id}"), 404, "session_not_found")


def test_admin_sign_in_attempts_are_limited_like_the_dashboards(settings):
    """Staff see every tenant: their passwords are capped against guessing too, even the
    right one once the limit is reached."""
    import uuid

    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.DASHBOARD_LOGIN_RATE = "3/m"
    name = f"staff-{uuid.uuid4().hex[:8]}"
    get_user_model().objects.create_superuser(name, f"{name}@example.com", "right-pw-123")
    client = Client(REMOTE_ADDR=f"127.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}")
    for _ in range(3):
        wrong = client.post("/admin/login/", {"username": name, "password": "wrong"})
        assert wrong.status_code == 200
    refused = client.post("/admin/login/", {"username": name, "password": "right-pw-123"})
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert "Too many sign-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session


def test_behind_a_proxy_the_limits_count_the_client_not_the_proxy(settings):
    from django.test import RequestFactory

    from accounts.sign_in import client_address

    request = RequestFactory().post("/dashboard/login/", REMOTE_ADDR="10.0.0.2",
                                    HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7")
    settings.CLIENT_IP_FROM_FORWARDED_FOR = False
    assert client_address(request) == "10.0.0.2"  # a forged header is ignored by default
    settings.CLIENT_IP_FROM_FORWARDED_FOR = True
    assert client_address(request) == "203.0.113.7"  # the entry the proxy appended
