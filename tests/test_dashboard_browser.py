"""The customer dashboard in a real browser (headless Chromium driven by Playwright): sign in,
create a key and see it once, create a session and see its QR code, scan it through the
sandbox and watch the page turn connected without a reload, register a webhook, send a test
event and redeliver it. Screenshots of each step go to test-artifacts/."""

import pytest

from accounts.models import MemberRole
from accounts.services import member_create
from sessions_app.engines import publish_event
from sessions_app.engines.base import QR, EngineEvent
from sessions_app.event_consumer import engine_events_drain
from tests.conftest import http_client
from tests.support.browser import screenshot
from tests.support.http_server import LocalServer, Route
from webhooks.delivery import webhook_deliver_due
from webhooks.models import Delivery, Webhook

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "browser-test-passphrase-5"


@pytest.fixture
def signed_in(browser_page, live_server, alice):
    member_create(account=alice.account, email="owner@alice.example", password=PASSWORD,
                  role=MemberRole.OWNER)
    page = browser_page
    page.goto(f"{live_server.url}/dashboard/")
    page.wait_for_selector("#login-form")  # redirected to sign in
    page.fill("#id_username", "owner@alice.example")
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#usage-card")
    return page


def test_customer_dashboard_in_a_browser(signed_in, live_server, alice, settings):
    page = signed_in
    assert page.inner_text("#account-name") == "alice"
    assert screenshot(page, "dashboard-overview.png").stat().st_size > 5_000

    # An API key, shown once, that works at once.
    page.click("text=API keys")
    page.fill("#id_name", "browser key")
    page.click("#key-create button[type=submit]")
    raw_key = page.inner_text("#raw-key").strip()
    assert raw_key.startswith("wak_")
    page.click("button[data-copy]")
    page.wait_for_selector("button:has-text('Copied')")
    screenshot(page, "dashboard-key-created.png")
    page.goto(f"{live_server.url}/dashboard/keys/")
    assert raw_key not in page.content()  # never shown again
    with http_client(live_server.url, raw_key) as api:
        assert api.get("/v1/account").status_code == 200

        # A session: its QR code is shown large...
        page.click("text=Sessions")
        page.fill("#id_name", "shop")
        page.click("#session-create button[type=submit]")
        page.wait_for_selector("#qr-image[src^='data:image/png']")
        box = page.locator("#qr-image").bounding_box()
        assert box["width"] >= 300
        assert page.get_attribute("#session-status", "data-status") == "qr_pending"
        screenshot(page, "dashboard-session-qr.png")
        session_id = page.url.rstrip("/").rsplit("/", 1)[-1]

        # WhatsApp rotates the code (here, as an engine would report it): the page follows.
        publish_event(EngineEvent(QR, session_id, {"code": "2@rotated-code,abc,def,ghi"}))
        engine_events_drain()
        page.wait_for_function(
            "document.getElementById('qr-image').dataset.qr.startsWith('2@rotated-code')")

        # ... the phone scans it (the sandbox plays the phone), and the page follows.
        scanned = api.post(f"/v1/sandbox/sessions/{session_id}/scan",
                           json={"phoneNumber": "14155552671"})
        assert scanned.status_code == 200
    page.wait_for_selector("#session-status[data-status='connected']")
    page.wait_for_selector("#connected-panel:not([hidden])")
    assert page.is_hidden("#qr-panel")
    assert "+14155552671" in page.inner_text("#session-phone")
    screenshot(page, "dashboard-session-connected.png")

    # A webhook: registered, tested, and a delivery redelivered.
    settings.ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    with LocalServer() as receiver:
        receiver.routes["/hook"] = Route(status=200)
        page.click("text=Webhooks")
        page.fill("#id_url", receiver.url("/hook"))
        page.click("#webhook-create button[type=submit]")
        page.wait_for_selector("#webhook-secret")
        hook = Webhook.objects.get(account=alice.account)
        assert page.inner_text("#webhook-secret").strip() == hook.secret
        page.click("text=Go to the webhook")
        page.click("#webhook-test button")
        page.wait_for_selector("text=Delivered: HTTP 200")
        page.click("#test-delivery")
        page.wait_for_selector("#redeliver")
        screenshot(page, "dashboard-webhook-delivery.png")
        page.click("#redeliver button")
        page.wait_for_selector("#redelivered")
        delivery = Delivery.objects.get(webhook=hook)
        assert delivery.status == "pending"
        webhook_deliver_due(webhook_id=hook.id)  # what the worker does on its wake-up
        page.reload()
        assert page.inner_text("#delivery-attempts") == "2"
        assert page.inner_text("#delivery-status") == "succeeded"
        bodies = [hit.body for hit in receiver.hits_for("/hook")]
        assert len(bodies) == 3 and bodies[1] == bodies[2]  # registration, test, redelivery


def test_errors_in_the_browser_use_the_catalogue(signed_in, live_server, settings):
    page = signed_in
    page.goto(f"{live_server.url}/dashboard/webhooks/")
    page.fill("#id_url", "ftp://example.com/hook")
    page.click("#webhook-create button[type=submit]")
    page.wait_for_selector(".error[data-code='invalid_webhook_url']")
    text = page.inner_text(".error")
    assert "The webhook URL provided is invalid" in text
    assert "Ensure the URL is properly formatted and uses HTTPS" in text
    screenshot(page, "dashboard-error.png")
