"""/metrics for Prometheus and JSON log lines."""

import json
import logging

import pytest

from infra.logging import JsonFormatter
from tests.conftest import connected_session

pytestmark = pytest.mark.django_db(transaction=True)


def metric(text: str, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


SCRAPE = {"Authorization": "Bearer scrape-secret"}


@pytest.fixture
def scraping(settings):
    settings.METRICS_TOKEN = "scrape-secret"


def test_metrics_count_requests_messages_and_state(anon, alice, scraping):
    before = anon.get("/metrics", headers=SCRAPE).text
    alice.http.get("/v1/nope")
    session = connected_session(alice)
    alice.http.post("/v1/messages/text", json={"sessionId": session["id"], "to": "14155550123",
                                               "text": "hi"})
    after = anon.get("/metrics", headers=SCRAPE)
    assert after.status_code == 200
    text = after.text
    labels = {"method": "GET", "status": "404", "code": "resource_not_found"}
    assert metric(text, "wa_api_requests_total", **labels) == \
        metric(before, "wa_api_requests_total", **labels) + 1
    assert metric(text, "wa_message_status_total", status="queued") >= 1
    assert metric(text, "wa_messages_queued") == 1
    assert metric(text, "wa_sessions", status="connected") == 1
    assert "wa_api_request_seconds_bucket" in text
    assert "wa_webhook_deliveries_pending 0.0" in text


def test_metrics_answer_while_the_database_is_down(anon, monkeypatch, scraping):
    from django.db import OperationalError

    from console.metrics import StateCollector

    def down(self):
        raise OperationalError("connection refused")

    monkeypatch.setattr(StateCollector, "_collect", down)
    response = anon.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200
    assert metric(response.text, "wa_state_available") == 0
    assert "wa_api_requests_total" in response.text


def test_metrics_need_their_token_and_are_off_without_one(anon, settings):
    settings.METRICS_TOKEN = ""
    assert anon.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "scrape-secret"
    assert anon.get("/metrics").status_code == 401
    assert anon.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert anon.get("/metrics", headers=SCRAPE).status_code == 200


def test_json_log_lines_carry_request_account_and_message_ids():
    from types import SimpleNamespace

    from infra.logging import current_api_key, current_request_id

    request_token = current_request_id.set("req-42")
    key_token = current_api_key.set(SimpleNamespace(account_id="acc_1", prefix="wak_x"))
    try:
        record = logging.LogRecord("messaging", logging.WARNING, __file__, 1, "send %s failed",
                                   ("msg_9",), None)
        record.message_id = "msg_9"
        line = json.loads(JsonFormatter().format(record))
    finally:
        current_request_id.reset(request_token)
        current_api_key.reset(key_token)
    assert line["request_id"] == "req-42" and line["account_id"] == "acc_1"
    assert line["message_id"] == "msg_9" and line["message"] == "send msg_9 failed"
    assert line["level"] == "WARNING"
