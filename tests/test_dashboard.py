"""The customer dashboard through Django's test client: every page, every error in the
catalogue's words, and tenant isolation for every object a URL can name."""

import html
import json
import re
import socket
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, Invitation, MemberRole, PlanChangeRequest
from accounts.services import invitation_create, member_create
from api.errors import CATALOGUE
from messaging.models import Message
from sessions_app.models import Session
from tests.conftest import connected_session
from tests.support.http_server import Route
from webhooks.delivery import webhook_deliver_due
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-and-unusual-passphrase-7"


def _client(**extra) -> Client:
    # A loopback address of its own: the sign-in limits count per address, and tests run in
    # parallel against one Redis.
    address = f"127.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    return Client(REMOTE_ADDR=address, **extra)


def _member(tenant, role=MemberRole.OWNER, email=None):
    email = email or f"{uuid.uuid4().hex[:10]}@{tenant.account.name}.example"
    user = member_create(account=tenant.account, email=email, password=PASSWORD, role=role)
    client = _client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_owner(alice):
    return _member(alice)


@pytest.fixture
def alice_member(alice):
    return _member(alice, role=MemberRole.MEMBER)


@pytest.fixture
def bob_owner(bob):
    return _member(bob)


def assert_catalogue_error(response, code: str, status: int | None = None):
    """The page shows the error's code, and the catalogue's message and troubleshooting text
    for it, or for a form's errors and a refused permission the console's plain words."""
    entry = CATALOGUE[code]
    assert response.status_code == (status or entry.status), response.status_code
    body = response.content.decode()
    assert f'data-code="{code}"' in body
    plain = {"insufficient_permissions": "You do not have access to this",
             "missing_required_parameter": "Something required was left empty"}
    if code in plain:
        assert plain[code] in body
        assert entry.troubleshooting.replace("'", "&#x27;") not in body  # "upgrade your plan"
    elif code == "invalid_request" and "Correct what is marked below" in body:
        assert "Some of what was entered cannot be used" in body
    else:
        assert entry.message.replace("'", "&#x27;") in body
        assert entry.troubleshooting.replace("'", "&#x27;") in body


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- signing in ----------------------------------------------------------------------------


def test_every_page_needs_a_signed_in_customer(alice, alice_owner):
    anonymous = _client()
    assert anonymous.get("/")["Location"] == reverse("dashboard:overview")
    for name in ("overview", "keys", "sessions", "messages", "webhooks", "plan"):
        response = anonymous.get(reverse(f"dashboard:{name}"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("dashboard:login"))
        assert alice_owner.get(reverse(f"dashboard:{name}")).status_code == 200


def test_sign_in_with_email_and_password_then_sign_out(alice):
    member_create(account=alice.account, email="Owner@Alice.example", password=PASSWORD,
                  role=MemberRole.OWNER)
    client = _client()
    assert client.get(reverse("dashboard:login")).status_code == 200
    wrong = client.post(reverse("dashboard:login"),
                        {"username": "owner@alice.example", "password": "nope"})
    assert wrong.status_code == 200 and "correct" in wrong.content.decode()
    right = client.post(reverse("dashboard:login"),
                        {"username": "OWNER@alice.example", "password": PASSWORD})
    assert right.status_code == 302 and right["Location"] == reverse("dashboard:overview")
    page = client.get(reverse("dashboard:overview"))
    assert "alice" in page.content.decode()
    client.post(reverse("dashboard:logout"))
    assert client.get(reverse("dashboard:overview")).status_code == 302


def test_operators_without_an_account_are_sent_to_the_admin(alice):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("root@example.com", "root@example.com", PASSWORD)
    client = _client()
    response = client.post(reverse("dashboard:login"),
                           {"username": "root@example.com", "password": PASSWORD})
    assert response.status_code == 200
    assert "operators use /admin/" in response.content.decode()
    client.force_login(get_user_model().objects.get(username="root@example.com"))
    assert_catalogue_error(client.get(reverse("dashboard:overview")), "insufficient_permissions")


def test_a_disabled_account_is_refused(alice, alice_owner):
    alice.account.is_active = False
    alice.account.save()
    assert_catalogue_error(alice_owner.get(reverse("dashboard:overview")),
                           "insufficient_permissions")


def test_sign_in_attempts_are_rate_limited_per_address(alice, settings):
    settings.DASHBOARD_LOGIN_RATE = "3/m"
    member_create(account=alice.account, email="limited@alice.example", password=PASSWORD)
    client = _client()
    for _ in range(3):
        response = client.post(reverse("dashboard:login"),
                               {"username": "limited@alice.example", "password": "wrong"})
        assert response.status_code == 200
    # Even the right password is refused now: guesses are capped whatever their outcome.
    response = client.post(reverse("dashboard:login"),
                           {"username": "limited@alice.example", "password": PASSWORD})
    assert_catalogue_error(response, "rate_limit_exceeded")
    assert response["Retry-After"] == "60"
    assert "_auth_user_id" not in client.session


def test_sign_in_attempts_are_rate_limited_per_email_across_addresses(alice, settings):
    settings.DASHBOARD_LOGIN_RATE = "3/m"
    email = f"{uuid.uuid4().hex[:8]}@alice.example"
    for _ in range(3):
        _client().post(reverse("dashboard:login"), {"username": email, "password": "wrong"})
    response = _client().post(reverse("dashboard:login"), {"username": email, "password": "x"})
    assert_catalogue_error(response, "rate_limit_exceeded")


def test_password_reset_by_email(alice):
    member_create(account=alice.account, email="forgetful@alice.example", password=PASSWORD)
    client = _client()
    assert client.get(reverse("dashboard:password_reset")).status_code == 200
    response = client.post(reverse("dashboard:password_reset"),
                           {"email": "forgetful@alice.example"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["forgetful@alice.example"]
    link = re.search(r"http://testserver(/dashboard/password-reset/\S+/)", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    form_page = client.get(link.group(1), follow=True)
    assert form_page.status_code == 200 and "Choose a new password" in form_page.content.decode()
    done = client.post(form_page.redirect_chain[-1][0], {
        "new_password1": "another-fine-passphrase-9", "new_password2": "another-fine-passphrase-9"})
    assert done.status_code == 302
    fresh = _client()
    signed_in = fresh.post(reverse("dashboard:login"), {
        "username": "forgetful@alice.example", "password": "another-fine-passphrase-9"})
    assert signed_in.status_code == 302
    # The link works once.
    assert "no longer works" in client.get(link.group(1), follow=True).content.decode()


def test_password_reset_of_an_unknown_email_sends_nothing_and_says_the_same(alice):
    response = _client().post(reverse("dashboard:password_reset"),
                              {"email": "nobody@example.com"})
    assert response.status_code == 302 and response["Location"].endswith("/sent/")
    assert mail.outbox == []


def test_password_reset_with_a_bad_email_is_a_form_error(alice):
    response = _client().post(reverse("dashboard:password_reset"), {"email": "not an email"})
    assert response.status_code == 200 and "valid email" in response.content.decode()


# --- invitations ---------------------------------------------------------------------------


def _invite(tenant, email="new@alice.example", role=MemberRole.MEMBER):
    return invitation_create(account=tenant.account, email=email, role=role, invited_by=None,
                             accept_url="http://testserver/dashboard/invitation/{token}/")


def test_an_invitation_link_creates_the_user_once(alice):
    invitation, link = _invite(alice)
    assert len(mail.outbox) == 1 and link in mail.outbox[0].body
    path = link.removeprefix("http://testserver")
    client = _client()
    page = client.get(path)
    assert page.status_code == 200 and "Join alice" in page.content.decode()
    weak = client.post(path, {"new_password1": "123", "new_password2": "123"})
    assert_catalogue_error(weak, "invalid_request")
    assert "too short" in weak.content.decode()
    accepted = client.post(path, {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert accepted.status_code == 302
    assert client.get(reverse("dashboard:overview")).status_code == 200
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert invitation.account.members.get().role == MemberRole.MEMBER
    assert_catalogue_error(_client().get(path), "resource_not_found")


def test_an_expired_or_unknown_invitation_is_refused(alice):
    invitation, link = _invite(alice)
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    assert_catalogue_error(_client().get(link.removeprefix("http://testserver")),
                           "resource_not_found")
    assert_catalogue_error(_client().post(reverse("dashboard:invitation", args=["made-up"]), {
        "new_password1": PASSWORD, "new_password2": PASSWORD}), "resource_not_found")


# --- overview and plan ----------------------------------------------------------------------


def test_overview_shows_plan_usage_sessions_and_recent_failures(world, alice, alice_owner):
    page = alice_owner.get(reverse("dashboard:overview")).content.decode()
    assert "pro" in page and 'id="messages-today">1<' in page
    assert "connected</span> 1" in page
    failed = world["message"]
    entry = CATALOGUE[failed.error_code]
    assert failed.id in page and entry.troubleshooting in page
    assert world["delivery"].id in page  # the delivery the endpoint refused with 410


def test_plan_page_and_upgrade_request_reach_the_admin(alice, alice_owner, plans, operator):
    page = alice_owner.get(reverse("dashboard:plan"))
    html = page.content.decode()
    assert page.status_code == 200 and "10,000" in html
    # Nothing chosen until the owner chooses: a preselected plan was often a downgrade.
    assert re.search(r'<option value="" selected>Choose a plan', html)
    response = alice_owner.post(reverse("dashboard:plan"),
                                {"plan": plans["business"].pk, "note": "Black Friday"})
    assert response.status_code == 302
    request = PlanChangeRequest.objects.get(account=alice.account)
    assert (request.status, request.requested_plan, request.note) == (
        "open", plans["business"], "Black Friday")
    again = alice_owner.post(reverse("dashboard:plan"), {"plan": plans["free"].pk})
    assert_catalogue_error(again, "invalid_request")
    assert "already have an open" in again.content.decode()
    # The operator approves it in the admin: the account moves to the plan.
    admin_index = operator.get("/admin/").content.decode()
    assert re.search(r'id="dash-plan-requests"><strong><a [^>]+>1</a>', admin_index)
    admin_list = operator.get("/admin/accounts/planchangerequest/")
    assert "Black Friday" in operator.get(
        f"/admin/accounts/planchangerequest/{request.pk}/change/").content.decode()
    assert admin_list.status_code == 200
    operator.post("/admin/accounts/planchangerequest/", {
        "action": "approve", "_selected_action": [request.pk]})
    alice.account.refresh_from_db()
    assert alice.account.plan == plans["business"]
    assert PlanChangeRequest.objects.get(pk=request.pk).status == "approved"


def test_plan_request_refusals(alice, alice_member, alice_owner, plans):
    assert_catalogue_error(alice_owner.post(reverse("dashboard:plan"), {"plan": "999999"}),
                           "invalid_request")
    assert_catalogue_error(alice_owner.post(reverse("dashboard:plan"), {"plan": "x"}),
                           "invalid_request")
    nothing_chosen = alice_owner.post(reverse("dashboard:plan"), {})
    assert_catalogue_error(nothing_chosen, "missing_required_parameter")
    assert re.search(r'</select></label>\s*<ul class="errorlist"', nothing_chosen.content.decode())
    current = alice_owner.post(reverse("dashboard:plan"), {"plan": plans["pro"].pk})
    assert_catalogue_error(current, "invalid_request")
    members_try = alice_member.post(reverse("dashboard:plan"), {"plan": plans["business"].pk})
    assert_catalogue_error(members_try, "insufficient_permissions")
    assert "Only the account" in members_try.content.decode()
    assert not PlanChangeRequest.objects.exists()


# --- API keys ------------------------------------------------------------------------------


def _create_key(client, **fields):
    data = {"name": "ci", "scopes": ["account:read", "sessions:read"], **fields}
    return client.post(reverse("dashboard:keys"), data)


def test_a_created_key_is_shown_once_and_works(alice, alice_owner):
    posted = _create_key(alice_owner)
    assert posted.status_code == 302  # post/redirect/get: a reload cannot create another
    response = alice_owner.get(posted["Location"])
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    raw = re.search(r'id="raw-key">(wak_[^<]+)<', response.content.decode()).group(1)
    reloaded = alice_owner.get(posted["Location"])
    assert reloaded.status_code == 410 and raw not in reloaded.content.decode()
    assert 'id="key-gone"' in reloaded.content.decode()
    assert ApiKey.objects.filter(name="ci").count() == 1
    # Another signed-in user (of the same account) cannot open it either.
    other = _member(alice)
    fresh = _create_key(alice_owner, name="second")
    assert other.get(fresh["Location"]).status_code == 410
    key = ApiKey.objects.get(name="ci")
    assert key.scopes == ["account:read", "sessions:read"]
    from tests.conftest import http_client

    with http_client(str(alice.http.base_url), raw) as api:
        assert api.get("/v1/account").status_code == 200
        assert api.get("/v1/webhooks").json()["error"]["code"] == "insufficient_permissions"
    listing = alice_owner.get(reverse("dashboard:keys")).content.decode()
    assert key.prefix in listing and raw not in listing


def test_key_expiry_and_bad_key_input(alice, alice_owner):
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert _create_key(alice_owner, name="exp", expires_on=tomorrow).status_code == 302
    assert ApiKey.objects.get(name="exp").expires_at.date().isoformat() == tomorrow
    past = _create_key(alice_owner, name="past", expires_on="2020-01-01")
    assert_catalogue_error(past, "invalid_request")
    assert "after today" in past.content.decode()
    assert_catalogue_error(_create_key(alice_owner, name="bad", scopes=["root"]),
                           "invalid_request")
    assert_catalogue_error(_create_key(alice_owner, name="day", expires_on="tomorrow"),
                           "invalid_request")
    assert_catalogue_error(_create_key(alice_owner, name="none", scopes=[]),
                           "missing_required_parameter")
    assert_catalogue_error(_create_key(alice_owner, name="x" * 101), "invalid_request")
    assert not ApiKey.objects.filter(name__in=["past", "bad", "none"]).exists()


def test_revoke_a_key(alice, alice_owner):
    response = alice_owner.post(reverse("dashboard:key_revoke", args=[alice.key.pk]))
    assert response.status_code == 302
    assert alice.http.get("/v1/account").json()["error"]["code"] == "invalid_api_key"


def test_roll_a_key_keeps_the_old_one_for_the_chosen_time(alice, alice_owner):
    posted = alice_owner.post(reverse("dashboard:key_roll", args=[alice.key.pk]),
                              {"old_key_valid_for": "3600"})
    assert posted.status_code == 302
    response = alice_owner.get(posted["Location"])
    body = response.content.decode()
    raw = re.search(r'id="raw-key">(wak_[^<]+)<', body).group(1)
    assert "keeps working until" in body
    old = ApiKey.objects.get(pk=alice.key.pk)
    assert timedelta(minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=1)
    assert alice.http.get("/v1/account").status_code == 200  # still works for now
    from tests.conftest import http_client

    with http_client(str(alice.http.base_url), raw) as api:
        assert api.get("/v1/account").status_code == 200
    new = ApiKey.objects.exclude(pk=old.pk).get(account=alice.account)
    assert (new.name, new.scopes) == (old.name, old.scopes)


def test_roll_now_revokes_and_bad_roll_input_is_refused(alice, alice_owner):
    bad = alice_owner.post(reverse("dashboard:key_roll", args=[alice.key.pk]),
                           {"old_key_valid_for": "forever"})
    assert_catalogue_error(bad, "invalid_request")
    alice_owner.post(reverse("dashboard:key_roll", args=[alice.key.pk]),
                     {"old_key_valid_for": "0"})
    assert ApiKey.objects.get(pk=alice.key.pk).is_revoked
    again = alice_owner.post(reverse("dashboard:key_roll", args=[alice.key.pk]),
                             {"old_key_valid_for": "0"})
    assert_catalogue_error(again, "invalid_request")


def test_members_who_are_not_owners_cannot_manage_keys(alice, alice_member):
    assert_catalogue_error(alice_member.get(reverse("dashboard:keys")),
                           "insufficient_permissions")
    assert_catalogue_error(alice_member.post(reverse("dashboard:key_revoke",
                                                     args=[alice.key.pk])),
                           "insufficient_permissions")
    assert not ApiKey.objects.get(pk=alice.key.pk).is_revoked
    assert 'href="/dashboard/keys/"' not in alice_member.get(
        reverse("dashboard:overview")).content.decode()


# --- sessions ------------------------------------------------------------------------------


def test_create_a_session_see_the_qr_and_follow_it_to_connected(alice, alice_owner):
    response = alice_owner.post(reverse("dashboard:sessions"), {"name": "shop"})
    assert response.status_code == 302
    session = Session.objects.get(account=alice.account)
    assert response["Location"] == reverse("dashboard:session", args=[session.id])
    page = alice_owner.get(response["Location"]).content.decode()
    assert 'data-status="qr_pending"' in page and 'src="data:image/png;base64,' in page
    state = alice_owner.get(reverse("dashboard:session_state", args=[session.id])).json()
    assert state["status"] == "qr_pending" and state["qrImage"].startswith("data:image/png")
    assert state["qr"] == Session.objects.get(pk=session.id).qr_code
    scanned = alice.http.post(f"/v1/sandbox/sessions/{session.id}/scan",
                              json={"phoneNumber": "14155552671"})
    assert scanned.status_code == 200
    state = alice_owner.get(reverse("dashboard:session_state", args=[session.id])).json()
    assert (state["status"], state["qrImage"], state["phoneNumber"]) == (
        "connected", None, "14155552671")


def test_pairing_code_option(alice, alice_owner):
    alice_owner.post(reverse("dashboard:sessions"), {"phone_number": "+1 415 555 2671"})
    session = Session.objects.get(account=alice.account)
    state = alice_owner.get(reverse("dashboard:session_state", args=[session.id])).json()
    assert re.fullmatch(r"[A-Z0-9]{8}", state["pairingCode"])
    assert state["pairingCode"] in alice_owner.get(
        reverse("dashboard:session", args=[session.id])).content.decode()


def test_session_create_errors_use_the_catalogue(make_tenant):
    small = make_tenant("small", plan="free")
    client = _member(small)
    bad_phone = client.post(reverse("dashboard:sessions"), {"phone_number": "12"})
    assert_catalogue_error(bad_phone, "invalid_phone_number")
    assert client.post(reverse("dashboard:sessions"), {}).status_code == 302
    over = client.post(reverse("dashboard:sessions"), {"name": "second"})
    assert_catalogue_error(over, "session_limit_reached")
    assert Session.objects.filter(account=small.account).count() == 1
    too_long = client.post(reverse("dashboard:sessions"), {"name": "x" * 101})
    assert_catalogue_error(too_long, "invalid_request")


def test_expired_session_offers_a_new_qr_code(alice, alice_owner, settings):
    alice_owner.post(reverse("dashboard:sessions"), {})
    session = Session.objects.get(account=alice.account)
    Session.objects.filter(pk=session.pk).update(qr_expires_at=timezone.now())
    state = alice_owner.get(reverse("dashboard:session_state", args=[session.id])).json()
    assert (state["status"], state["restartable"], state["qrImage"]) == ("expired", True, None)
    response = alice_owner.post(reverse("dashboard:session_restart", args=[session.id]))
    assert response.status_code == 302
    state = alice_owner.get(reverse("dashboard:session_state", args=[session.id])).json()
    assert state["status"] == "qr_pending" and state["qrImage"]
    Session.objects.filter(pk=session.pk).update(status="logged_out")
    refused = alice_owner.post(reverse("dashboard:session_restart", args=[session.id]))
    assert_catalogue_error(refused, "session_logged_out")


def test_a_dropped_session_says_why_and_offers_to_reconnect(alice, alice_owner):
    alice_owner.post(reverse("dashboard:sessions"), {})
    session = Session.objects.get(account=alice.account)
    alice.http.post(f"/v1/sandbox/sessions/{session.id}/scan", json={"phoneNumber": "14155552671"})
    alice.http.post(f"/v1/sandbox/sessions/{session.id}/disconnect")
    state = alice_owner.get(reverse("dashboard:session_state", args=[session.id])).json()
    assert (state["status"], state["lastErrorCode"], state["restartLabel"]) == (
        "disconnected", "connection_lost", "Reconnect now")
    assert "reconnects by itself at" in state["endedText"]
    alice_owner.post(reverse("dashboard:session_restart", args=[session.id]))
    session.refresh_from_db()
    assert session.status == "connected"


def test_delete_a_session(alice, alice_owner):
    session = connected_session(alice)
    response = alice_owner.post(reverse("dashboard:session_delete", args=[session["id"]]))
    assert response.status_code == 302
    assert alice.http.get(f"/v1/sessions/{session['id']}").status_code == 404
    assert session["id"] not in alice_owner.get(reverse("dashboard:sessions")).content.decode()


def test_state_and_actions_refuse_get_or_post_as_appropriate(alice, alice_owner):
    session = connected_session(alice)
    wrong = alice_owner.get(reverse("dashboard:session_delete", args=[session["id"]]))
    assert_catalogue_error(wrong, "method_not_allowed")
    assert wrong["Allow"] == "POST"
    wrong = alice_owner.post(reverse("dashboard:session_state", args=[session["id"]]))
    assert_catalogue_error(wrong, "method_not_allowed")
    assert wrong["Allow"] == "GET"
    assert Session.objects.get(pk=session["id"]).deleted_at is None


def test_unknown_dashboard_pages_and_server_errors_use_the_catalogue(alice_owner, rf):
    from config.urls import server_error

    assert_catalogue_error(alice_owner.get("/dashboard/no-such-page/"), "resource_not_found")
    assert_catalogue_error(_client().get("/dashboard/sessions/x/y/z/"), "resource_not_found")
    failed = server_error(rf.get("/dashboard/sessions/"))
    assert_catalogue_error(failed, "internal_server_error")
    assert "Traceback" not in failed.content.decode()


# --- messages ------------------------------------------------------------------------------


def test_message_search_filters_and_detail(world, alice, alice_owner):
    failed = world["message"]
    listing = alice_owner.get(reverse("dashboard:messages")).content.decode()
    assert failed.id in listing
    for query in ({"q": failed.id}, {"q": "5550001"}, {"status": "failed"},
                  {"direction": "outbound"}, {"session": world["session"]["id"]}):
        page = alice_owner.get(reverse("dashboard:messages"), query)
        assert page.status_code == 200 and failed.id in page.content.decode(), query
    for query in ({"q": "nothing-like-this"}, {"status": "read"}, {"direction": "inbound"}):
        assert failed.id not in alice_owner.get(reverse("dashboard:messages"),
                                                query).content.decode(), query
    detail = alice_owner.get(reverse("dashboard:message", args=[failed.id]))
    assert detail.status_code == 200
    body = detail.content.decode()
    entry = CATALOGUE[failed.error_code]
    assert entry.message.replace("'", "&#x27;") in body and entry.troubleshooting in body
    assert body.count("<li><time>") == failed.history.count() >= 1


def test_lists_show_the_newest_first(alice, alice_owner, receiver, settings):
    """Messages, and a webhook's deliveries with and without a status filter, newest first:
    the order the (scope, id) indexes hold on both databases."""
    settings.ALLOW_PRIVATE_URLS, settings.WEBHOOK_REQUIRE_HTTPS = True, False
    session = connected_session(alice)
    sent = [alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": "14155550001", "text": f"m{i}"}).json()["data"]["id"]
        for i in range(3)]
    listing = alice_owner.get(reverse("dashboard:messages")).content.decode()
    assert sorted(sent, key=listing.index) == sent[::-1]

    hook = Webhook.objects.get(pk=alice.http.post("/v1/webhooks", json={
        "url": receiver.url("/hook"), "events": ["message.status"]}).json()["data"]["id"])
    for _ in range(3):
        alice_owner.post(reverse("dashboard:webhook_test", args=[hook.id]))
    receiver.routes["/hook"] = Route(status=500)
    for _ in range(2):
        alice_owner.post(reverse("dashboard:webhook_test", args=[hook.id]))
    Delivery.objects.filter(webhook=hook, status="pending").update(status="failed")
    deliveries = list(Delivery.objects.filter(webhook=hook).order_by("created_at")
                      .values_list("id", "status"))
    assert [status for _, status in deliveries] == ["succeeded"] * 3 + ["failed"] * 2
    for status in ("", "succeeded", "failed"):
        page = alice_owner.get(reverse("dashboard:webhook", args=[hook.id]),
                               {"status": status} if status else {}).content.decode()
        expected = [pk for pk, shown in deliveries if status in ("", shown)][::-1]
        assert sorted((pk for pk, _ in deliveries if pk in page), key=page.index) == expected


def test_bad_message_filters_are_a_400_not_a_500(alice, alice_owner):
    assert_catalogue_error(alice_owner.get(reverse("dashboard:messages"), {"status": "bogus"}),
                           "invalid_request")
    assert alice_owner.get(reverse("dashboard:messages"), {"page": "x"}).status_code == 200
    assert_catalogue_error(alice_owner.get(reverse("dashboard:messages"), {"q": "x" * 300}),
                           "invalid_request")
    assert_catalogue_error(alice_owner.get(reverse("dashboard:message", args=["msg_nope"])),
                           "message_not_found")


# --- webhooks ------------------------------------------------------------------------------


def _register(client, url, **fields):
    return client.post(reverse("dashboard:webhooks"),
                       {"url": url, "events": ["message.status"], **fields})


def test_register_test_and_redeliver_a_webhook(alice, alice_owner, receiver):
    posted = _register(alice_owner, receiver.url("/hook"), description="orders")
    assert posted.status_code == 302
    created = alice_owner.get(posted["Location"])
    hook = Webhook.objects.get(account=alice.account)
    assert hook.secret in created.content.decode()  # shown once, here
    again = alice_owner.get(posted["Location"])
    assert again.status_code == 410 and hook.secret not in again.content.decode()
    assert hook.secret not in alice_owner.get(
        reverse("dashboard:webhook", args=[hook.id])).content.decode()
    assert len(receiver.hits_for("/hook")) == 1  # the registration's test event

    posted = alice_owner.post(reverse("dashboard:webhook_test", args=[hook.id]))
    assert posted.status_code == 302
    tested = alice_owner.get(posted["Location"])
    assert tested.status_code == 200 and "HTTP 200" in tested.content.decode()
    assert alice_owner.get(posted["Location"]).status_code == 200  # a reload tests nothing
    assert len(receiver.hits_for("/hook")) == 2
    delivery = Delivery.objects.get(webhook=hook)
    assert (delivery.event.type, delivery.status, delivery.attempts) == (
        "webhook.test", "succeeded", 1)
    hit = receiver.hits_for("/hook")[-1]
    assert hit.headers["webhook-id"] == delivery.event_id
    page = alice_owner.get(reverse("dashboard:delivery", args=[hook.id, delivery.id]))
    assert page.status_code == 200 and "<td>200</td>" in page.content.decode()
    shown = re.search(r'<pre id="delivery-body">(.*?)</pre>', page.content.decode(), re.S)
    assert json.loads(html.unescape(shown.group(1))) == json.loads(hit.body)

    redeliver = alice_owner.post(reverse("dashboard:delivery_redeliver",
                                         args=[hook.id, delivery.id]))
    assert redeliver.status_code == 302 and redeliver["Location"].endswith("?redelivered=1")
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"
    assert webhook_deliver_due(webhook_id=hook.id) == "idle"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    again = receiver.hits_for("/hook")[-1]
    assert again.headers["webhook-id"] == delivery.event_id and again.body == hit.body
    listing = alice_owner.get(reverse("dashboard:webhook", args=[hook.id]),
                              {"status": "succeeded"}).content.decode()
    assert delivery.id in listing


def test_webhook_registration_errors_match_the_api(alice, bob, alice_owner, receiver,
                                                   settings):
    assert_catalogue_error(_register(alice_owner, "ftp://example.com/x"), "invalid_webhook_url")
    assert_catalogue_error(_register(alice_owner, "not a url"), "invalid_webhook_url")
    too_long = _register(alice_owner, receiver.url("/hook") + "?" + "x" * 2100)
    assert_catalogue_error(too_long, "invalid_webhook_url")
    assert "Longer than 2048" in too_long.content.decode()
    assert_catalogue_error(
        alice_owner.post(reverse("dashboard:webhooks"), {"url": receiver.url("/hook")}),
        "invalid_webhook_event")
    assert_catalogue_error(_register(alice_owner, receiver.url("/hook"),
                                     events=["message.sent"]), "invalid_webhook_event")
    assert_catalogue_error(_register(alice_owner, f"http://127.0.0.1:{_closed_port()}/hook"),
                           "webhook_url_unreachable")
    receiver.routes["/slow"] = Route(status=200, delay=6)
    assert_catalogue_error(_register(alice_owner, receiver.url("/slow")),
                           "webhook_response_timeout")
    bobs = connected_session(bob)
    assert_catalogue_error(_register(alice_owner, receiver.url("/hook"),
                                     session=bobs["id"]), "session_not_found")
    settings.WEBHOOK_REQUIRE_HTTPS = True
    assert_catalogue_error(_register(alice_owner, receiver.url("/hook")),
                           "invalid_webhook_url")
    assert not Webhook.objects.filter(account=alice.account).exists()


def test_a_failing_test_event_is_recorded_and_shown(alice, alice_owner, receiver):
    _register(alice_owner, receiver.url("/hook"))
    hook = Webhook.objects.get(account=alice.account)
    receiver.routes["/hook"] = Route(status=500, body=b"boom")
    response = alice_owner.post(reverse("dashboard:webhook_test", args=[hook.id]), follow=True)
    assert_catalogue_error(response, "webhook_url_unreachable")
    delivery = Delivery.objects.get(webhook=hook)
    attempt = delivery.attempt_log.get()
    assert (delivery.status, attempt.status_code, attempt.response_snippet) == (
        "failed", 500, "boom")
    overview = alice_owner.get(reverse("dashboard:overview")).content.decode()
    assert delivery.id in overview


def test_disable_enable_and_delete_a_webhook(alice, alice_owner, receiver):
    _register(alice_owner, receiver.url("/hook"))
    hook = Webhook.objects.get(account=alice.account)
    alice_owner.post(reverse("dashboard:webhook_enable", args=[hook.id]), {"enabled": "false"})
    assert not Webhook.objects.get(pk=hook.pk).is_active
    delivery_page = alice_owner.post(reverse("dashboard:webhook_test", args=[hook.id]),
                                     follow=True)
    delivery = Delivery.objects.get(webhook=hook)
    assert delivery_page.status_code == 200
    refused = alice_owner.post(reverse("dashboard:delivery_redeliver",
                                       args=[hook.id, delivery.id]))
    assert_catalogue_error(refused, "invalid_request")
    alice_owner.post(reverse("dashboard:webhook_enable", args=[hook.id]), {"enabled": "true"})
    assert Webhook.objects.get(pk=hook.pk).is_active
    alice_owner.post(reverse("dashboard:webhook_delete", args=[hook.id]))
    assert alice.http.get(f"/v1/webhooks/{hook.id}").status_code == 404
    assert_catalogue_error(alice_owner.get(reverse("dashboard:webhook", args=[hook.id])),
                           "resource_not_found")


# --- tenant isolation -----------------------------------------------------------------------


def test_another_accounts_objects_are_not_found_by_id(world, alice, bob_owner):
    """Every URL that names an object, with Alice's ids, from Bob's dashboard: the catalogue's
    not-found page, and nothing of Alice's changed."""
    session_id = world["session"]["id"]
    message, hook, delivery = world["message"], world["webhook"], world["delivery"]
    cases = [
        ("get", "session", [session_id], "session_not_found"),
        ("get", "session_state", [session_id], "session_not_found"),
        ("get", "session_group", [session_id, "120363000000000001@g.us"],
         "session_not_found"),
        ("post", "session_restart", [session_id], "session_not_found"),
        ("post", "session_delete", [session_id], "session_not_found"),
        ("get", "message", [message.id], "message_not_found"),
        ("get", "webhook", [hook.id], "resource_not_found"),
        ("post", "webhook_test", [hook.id], "resource_not_found"),
        ("post", "webhook_enable", [hook.id], "resource_not_found"),
        ("post", "webhook_delete", [hook.id], "resource_not_found"),
        ("get", "delivery", [hook.id, delivery.id], "resource_not_found"),
        ("post", "delivery_redeliver", [hook.id, delivery.id], "resource_not_found"),
        ("post", "key_revoke", [alice.key.pk], "resource_not_found"),
        ("post", "key_roll", [alice.key.pk], "resource_not_found"),
    ]
    for method, name, args, code in cases:
        response = getattr(bob_owner, method)(reverse(f"dashboard:{name}", args=args),
                                              {"old_key_valid_for": "0", "enabled": "false"}
                                              if method == "post" else None)
        assert_catalogue_error(response, code)
        assert session_id not in response.content.decode() or name.startswith("session")
    assert Session.objects.get(pk=session_id).status == "connected"
    assert Webhook.objects.get(pk=hook.pk).deleted_at is None
    assert not ApiKey.objects.get(pk=alice.key.pk).is_revoked
    assert ApiKey.objects.filter(account=alice.account).count() == 1
    assert Delivery.objects.get(pk=delivery.pk).status == delivery.status


def test_lists_and_searches_show_only_the_accounts_own_objects(world, bob, bob_owner):
    message = world["message"]
    for name in ("overview", "sessions", "messages", "webhooks"):
        body = bob_owner.get(reverse(f"dashboard:{name}")).content.decode()
        assert message.id not in body and world["session"]["id"] not in body, name
        assert world["webhook"].id not in body, name
    found = bob_owner.get(reverse("dashboard:messages"), {"q": message.id}).content.decode()
    assert f'href="/dashboard/messages/{message.id}/"' not in found
    assert "No messages match" in found
    filtered = bob_owner.get(reverse("dashboard:messages"),
                             {"session": world["session"]["id"]}).content.decode()
    assert message.id not in filtered
    keys = bob_owner.get(reverse("dashboard:keys")).content.decode()
    assert world["message"].account.api_keys.get().prefix not in keys
    assert bob.key.prefix in keys


def test_a_webhook_cannot_be_tied_to_another_accounts_session(world, bob, bob_owner,
                                                              receiver):
    response = _register(bob_owner, receiver.url("/hook"),
                         session=world["session"]["id"])
    assert_catalogue_error(response, "session_not_found")
    assert not Webhook.objects.filter(account=bob.account).exists()
    assert Message.objects.filter(account=bob.account).count() == 0


# --- protections ---------------------------------------------------------------------------


def test_csrf_clickjacking_and_cookie_protections(alice):
    member_create(account=alice.account, email="csrf@alice.example", password=PASSWORD)
    strict = _client(enforce_csrf_checks=True)
    refused = strict.post(reverse("dashboard:login"),
                          {"username": "csrf@alice.example", "password": PASSWORD})
    assert_catalogue_error(refused, "invalid_request", status=403)
    page = strict.get(reverse("dashboard:login"))
    assert page["X-Frame-Options"] == "DENY"
    token = strict.cookies["csrftoken"].value
    signed_in = strict.post(reverse("dashboard:login"), {
        "username": "csrf@alice.example", "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert signed_in.status_code == 302
    session_cookie = signed_in.cookies["sessionid"]
    assert session_cookie["httponly"] and session_cookie["samesite"] == "Lax"
    # Signed in, a POST without the token is still refused.
    assert_catalogue_error(strict.post(reverse("dashboard:sessions"), {"name": "x"}),
                           "invalid_request", status=403)
    assert not Session.objects.exists()


def test_production_cookies_are_secure():
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
            "from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY)")
    import os

    env = {**os.environ, "SECURE_COOKIES": "true"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "True", "True"]


# --- the admin side -------------------------------------------------------------------------


def test_operators_create_customer_users_and_invitations_in_the_admin(alice, operator):
    created = operator.post("/admin/accounts/membership/add/", {
        "email": "made@alice.example", "password": PASSWORD, "account": alice.account.pk,
        "role": "owner"})
    assert created.status_code == 302, created.content.decode()[:2000]
    client = _client()
    assert client.post(reverse("dashboard:login"), {
        "username": "made@alice.example", "password": PASSWORD}).status_code == 302
    duplicate = operator.post("/admin/accounts/membership/add/", {
        "email": "made@alice.example", "account": alice.account.pk, "role": "member"})
    assert duplicate.status_code == 200 and "already exists" in duplicate.content.decode()

    invited = operator.post("/admin/accounts/invitation/add/", {
        "email": "guest@alice.example", "account": alice.account.pk, "role": "member"},
        follow=True)
    assert invited.status_code == 200
    link = re.search(r"http://testserver(/dashboard/invitation/[^/\s]+/)",
                     invited.content.decode()).group(1)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["guest@alice.example"]
    assert _client().get(link).status_code == 200
    assert operator.get("/admin/accounts/membership/").status_code == 200


def test_support_staff_may_view_customer_users_and_plan_requests():
    from django.contrib.auth.models import Group, Permission

    from accounts.roles import support_group_ensure

    codenames = set(support_group_ensure(Group, Permission).permissions
                    .values_list("codename", flat=True))
    assert {"view_membership", "view_invitation", "view_planchangerequest"} <= codenames
    assert not any(name.startswith(("add_", "change_", "delete_")) for name in codenames)


BAD_TEXT = ["\x00", "a\x00b", "x" * 5000, "💥" * 50, "<script>alert(1)</script>",
            "' OR 1=1 --", "%s%n"]


def test_no_form_input_makes_a_server_error(alice, alice_owner, receiver):
    forms = {"dashboard:sessions": ["name", "phone_number"],
             "dashboard:keys": ["name", "expires_on", "scopes"],
             "dashboard:webhooks": ["url", "events", "session", "description"],
             "dashboard:plan": ["plan", "note"]}
    for name, fields in forms.items():
        for field in fields:
            for bad in BAD_TEXT:
                response = alice_owner.post(reverse(name), {field: bad})
                # 302: a valid odd value (a session named "💥💥💥"), 403: the plan's limit.
                assert response.status_code in (200, 302, 400, 403, 404), (name, field, bad[:9])
                assert "<script>alert" not in response.content.decode()
    for field in ("q", "status", "direction", "session", "page"):
        for bad in BAD_TEXT:
            response = alice_owner.get(reverse("dashboard:messages"), {field: bad})
            assert response.status_code in (200, 400), (field, bad[:9])
    for path in ("/dashboard/sessions/a%00b/", "/dashboard/messages/a%00b/",
                 "/dashboard/webhooks/a%00b/", "/dashboard/invitation/a%00b/"):
        assert_catalogue_error(alice_owner.get(path), "resource_not_found")
    anonymous = _client()
    assert anonymous.post(reverse("dashboard:login"),
                          {"username": "a\x00b@x.example", "password": "x\x00"}).status_code == 200
    assert anonymous.post(reverse("dashboard:password_reset"),
                          {"email": "a\x00b@x.example"}).status_code == 200
    names = set(Session.objects.filter(account=alice.account).values_list("name", flat=True))
    assert names <= {"", "💥" * 50, "<script>alert(1)</script>", "' OR 1=1 --", "%s%n"}
    assert not Webhook.objects.exists()


def test_a_location_and_contact_cards_show_on_the_message_page(alice, alice_owner, settings):
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    session = connected_session(alice)
    place = alice.http.post("/v1/messages/location", json={
        "sessionId": session["id"], "to": "14155550123", "latitude": 48.8584,
        "longitude": 2.2945, "name": "<Eiffel>"}).json()["data"]
    page = alice_owner.get(reverse("dashboard:message", args=[place["id"]])).content.decode()
    assert "openstreetmap.org/?mlat=48.858400&amp;mlon=2.294500" in page
    assert "&lt;Eiffel&gt;" in page and "<Eiffel>" not in page
    cards = alice.http.post("/v1/messages/contact", json={
        "sessionId": session["id"], "to": "14155550123",
        "contacts": [{"name": "Ann", "phoneNumber": "14155550100"}]}).json()["data"]
    page = alice_owner.get(reverse("dashboard:message", args=[cards["id"]])).content.decode()
    assert "Ann <code>+14155550100</code>" in page


def test_replies_reactions_and_edits_show_on_the_message_page(alice, alice_owner, settings):
    from messaging.sender import session_sender_run
    from sessions_app.event_consumer import engine_events_drain

    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    session = connected_session(alice)
    question = alice.http.post(f"/v1/sandbox/sessions/{session['id']}/inbound", json={
        "from": "447911123456", "text": "Open today?"}).json()["data"]
    answer = alice.http.post("/v1/messages/text", json={
        "sessionId": session["id"], "to": "447911123456", "text": "Yes, till 6",
        "replyTo": question["id"]}).json()["data"]
    reaction = alice.http.post("/v1/messages/reaction", json={
        "sessionId": session["id"], "messageId": question["id"], "emoji": "👍"}).json()["data"]
    session_sender_run(session_id=session["id"])
    engine_events_drain()
    alice.http.patch(f"/v1/messages/{answer['id']}", json={"text": "Yes, till 7"})
    session_sender_run(session_id=session["id"])
    page = alice_owner.get(reverse("dashboard:message", args=[answer["id"]])).content.decode()
    assert f'<code>{question["id"]}</code>' in page and "Edited" in page
    assert "Yes, till 7" in page
    page = alice_owner.get(reverse("dashboard:message", args=[question["id"]])).content.decode()
    assert 'id="message-reactions"' in page and "👍" in page
    page = alice_owner.get(reverse("dashboard:message", args=[reaction["id"]])).content.decode()
    assert 'id="message-action"' in page and question["id"] in page


def test_a_sessions_chats_and_a_groups_members_are_shown(alice, bob, alice_owner, bob_owner,
                                                         settings):
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    session = connected_session(alice)
    group = alice.http.post(f"/v1/sessions/{session['id']}/groups", json={
        "subject": "<Night> shift", "participants": ["447911123456"]}).json()["data"]
    inbound = f"/v1/sandbox/sessions/{session['id']}/inbound"
    alice.http.post(inbound, json={"from": "447911123456", "chatId": group["id"],
                                   "text": "in the group"})
    alice.http.post(inbound, json={"from": "447911123457", "senderLid": "555000111@lid",
                                   "text": "who am I"})
    page = alice_owner.get(reverse("dashboard:session", args=[session["id"]])).content.decode()
    chats = page[page.index('id="chats"'):]
    # Newest activity first: the hidden sender's chat, then the group's, named by its subject.
    assert chats.index("555000111@lid") < chats.index("&lt;Night&gt; shift")
    assert "<Night>" not in page
    assert f"chat={group['id'].replace('@', '%40')}" in chats
    members = alice_owner.get(reverse("dashboard:session_group",
                                      args=[session["id"], group["id"]])).content.decode()
    assert "+447911123456" in members and "+14155552671" in members and "admin" in members
    listed = alice_owner.get(reverse("dashboard:messages"), {
        "session": session["id"], "chat": group["id"]}).content.decode()
    assert "in the group" in listed and "who am I" not in listed
    unknown = alice_owner.get(reverse("dashboard:session_group",
                                      args=[session["id"], "120363000000000001@g.us"]))
    assert_catalogue_error(unknown, "group_not_found")
    bobs = bob_owner.get(reverse("dashboard:session_group", args=[session["id"], group["id"]]))
    assert_catalogue_error(bobs, "session_not_found")
