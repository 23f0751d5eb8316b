"""The admin in a real browser (headless Chromium driven by Playwright): log in, read the
dashboard, find a failed message by its id, redeliver a webhook, revoke a key. A screenshot
of the dashboard is saved to test-artifacts/."""

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from accounts.models import ApiKey
from webhooks.models import Delivery

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

# Playwright's sync API runs an event loop in this thread; Django must allow ORM calls here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: ./scripts/test installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(15_000)
        yield page
        browser.close()


@pytest.fixture
def logged_in(browser_page, live_server):
    get_user_model().objects.create_superuser("op", "op@example.com", "correct-horse-7")
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "op")
    page.fill("#id_password", "correct-horse-7")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")
    return page


def test_operator_console_in_a_browser(world, alice, logged_in, live_server):
    page = logged_in
    # The dashboard, with a screenshot kept as an artifact.
    page.goto(f"{live_server.url}/admin/")
    assert page.locator("#dash-failed-messages").inner_text().count("msg_") >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)

    # Find the failed message by its id and open it.
    message = world["message"]
    page.goto(f"{live_server.url}/admin/messaging/message/")
    page.fill("#searchbar", message.id)
    page.press("#searchbar", "Enter")
    page.click(f"text={message.id}")
    page.wait_for_selector("text=Webhook deliveries")  # the support links of the detail page
    assert "message_sending_failed" in page.content()

    # Redeliver its webhook delivery with the admin action.
    delivery = world["delivery"]
    page.goto(f"{live_server.url}/admin/webhooks/delivery/")
    page.check(f"input[name=_selected_action][value='{delivery.pk}']")
    page.select_option("select[name=action]", "redeliver")
    page.click("button[name=index]")
    page.wait_for_selector("text=Queued 1 delivery")
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"

    # Revoke Alice's API key.
    page.goto(f"{live_server.url}/admin/accounts/apikey/")
    page.check(f"input[name=_selected_action][value='{alice.key.pk}']")
    page.select_option("select[name=action]", "revoke_keys")
    page.click("button[name=index]")
    page.wait_for_selector("text=Revoked 1 key")
    assert ApiKey.objects.get(pk=alice.key.pk).revoked_at is not None
    assert alice.http.get("/v1/account").status_code == 401
