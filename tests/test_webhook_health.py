"""A failing endpoint looks failing everywhere: the API, the customer's overview and webhook
pages, the operators' dashboard and /metrics agree; its owners are emailed once an hour in."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from tests.support.http_server import Route
from tests.test_dashboard import _member
from tests.test_webhook_delivery import record, register
from webhooks.delivery import webhook_deliver_due
from webhooks.models import Delivery, Webhook
from webhooks.services import failing_endpoints_notify

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def failing(alice, receiver) -> dict:
    """An endpoint that answers 500 to every delivery, two attempts in."""
    hook = register(alice, receiver)
    receiver.routes["/hook"] = Route(status=500, body=b'{"error": "database is down"}',
                                     content_type="application/json")
    record(alice.account)
    webhook_deliver_due(webhook_id=hook["id"])
    Delivery.objects.update(next_attempt_at=timezone.now())
    webhook_deliver_due(webhook_id=hook["id"])
    return hook


def test_the_api_tells_a_failing_endpoint_from_a_healthy_one(alice, receiver, failing):
    health = alice.http.get(f"/v1/webhooks/{failing['id']}").json()["data"]["health"]
    assert health["state"] == "failing"
    assert health["consecutiveFailures"] == 2
    assert health["failingSince"] is not None
    assert health["lastFailure"]["error"] == "HTTP 500"
    assert health["lastFailure"]["statusCode"] == 500
    assert health["lastFailure"]["response"] == '{"error": "database is down"}'
    # One success ends the streak; the last failure stays on record.
    receiver.routes["/hook"] = Route(status=204)
    Delivery.objects.update(next_attempt_at=timezone.now())
    webhook_deliver_due(webhook_id=failing["id"])
    health = alice.http.get(f"/v1/webhooks/{failing['id']}").json()["data"]["health"]
    assert (health["state"], health["consecutiveFailures"], health["failingSince"]) == (
        "healthy", 0, None)
    assert health["lastFailure"]["statusCode"] == 500


def test_the_customer_sees_it_failing_on_the_overview_and_the_webhook_pages(alice, failing):
    owner = _member(alice)
    overview = owner.get(reverse("dashboard:overview")).content.decode()
    assert "Nothing failed recently" not in overview
    assert 'id="failing-webhooks"' in overview and "2 failed attempts in a row" in overview
    assert "database is down" in overview
    listed = owner.get(reverse("dashboard:webhooks")).content.decode()
    assert 'class="badge failing"' in listed and "healthy" not in listed
    detail = owner.get(reverse("dashboard:webhook", args=[failing["id"]])).content.decode()
    assert "HTTP 500" in detail and "database is down" in detail
    assert 'class="badge retrying"' in detail  # its delivery, still retried


def test_operators_and_metrics_count_the_same_failing_endpoints(alice, failing, operator,
                                                                anon, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    scrape = {"Authorization": "Bearer scrape-secret"}
    page = operator.get(reverse("admin:index")).content.decode()
    assert "Webhook endpoints failing now: 1" in page
    metrics = anon.get("/metrics", headers=scrape).text
    assert "wa_webhook_endpoints_failing 1.0" in metrics
    Webhook.objects.filter(pk=failing["id"]).update(is_active=False)  # disabled: not failing
    assert "Webhook endpoints failing now: 0" in operator.get(
        reverse("admin:index")).content.decode()
    assert "wa_webhook_endpoints_failing 0.0" in anon.get("/metrics", headers=scrape).text


def test_the_owners_are_emailed_once_an_hour_into_the_failures(alice, failing, settings):
    _member(alice, email="owner@alice.example")
    from accounts.models import MemberRole

    _member(alice, role=MemberRole.MEMBER, email="member@alice.example")
    settings.WEBHOOK_FAILURE_EMAIL_AFTER_SECONDS = 3600
    assert failing_endpoints_notify() == 0  # not an hour yet
    later = timezone.now() + timedelta(hours=1, minutes=1)
    assert failing_endpoints_notify(now=later) == 1
    (email,) = mail.outbox
    assert email.to == ["owner@alice.example"]
    assert failing["url"] in email.subject
    assert "2 failed attempts in a row" in email.body and "HTTP 500" in email.body
    assert failing_endpoints_notify(now=later + timedelta(hours=5)) == 0  # once per streak
    assert len(mail.outbox) == 1


def test_no_email_when_turned_off(alice, failing, settings):
    _member(alice, email="owner@alice.example")
    settings.WEBHOOK_FAILURE_EMAIL_AFTER_SECONDS = 0
    assert failing_endpoints_notify(now=timezone.now() + timedelta(days=1)) == 0
    assert mail.outbox == []
