"""Per-key rate and concurrency limits from the plan, on Redis (and in memory for the
embedded mode). The limiter's clock is pinned so a test never straddles two windows."""

import threading

import pytest
from django.test import override_settings

from accounts import limits, selectors
from accounts.limits import MemoryLimiter, get_limiter
from accounts.services import plan_upsert
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)

PINNED_NOW = 1_800_000_010.0  # 10 s into a minute window: resets in 50 s


@pytest.fixture
def pinned_clock(monkeypatch):
    monkeypatch.setattr(limits, "clock", lambda: PINNED_NOW)


@pytest.fixture
def tiny(make_tenant):
    plan_upsert(name="tiny", max_sessions=1, daily_message_limit=10,
                rate_limit_per_minute=3, max_concurrent_requests=1)
    from accounts.models import Plan

    def make(name="tiny-tenant"):
        tenant = make_tenant(name, plan="free")
        tenant.account.plan = Plan.objects.get(name="tiny")
        tenant.account.save()
        return tenant

    return make


def test_every_authenticated_response_carries_ratelimit_headers(alice, pinned_clock):
    ok = alice.http.get("/v1/account")
    assert ok.headers["RateLimit-Limit"] == "600"
    assert ok.headers["RateLimit-Remaining"] == "599"
    assert ok.headers["RateLimit-Reset"] == "50"
    wrong_method = alice.http.delete("/v1/account")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["RateLimit-Remaining"] == "598"


def test_over_the_rate_is_rate_limit_exceeded_with_retry_after(tiny, pinned_clock):
    tenant = tiny()
    remaining = [tenant.http.get("/v1/account").headers["RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    response = tenant.http.get("/v1/account")
    assert_error(response, 429, "rate_limit_exceeded")
    assert response.headers["Retry-After"] == "50"
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Limit"] == "3"


def test_rate_limit_is_per_key(tiny, pinned_clock, live_server):
    tenant = tiny()
    for _ in range(3):
        tenant.http.get("/v1/account")
    assert tenant.http.get("/v1/account").status_code == 429
    _, other_raw = tenant.new_key()
    from tests.conftest import http_client

    with http_client(live_server.url, other_raw) as other:
        assert other.get("/v1/account").status_code == 200


def test_the_next_window_allows_again(tiny, monkeypatch):
    tenant = tiny()
    monkeypatch.setattr(limits, "clock", lambda: PINNED_NOW)
    for _ in range(3):
        tenant.http.get("/v1/account")
    assert tenant.http.get("/v1/account").status_code == 429
    monkeypatch.setattr(limits, "clock", lambda: PINNED_NOW + 60)
    assert tenant.http.get("/v1/account").status_code == 200


def test_a_request_over_the_concurrency_limit_is_refused_while_another_is_in_flight(
    tiny, monkeypatch
):
    tenant = tiny()
    entered, release = threading.Event(), threading.Event()
    real_usage = selectors.account_usage

    def slow_usage(**kwargs):
        entered.set()
        assert release.wait(10)
        return real_usage(**kwargs)

    monkeypatch.setattr("accounts.views.account_usage", slow_usage)
    results = {}
    first = threading.Thread(target=lambda: results.update(first=tenant.http.get("/v1/account")))
    first.start()
    assert entered.wait(10)
    assert get_limiter().in_flight(tenant.key.id) == 1
    second = tenant.http.get("/v1/account")
    release.set()
    first.join(10)
    response = assert_error(second, 429, "concurrent_request_limit_exceeded")
    assert second.headers["Retry-After"] == "1"
    assert response["code"] == "concurrent_request_limit_exceeded"
    assert results["first"].status_code == 200
    assert get_limiter().in_flight(tenant.key.id) == 0


def test_the_in_flight_slot_is_released_when_the_view_fails(alice, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("accounts.views.account_usage", broken)
    assert_error(alice.http.get("/v1/account"), 500, "internal_server_error")
    assert get_limiter().in_flight(alice.key.id) == 0


def test_a_slot_left_by_a_dead_process_expires(tiny, pinned_clock, settings):
    tenant = tiny()
    limiter = get_limiter()
    # A request that started long ago and whose process died without releasing.
    stale_start = PINNED_NOW - settings.CONCURRENCY_SLOT_TTL_SECONDS - 1
    limiter.acquire(tenant.key.id, 100, 1, stale_start)
    assert tenant.http.get("/v1/account").status_code == 200


def test_embedded_mode_limits_in_memory(tiny, pinned_clock, monkeypatch):
    monkeypatch.setattr(limits, "_memory_limiter", MemoryLimiter())
    with override_settings(REDIS_URL=""):
        assert isinstance(get_limiter(), MemoryLimiter)
        tenant = tiny()
        for _ in range(3):
            assert tenant.http.get("/v1/account").status_code == 200
        assert_error(tenant.http.get("/v1/account"), 429, "rate_limit_exceeded")


def test_memory_limiter_concurrency_and_release():
    limiter = MemoryLimiter()
    first = limiter.acquire("k", 10, 1, PINNED_NOW)
    assert first[0] == limits.ALLOWED
    assert limiter.acquire("k", 10, 1, PINNED_NOW)[0] == limits.TOO_MANY_IN_FLIGHT
    limiter.release("k", first[2])
    assert limiter.acquire("k", 10, 1, PINNED_NOW)[0] == limits.ALLOWED


@pytest.mark.subprocess
def test_the_rate_limit_holds_across_several_web_processes(tiny, settings):
    """Two separate server processes sharing Redis, requests alternating between them:
    together they allow exactly the plan's allowance."""
    import time

    from tests.conftest import http_client
    from tests.support.servers import database_url_of_test_db, gunicorn_server

    tenant = tiny()
    if time.time() % 60 > 45:  # stay inside one fixed window (no timing is asserted)
        time.sleep(61 - time.time() % 60)
    env = {"DATABASE_URL": database_url_of_test_db(), "REDIS_NAMESPACE": settings.REDIS_NAMESPACE}
    with gunicorn_server(env, workers=1) as one, gunicorn_server(env, workers=1) as two, \
            http_client(one, tenant.raw_key) as first, http_client(two, tenant.raw_key) as second:
        statuses = [client.get("/v1/account").status_code
                    for _ in range(4) for client in (first, second)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429] * 5


# --- a key seen before: changes to it, its account and its plan apply at once ------------------


def test_a_plan_change_applies_to_the_next_request_of_a_seen_key(tiny, pinned_clock):
    from accounts.models import Plan

    tenant = tiny()
    assert tenant.http.get("/v1/account").headers["RateLimit-Limit"] == "3"
    assert tenant.http.get("/v1/account").headers["RateLimit-Remaining"] == "1"
    tenant.account.plan = Plan.objects.get(name="pro")
    tenant.account.save()
    response = tenant.http.get("/v1/account")
    assert response.status_code == 200
    assert response.headers["RateLimit-Limit"] == "600"
    assert get_limiter().in_flight(tenant.key.id) == 0


def test_a_key_revoked_after_it_was_seen_is_refused_and_frees_its_slot(alice):
    from accounts.services import api_key_revoke

    assert alice.http.get("/v1/account").status_code == 200
    api_key_revoke(api_key=alice.key)
    assert_error(alice.http.get("/v1/account"), 401, "invalid_api_key")
    assert get_limiter().in_flight(alice.key.id) == 0


def test_a_disabled_account_of_a_seen_key_is_refused_even_with_the_record_cached(
        alice):
    from django.core.cache import cache

    from accounts.authentication import api_key_cache_key, api_key_record

    assert alice.http.get("/v1/account").status_code == 200
    alice.account.is_active = False
    alice.account.save()
    api_key_record(alice.key.prefix)  # re-cached, disabled: the bytes differ from the seen ones
    assert cache.get(api_key_cache_key(alice.key.prefix)).account_active is False
    error = assert_error(alice.http.get("/v1/account"), 403, "insufficient_permissions")
    assert "disabled" in error["details"]["reason"]
    assert get_limiter().in_flight(alice.key.id) == 0


def test_a_wrong_secret_does_not_spend_the_allowance_of_a_seen_key(tiny, pinned_clock):
    tenant = tiny()
    assert tenant.http.get("/v1/account").headers["RateLimit-Remaining"] == "2"
    forged = tenant.raw_key[:-1] + ("A" if tenant.raw_key[-1] != "A" else "B")
    for _ in range(3):
        response = tenant.http.get("/v1/account", headers={"Authorization": f"Bearer {forged}"})
        assert_error(response, 401, "invalid_api_key")
    assert tenant.http.get("/v1/account").headers["RateLimit-Remaining"] == "1"


def test_an_evicted_record_is_read_again(alice):
    from django.core.cache import cache

    from accounts.authentication import api_key_cache_key

    assert alice.http.get("/v1/account").status_code == 200
    cache.delete(api_key_cache_key(alice.key.prefix))
    assert alice.http.get("/v1/account").status_code == 200
    assert cache.get(api_key_cache_key(alice.key.prefix)).key_id == alice.key.id
    assert alice.http.get("/v1/account").status_code == 200
    assert get_limiter().in_flight(alice.key.id) == 0


def test_the_limiter_loads_its_script_again_when_redis_has_forgotten_it(alice):
    assert alice.http.get("/v1/account").status_code == 200
    get_limiter().client.script_flush()
    assert alice.http.get("/v1/account").status_code == 200
    assert get_limiter().in_flight(alice.key.id) == 0
