"""The admin in a real browser (headless Chromium driven by Playwright): log in, read the
dashboard, find a failed message by its id, redeliver a webhook, revoke a key. A screenshot
of the dashboard is saved to test-artifacts/."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import ApiKey
from tests.support.browser import screenshot
from webhooks.models import Delivery

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


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
    assert screenshot(page, "admin-dashboard.png").stat().st_size > 10_000

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
    page.click("#confirm-action input[type=submit]")  # irreversible: asked first
    page.wait_for_selector("text=Revoked 1 key")
    assert ApiKey.objects.get(pk=alice.key.pk).revoked_at is not None
    assert alice.http.get("/v1/account").status_code == 401
