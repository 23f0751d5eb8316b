"""`create_plan` and `create_api_key`, exactly as the contract writes them."""

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Account, ApiKey, Plan
from tests.conftest import assert_error, http_client

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_default_plans_exist_from_the_first_migration(plans):
    assert {"free", "pro", "business"} <= set(Plan.objects.values_list("name", flat=True))


def test_create_plan_creates_then_updates(plans):
    run("create_plan", "gold", "--max-sessions", "3", "--daily-messages", "500",
        "--rate-per-minute", "120", "--max-concurrent", "4")
    plan = Plan.objects.get(name="gold")
    assert (plan.max_sessions, plan.daily_message_limit, plan.rate_limit_per_minute,
            plan.max_concurrent_requests) == (3, 500, 120, 4)
    run("create_plan", "gold", "--max-sessions", "7", "--daily-messages", "500",
        "--rate-per-minute", "120", "--max-concurrent", "4")
    assert Plan.objects.get(name="gold").max_sessions == 7


def test_create_plan_refuses_negative_limits(plans):
    with pytest.raises(SystemExit):
        call_command("create_plan", "bad", "--max-sessions", "-1", "--daily-messages", "1",
                     "--rate-per-minute", "1", "--max-concurrent", "1",
                     stderr=io.StringIO())
    assert not Plan.objects.filter(name="bad").exists()


def test_create_api_key_prints_a_working_key_on_its_last_line(live_server, plans):
    lines = run("create_api_key", "--account", "acme", "--plan", "business")
    raw = lines[-1]
    account = Account.objects.get(name="acme")
    assert account.plan.name == "business"
    with http_client(live_server.url, raw) as client:
        body = client.get("/v1/account").json()
    assert body["data"]["name"] == "acme"
    assert body["data"]["plan"]["name"] == "business"


def test_create_api_key_reuses_the_account_and_limits_scopes(live_server, plans):
    run("create_api_key", "--account", "acme")
    raw = run("create_api_key", "--account", "acme", "--scopes", "sessions:read")[-1]
    assert Account.objects.filter(name="acme").count() == 1
    assert ApiKey.objects.filter(account__name="acme").count() == 2
    with http_client(live_server.url, raw) as client:
        assert_error(client.get("/v1/account"), 403, "insufficient_permissions")


def test_create_api_key_with_expiry(plans):
    run("create_api_key", "--account", "acme", "--expires-in", "3600")
    key = ApiKey.objects.get(account__name="acme")
    assert key.expires_at is not None


@pytest.mark.parametrize(
    "args",
    [
        ["--scopes", "sessions:read,launch:missiles"],
        ["--scopes", ","],
        ["--plan", "platinum"],
        ["--expires-in", "0"],
    ],
)
def test_create_api_key_refuses_bad_options(plans, args):
    with pytest.raises(CommandError):
        call_command("create_api_key", "--account", "acme", *args, stdout=io.StringIO())
    assert not ApiKey.objects.exists()


def test_create_api_key_refuses_to_silently_change_a_plan(plans):
    run("create_api_key", "--account", "acme", "--plan", "free")
    with pytest.raises(CommandError):
        call_command("create_api_key", "--account", "acme", "--plan", "pro",
                     stdout=io.StringIO())
    assert Account.objects.get(name="acme").plan.name == "free"
