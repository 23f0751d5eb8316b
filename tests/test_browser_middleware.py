"""The browser's middlewares (sessions, CSRF, login, flash messages) run for the admin and
the dashboard only: API requests, authenticated by key on each request, pass them by."""

import pytest
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.csrf import CsrfViewMiddleware

BROWSER_MIDDLEWARES = [SessionMiddleware, CsrfViewMiddleware, AuthenticationMiddleware,
                       MessageMiddleware]


@pytest.fixture
def browser_middlewares_refuse(monkeypatch):
    """Each browser middleware fails the request it is run for."""
    def refuse(self, request):
        raise RuntimeError(f"{type(self).__name__} ran for {request.path}")

    for middleware in BROWSER_MIDDLEWARES:
        monkeypatch.setattr(middleware, "process_request", refuse)


def test_api_requests_pass_by_the_browser_middlewares(alice, anon, browser_middlewares_refuse):
    account = alice.http.get("/v1/account")
    assert account.status_code == 200 and "set-cookie" not in account.headers
    created = alice.http.post("/v1/sessions", json={"name": "no cookies"})
    assert created.status_code == 201 and "set-cookie" not in created.headers
    assert anon.get("/v1/no-such-route").json()["error"]["code"] == "resource_not_found"
    # The same middlewares still run for the admin and the dashboard.
    assert anon.get("/admin/login/").status_code == 500
    assert anon.get("/dashboard/login/").status_code == 500


def test_the_admin_still_refuses_a_post_without_its_csrf_token(db):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    refused = strict.post("/admin/login/", {"username": "op", "password": "x"})
    assert refused.status_code == 403
