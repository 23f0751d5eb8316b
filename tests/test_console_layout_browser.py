"""Both consoles at a phone's width (390 px) and a laptop's (1366 px), in headless Chromium:
every page fits the screen (wide tables scroll inside their card, never the page), shows what
it is about, and lists lead with the status. Screenshots of each page go to test-artifacts/."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import ApiErrorLog, MemberRole
from accounts.services import member_create
from sessions_app.models import Group as WhatsAppGroup
from tests.support.browser import screenshot
from tests.support.http_server import LocalServer, Route

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "layout-test-passphrase-8"
WIDTHS = {"phone": 390, "laptop": 1366}

OVERFLOW = """() => ({page: document.documentElement.scrollWidth, screen: window.innerWidth,
  widest: [...document.querySelectorAll('body *')].filter(e => {
      const r = e.getBoundingClientRect(); return r.width && r.right > window.innerWidth + 1
        && !e.closest('.table-scroll, .chart-scroll, .results, [style*=overflow]');
    }).slice(0, 3).map(e => e.tagName + '#' + e.id + '.' + e.className)})"""


def _fits(page, url: str | None, expected: str, name: str) -> None:
    """`url` None: the page the browser is on."""
    if url is not None:
        page.goto(url)
    page.wait_for_load_state("load")
    assert expected in page.inner_text("body"), (url, expected)
    width = page.evaluate(OVERFLOW)
    screenshot(page, f"layout-{name}.png")
    assert width["page"] <= width["screen"], (url, width)


def _group(alice, session_id: str) -> dict:
    return alice.http.post(f"/v1/sessions/{session_id}/groups", json={
        "subject": "Night shift", "participants": ["447911123456"]}).json()["data"]


@pytest.mark.parametrize("device", WIDTHS)
def test_the_customer_dashboard_fits_the_screen(device, browser_page, live_server, world,
                                                alice):
    member_create(account=alice.account, email="owner@alice.example", password=PASSWORD,
                  role=MemberRole.OWNER)
    page = browser_page
    page.set_viewport_size({"width": WIDTHS[device], "height": 900})
    _fits(page, f"{live_server.url}{reverse('dashboard:password_reset')}", "Reset your password",
          f"dashboard-password-reset-{device}")
    _fits(page, f"{live_server.url}/dashboard/login/", "Sign in", f"dashboard-login-{device}")
    page.fill("#id_username", "owner@alice.example")
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#usage-card")

    session_id, message, webhook, delivery = (world["session"]["id"], world["message"],
                                              world["webhook"], world["delivery"])
    group = _group(alice, session_id)
    pages = [
        ("overview", reverse("dashboard:overview"), message.id),
        ("keys", reverse("dashboard:keys"), alice.key.prefix),
        ("sessions", reverse("dashboard:sessions"), "connected"),
        ("session", reverse("dashboard:session", args=[session_id]), "+14155550001"),
        ("group", reverse("dashboard:session_group", args=[session_id, group["id"]]),
         "+447911123456"),
        ("messages", reverse("dashboard:messages"), message.id),
        ("message", reverse("dashboard:message", args=[message.id]), "message_sending_failed"),
        ("webhooks", reverse("dashboard:webhooks"), webhook.url),
        ("webhook", reverse("dashboard:webhook", args=[webhook.id]), webhook.url),
        ("delivery", reverse("dashboard:delivery", args=[webhook.id, delivery.id]),
         delivery.id),
        ("plan", reverse("dashboard:plan"), "Request another plan"),
    ]
    for name, path, expected in pages:
        _fits(page, live_server.url + path, expected, f"dashboard-{name}-{device}")

    # The one-time page of a new key: its long secret must not widen the page.
    page.goto(live_server.url + reverse("dashboard:keys"))
    page.fill("#id_name", "a key with a rather long name for a small screen")
    page.click("#key-create button[type=submit]")
    _fits(page, None, "Your new API key", f"dashboard-key-created-{device}")

    # The one-time page of a new webhook's secret, and a test event's result.
    with LocalServer() as receiver:
        receiver.routes["/a/rather/long/path/for/a/webhook/endpoint"] = Route(status=200)
        page.goto(live_server.url + reverse("dashboard:webhooks"))
        page.fill("#id_url", receiver.url("/a/rather/long/path/for/a/webhook/endpoint"))
        page.click("#webhook-create button[type=submit]")
        _fits(page, None, "Webhook registered", f"dashboard-webhook-created-{device}")
        page.click("text=Go to the webhook")
        page.click("#webhook-test button")
        _fits(page, None, "Delivered: HTTP 200", f"dashboard-webhook-tested-{device}")


@pytest.mark.parametrize("device", WIDTHS)
def test_the_admin_fits_the_screen_and_lists_lead_with_the_status(device, browser_page,
                                                                  live_server, world, alice):
    get_user_model().objects.create_superuser("op", "op@example.com", PASSWORD)
    page = browser_page
    page.set_viewport_size({"width": WIDTHS[device], "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "op")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")

    session_id, message, webhook, delivery = (world["session"]["id"], world["message"],
                                              world["webhook"], world["delivery"])
    group = _group(alice, session_id)
    error = ApiErrorLog.objects.filter(account=alice.account).first()
    pages = [
        ("index", "admin:index", [], "Messages per day by status"),
        ("customer", "admin:customer", [alice.account.pk], "Webhook endpoints"),
        ("accounts", "admin:accounts_account_changelist", [], "alice"),
        ("account", "admin:accounts_account_change", [alice.account.pk], "Everything about"),
        ("errors", "admin:accounts_apierrorlog_changelist", [], "message_not_found"),
        ("error", "admin:accounts_apierrorlog_change", [error.pk], "message_not_found"),
        ("messages", "admin:messaging_message_changelist", [], message.id),
        ("message", "admin:messaging_message_change", [message.id], "message_sending_failed"),
        ("sessions", "admin:sessions_app_session_changelist", [], session_id),
        ("session", "admin:sessions_app_session_change", [session_id], session_id),
        ("groups", "admin:sessions_app_group_changelist", [], "Night shift"),
        ("group", "admin:sessions_app_group_change",
         [WhatsAppGroup.objects.get(group_id=group["id"]).pk], "Night shift"),
        ("webhooks", "admin:webhooks_webhook_changelist", [], webhook.url),
        ("webhook", "admin:webhooks_webhook_change", [webhook.id], webhook.url),
        ("deliveries", "admin:webhooks_delivery_changelist", [], delivery.id),
        ("delivery", "admin:webhooks_delivery_change", [delivery.id], delivery.id),
    ]
    for name, url_name, args, expected in pages:
        _fits(page, live_server.url + reverse(url_name, args=args), expected,
              f"admin-{name}-{device}")
        if name == "index":  # the whole width, not one narrow column
            assert page.locator("#dashboard").bounding_box()["width"] > 0.85 * WIDTHS[device]
        if name in ("messages", "sessions", "deliveries", "webhooks"):
            first = page.locator("#result_list thead th").nth(1)  # after the checkbox
            assert first.inner_text().strip().upper() in ("STATUS", "HEALTH"), name
            box = first.bounding_box()
            assert box["x"] + box["width"] <= WIDTHS[device], name  # on screen, unscrolled
