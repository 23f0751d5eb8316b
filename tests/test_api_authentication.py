"""Bearer API keys: every authentication code of the seed over real HTTP."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_revoke
from tests.conftest import assert_error, http_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_valid_key_reads_its_own_account(alice):
    response = alice.http.get("/v1/account")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["data"]["id"] == alice.account.id
    assert body["data"]["plan"]["name"] == "pro"
    assert body["data"]["plan"]["maxSessions"] == 5
    assert body["data"]["usage"]["messagesToday"] == 0


@pytest.mark.parametrize("header", [None, "", "Bearer"])
def test_no_key_is_missing_api_key_with_www_authenticate(anon, header):
    headers = {} if header is None else {"Authorization": header}
    response = anon.get("/v1/account", headers=headers)
    assert_error(response, 401, "missing_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wak_aaaaaaaaaaaa_" + "A" * 32,  # well-formed, unknown
        "Bearer not-a-key",
        "Bearer wak_short_x",
        "Basic dXNlcjpwYXNz",
        "Token wak_aaaaaaaaaaaa_" + "A" * 32,
    ],
)
def test_unknown_or_malformed_key_is_invalid_api_key(anon, alice, header):
    response = anon.get("/v1/account", headers={"Authorization": header})
    assert_error(response, 401, "invalid_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_right_prefix_with_wrong_secret_is_invalid(anon, alice):
    forged = alice.raw_key[:-1] + ("A" if alice.raw_key[-1] != "A" else "B")
    response = anon.get("/v1/account", headers={"Authorization": f"Bearer {forged}"})
    assert_error(response, 401, "invalid_api_key")


def test_revoked_key_stops_working_at_once_even_when_cached(alice):
    assert alice.http.get("/v1/account").status_code == 200  # now cached
    api_key_revoke(api_key=alice.key)
    assert_error(alice.http.get("/v1/account"), 401, "invalid_api_key")


def test_expired_key_is_expired_api_key(live_server, alice):
    _key, raw = alice.new_key(expires_at=timezone.now() - timedelta(seconds=1))
    with http_client(live_server.url, raw) as client:
        response = client.get("/v1/account")
    assert_error(response, 401, "expired_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_key_expiring_later_works_until_then(live_server, alice):
    _key, raw = alice.new_key(expires_at=timezone.now() + timedelta(hours=1))
    with http_client(live_server.url, raw) as client:
        assert client.get("/v1/account").status_code == 200


def test_key_without_the_scope_is_insufficient_permissions(live_server, alice):
    _key, raw = alice.new_key(scopes=["sessions:read"])
    with http_client(live_server.url, raw) as client:
        error = assert_error(client.get("/v1/account"), 403, "insufficient_permissions")
    assert "account:read" in error["details"]["reason"]


def test_disabled_account_is_refused(alice):
    alice.account.is_active = False
    alice.account.save()
    error = assert_error(alice.http.get("/v1/account"), 403, "insufficient_permissions")
    assert "disabled" in error["details"]["reason"]


def test_use_is_recorded_on_the_key(alice):
    assert alice.http.get("/v1/account").status_code == 200
    alice.key.refresh_from_db()
    assert alice.key.last_used_at is not None


def test_only_a_hash_of_the_key_is_stored(alice):
    stored = ApiKey.objects.get(pk=alice.key.pk)
    secret_part = alice.raw_key.split("_", 2)[2]
    assert secret_part not in stored.key_hash
    assert alice.raw_key.startswith(stored.prefix + "_")


def test_each_tenant_sees_only_its_own_account(alice, bob):
    assert alice.http.get("/v1/account").json()["data"]["id"] == alice.account.id
    assert bob.http.get("/v1/account").json()["data"]["id"] == bob.account.id
