"""schemathesis against our own OpenAPI schema, with a valid key, on the production server
(gunicorn): no 5xx, every response (errors included) matching the schema, status codes and
content types documented. Outbound HTTP is loopback-only: fuzzed URLs reach nothing."""

import subprocess
import sys
from pathlib import Path

import pytest

from accounts.services import plan_upsert
from tests.conftest import connected_session
from tests.support.servers import database_url_of_test_db, gunicorn_server

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

CHECKS = ("not_a_server_error,response_schema_conformance,status_code_conformance,"
          "content_type_conformance,response_headers_conformance")


def test_the_api_holds_to_its_schema_under_fuzzing(make_tenant, settings):
    tenant = make_tenant("fuzzer")
    plan, _ = plan_upsert(name="fuzz", max_sessions=10_000, daily_message_limit=10_000_000,
                          rate_limit_per_minute=1_000_000, max_concurrent_requests=1_000)
    tenant.account.plan = plan
    tenant.account.save()
    connected_session(tenant)  # so that sends can get past the session checks
    env = {"DATABASE_URL": database_url_of_test_db(), "REDIS_NAMESPACE": settings.REDIS_NAMESPACE,
           "OUTBOUND_LOOPBACK_ONLY": "true", "ALLOW_PRIVATE_URLS": "true",
           "WEBHOOK_REQUIRE_HTTPS": "false"}
    st = Path(sys.executable).with_name("st")
    with gunicorn_server(env, workers=2) as base:
        result = subprocess.run(
            [str(st), "run", f"{base}/v1/schema", "-H", f"Authorization: Bearer {tenant.raw_key}",
             "--max-examples", "15", "--checks", CHECKS, "--seed", "1"],
            capture_output=True, text=True, timeout=600,
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
