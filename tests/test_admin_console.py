"""The admin as operators' and support's console: every page renders, the dashboard shows
the figures, actions call the services, support can look but not touch."""

import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.roles import support_group_ensure
from messaging.models import Message
from sessions_app.models import Session
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def support() -> Client:
    user = get_user_model().objects.create_user("helper", "h@example.com", "pw-for-tests-2",
                                                is_staff=True)
    user.groups.add(support_group_ensure(Group, Permission))
    client = Client()
    client.force_login(user)
    return client


def all_admin_urls(world, apps=None):
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if apps is not None and opts.app_label not in apps:
            continue
        yield reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        obj = model_admin.get_queryset(_request()).first()
        if obj is not None:
            yield reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def _request():
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = get_user_model().objects.filter(is_superuser=True).first()
    return request


def test_every_admin_page_renders(operator, world):
    urls = list(all_admin_urls(world))
    assert len(urls) >= 20
    for url in urls:
        response = operator.get(url)
        assert response.status_code == 200, url


def test_the_dashboard_shows_the_figures(operator, world):
    page = operator.get("/admin/").content.decode()
    for section in ("dash-queue", "dash-quotas", "dash-sessions", "dash-errors",
                    "dash-failed-messages", "dash-failed-deliveries"):
        assert f'id="{section}"' in page
    assert world["message"].id in page  # the failed message, linked
    assert world["delivery"].id in page  # the failed delivery, linked
    assert "message_not_found" in page  # the error response of the last 24 h
    assert re.search(r"alice</a>\s*<div class=\"bar\"><span[^>]*width:\d+%", page)
    # Messages per day by status: today's failed message, drawn under a y axis.
    today = timezone.now().date().isoformat()
    assert re.search(rf'<rect class="s-failed"[^>]*><title>{today} failed: 1</title>', page)
    assert re.search(r'<text[^>]*text-anchor="end">4</text>', page)  # the axis' top tick
    assert "Error responses by code, last 7 days" in page


def test_from_a_failed_message_support_reaches_everything_in_one_click(support, world):
    message = world["message"]
    assert message.status == "failed" and message.request_id == "req-support-1"
    page = support.get(reverse("admin:messaging_message_change", args=[message.pk]))
    html = page.content.decode()
    links = dict((label, url.replace("&amp;", "&")) for url, label in
                 re.findall(r'<a href="([^"]+)">([^<]+)</a>', html))
    assert "failed" in html and "message_sending_failed" in html  # status history inline
    session_page = support.get(links["Session"]).content.decode()
    assert world["session"]["id"] in session_page
    assert "alice" in support.get(links["Account"]).content.decode()
    errors = support.get(links["Error log for its request"]).content.decode()
    assert "message_not_found" in errors
    deliveries = support.get(links["Webhook deliveries"]).content.decode()
    assert world["delivery"].id in deliveries
    assert support.get(links["Events"]).status_code == 200


def test_retry_a_failed_message(operator, world):
    message = world["message"]
    operator.post(reverse("admin:messaging_message_changelist"),
                  {"action": "retry_failed", "_selected_action": [message.pk]})
    message.refresh_from_db()
    assert message.status in ("queued", "sending", "failed")
    assert message.history.filter(status="queued").count() == 1  # the retry


def test_cancel_queued_messages(operator, world, alice):
    session_id = world["session"]["id"]
    queued = alice.http.post("/v1/messages/text", json={
        "sessionId": session_id, "to": "14155550123", "text": "not now"}).json()["data"]
    selected = {"action": "cancel_queued", "_selected_action": [queued["id"], world["message"].pk]}
    asked = operator.post(reverse("admin:messaging_message_changelist"), selected)
    assert "will not be sent" in asked.content.decode()
    assert Message.objects.get(pk=queued["id"]).status == "queued"
    operator.post(reverse("admin:messaging_message_changelist"), {**selected, "confirmed": "yes"})
    canceled = Message.objects.get(pk=queued["id"])
    assert (canceled.status, canceled.error_code) == ("failed", "message_canceled")
    world["message"].refresh_from_db()
    assert world["message"].error_code != "message_canceled"  # not queued: left as it was


def test_restart_a_session(operator, world, alice):
    session_id = world["session"]["id"]
    alice.http.post(f"/v1/sandbox/sessions/{session_id}/disconnect",
                    json={"reason": "stream_replaced"})
    assert Session.objects.get(pk=session_id).status == "failed"
    operator.post(reverse("admin:sessions_app_session_changelist"),
                  {"action": "restart_sessions", "_selected_action": [session_id]})
    session = Session.objects.get(pk=session_id)  # its stored login resumed: no QR code
    assert (session.status, session.last_error_code, session.qr_code) == ("connected", "", "")
    history = list(session.history.values_list("reason", flat=True))
    assert history[-2:] == ["restarted by op", "connected"]


def test_a_logged_out_session_is_not_restarted(operator, world, alice):
    session_id = world["session"]["id"]
    alice.http.post(f"/v1/sandbox/sessions/{session_id}/disconnect", json={"reason": "logged_out"})
    response = operator.post(reverse("admin:sessions_app_session_changelist"),
                             {"action": "restart_sessions", "_selected_action": [session_id]},
                             follow=True)
    assert "Not restarted" in response.content.decode()
    assert Session.objects.get(pk=session_id).status == "logged_out"


def test_redeliver_and_enable_a_disabled_webhook(operator, world):
    webhook, delivery = world["webhook"], world["delivery"]
    assert not webhook.is_active  # the 410 disabled it
    operator.post(reverse("admin:webhooks_webhook_changelist"),
                  {"action": "enable_webhooks", "_selected_action": [webhook.pk]})
    assert Webhook.objects.get(pk=webhook.pk).is_active
    operator.post(reverse("admin:webhooks_delivery_changelist"),
                  {"action": "redeliver", "_selected_action": [delivery.pk]})
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"
    operator.post(reverse("admin:webhooks_webhook_changelist"),
                  {"action": "disable_webhooks", "_selected_action": [webhook.pk]})
    assert "operator op" in Webhook.objects.get(pk=webhook.pk).disabled_reason


def test_change_an_accounts_plan(operator, world, alice, plans):
    url = reverse("admin:accounts_account_changelist")
    form = operator.post(url, {"action": "change_plan", "_selected_action": [alice.account.pk]})
    assert b"Change plan" in form.content
    operator.post(url, {"action": "change_plan", "_selected_action": [alice.account.pk],
                        "plan": plans["business"].pk, "apply": "1"})
    alice.account.refresh_from_db()
    assert alice.account.plan.name == "business"
    assert alice.http.get("/v1/account").json()["data"]["plan"]["name"] == "business"


def test_support_sees_every_page_and_changes_nothing(support, world, alice):
    from accounts.roles import SUPPORT_APPS

    for url in all_admin_urls(world, apps=SUPPORT_APPS):
        assert support.get(url).status_code == 200, url
    page = support.get(reverse("admin:messaging_message_changelist")).content.decode()
    assert "retry_failed" not in page
    for changelist, action, pk in [
        ("admin:messaging_message_changelist", "retry_failed", world["message"].pk),
        ("admin:sessions_app_session_changelist", "log_out_and_remove", world["session"]["id"]),
        ("admin:accounts_apikey_changelist", "revoke_keys", alice.key.pk),
        ("admin:webhooks_delivery_changelist", "redeliver", world["delivery"].pk),
        ("admin:accounts_account_changelist", "change_plan", alice.account.pk),
    ]:
        support.post(reverse(changelist), {"action": action, "_selected_action": [pk],
                                           "confirmed": "yes", "apply": "1"})
    assert Message.objects.get(pk=world["message"].pk).status == "failed"
    assert Session.objects.get(pk=world["session"]["id"]).status == "connected"
    alice.key.refresh_from_db()
    assert alice.key.revoked_at is None
    assert Delivery.objects.get(pk=world["delivery"].pk).status == "failed"
    change = reverse("admin:accounts_account_change", args=[alice.account.pk])
    assert support.post(change, {"name": "hacked"}).status_code == 403
    assert support.get(reverse("admin:accounts_apikey_add")).status_code == 403


def test_the_support_group_has_view_permissions_only(db):
    group = support_group_ensure(Group, Permission)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"view_message", "view_session", "view_apikey", "view_delivery", "view_chat",
            "view_group", "view_lidmapping"} <= codenames
    assert all(code.startswith("view_") for code in codenames)


def test_support_reads_a_sessions_groups_chats_and_hidden_id_mappings(support, world, alice):
    from messaging.models import Chat
    from sessions_app.models import Group as WhatsAppGroup
    from sessions_app.models import LidMapping

    session = world["session"]
    group = alice.http.post(f"/v1/sessions/{session['id']}/groups", json={
        "subject": "Night shift", "participants": ["447911123456"]}).json()["data"]
    inbound = f"/v1/sandbox/sessions/{session['id']}/inbound"
    alice.http.post(inbound, json={"from": "447911123456", "senderLid": "98765432101@lid",
                                   "text": "hi"})
    alice.http.post(inbound, json={"from": "447911123456", "text": "it's me"})
    kept = WhatsAppGroup.objects.get(group_id=group["id"])
    page = support.get(reverse("admin:sessions_app_group_change", args=[kept.pk]))
    assert page.status_code == 200
    assert "447911123456" in page.content.decode() and "(admin)" in page.content.decode()
    mapping = LidMapping.objects.get(lid="98765432101@lid")
    page = support.get(reverse("admin:sessions_app_lidmapping_changelist")).content.decode()
    assert "98765432101@lid" in page and "447911123456" in page
    assert support.get(reverse("admin:sessions_app_lidmapping_change",
                               args=[mapping.pk])).status_code == 200
    chat = Chat.objects.get(chat_id="447911123456")
    page = support.get(reverse("admin:messaging_chat_change", args=[chat.pk])).content.decode()
    assert "Sandbox contact" in page
    # Read-only, for operators too: nothing to save, nothing to delete.
    assert support.post(reverse("admin:sessions_app_group_change", args=[kept.pk]),
                        {"subject": "x"}).status_code == 403


def test_the_customer_page_gathers_one_account_and_every_link_leads_somewhere(support, world,
                                                                              alice, bob):
    accounts = support.get(reverse("admin:accounts_account_changelist")).content.decode()
    customer_url = reverse("admin:customer", args=[alice.account.pk])
    assert customer_url in accounts  # linked from the accounts list
    page = support.get(customer_url)
    assert page.status_code == 200
    html = page.content.decode()
    for section in ("customer-account", "customer-webhooks", "customer-sessions",
                    "customer-failed-messages", "customer-errors", "customer-keys"):
        assert f'id="{section}"' in html
    assert world["session"]["id"] in html or world["session"]["name"] in html
    assert world["message"].id in html and "message_sending_failed" in html
    assert "message_not_found" in html  # its error response of the day
    assert world["webhook"].url in html and "disabled" in html  # the 410 disabled it
    assert alice.key.prefix in html and bob.key.prefix not in html  # one customer only
    content = html.split('id="customer"')[1].split("<!-- END Content -->")[0]
    links = {url.replace("&amp;", "&") for url in re.findall(r'href="(/admin/[^"]+)"', content)}
    assert len(links) >= 7  # account, webhook, session, message, error, all errors, key
    for url in links:
        response = support.get(url)
        assert response.status_code == 200, url
        assert "0 results" not in response.content.decode(), url
    assert support.get(reverse("admin:customer", args=["acc_nope"])).status_code == 404


def test_the_customer_page_is_for_staff_with_view_rights_only(world, alice, client):
    url = reverse("admin:customer", args=[alice.account.pk])
    assert client.get(url).status_code == 302  # to the admin's sign-in
    staff = get_user_model().objects.create_user("nobody", "n@example.com", "pw-for-tests-3",
                                                 is_staff=True)
    client.force_login(staff)
    assert client.get(url).status_code == 404


def test_no_bulk_delete_anywhere(operator, world):
    for model in admin.site._registry:
        opts = model._meta
        page = operator.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert b'value="delete_selected"' not in page.content, opts.label


def test_pages_where_nothing_can_be_edited_offer_no_save_or_delete(operator, world):
    read_only = []
    for url in all_admin_urls(world):
        if not url.endswith("/change/"):
            continue
        html = operator.get(url).content.decode()
        editable = re.search(r'<(input|select|textarea)(?![^>]*type="(hidden|submit|checkbox)")'
                             r'[^>]*name="(?!_|csrf|action|initial-)[a-z]', html)
        if not editable:
            read_only.append(url)
            assert 'name="_save"' not in html, url
            assert "/delete/" not in html, url
    assert any("/session/" in url for url in read_only)
    assert any("/delivery/" in url for url in read_only)
