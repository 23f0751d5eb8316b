"""The API's middleware: a request id on every response, NUL bytes refused before they reach
the database, the envelope for an exception that escapes a view under /v1, and Django's
browser-only middleware passed by for API requests."""

import re
import time
import uuid

from django.contrib.auth import middleware as django_auth
from django.contrib.messages import middleware as django_messages
from django.contrib.sessions import middleware as django_sessions
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware import csrf as django_csrf

from api.errors import ApiError, E
from api.exception_handler import internal_error, json_error_response, translate
from infra.logging import current_api_key, current_request_id
from infra.metrics import API_LATENCY, API_REQUESTS

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")


def is_api_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class RequestIdMiddleware:
    """Echo a client's sane `X-Request-ID`, otherwise make one; count and time API responses."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _SANE_REQUEST_ID.match(supplied) else f"req_{uuid.uuid4().hex}"
        request.request_id = request_id
        token = current_request_id.set(request_id)
        key_token = current_api_key.set(None)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
            current_api_key.reset(key_token)
        response["X-Request-ID"] = request_id
        if is_api_path(request.path):
            err = getattr(response, "api_error", None)
            API_REQUESTS.labels(request.method, str(response.status_code),
                                err.code if err else "").inc()
            API_LATENCY.observe(time.perf_counter() - started)
        return response


class RejectNulBytesMiddleware:
    """NUL bytes (`%00`) never reach PostgreSQL, which refuses them in text (a 500): a path
    with one names nothing (404, the site's not-found page: the envelope under /v1); an API
    query parameter with one is `invalid_request` naming the parameter. Bodies are checked by
    the input serializers and forms."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            raise Http404("a path with a NUL byte")
        if is_api_path(request.path) and "%00" in request.META.get("QUERY_STRING", ""):
            for name, values in request.GET.lists():
                if any("\x00" in value for value in values) or "\x00" in name:
                    return json_error_response(ApiError(
                        E.invalid_request, field=name.replace("\x00", ""),
                        reason="Null characters are not allowed."))
        return self.get_response(request)


class ApiExceptionMiddleware:
    """An exception that escaped a view under /v1 that is not DRF's (DRF's views have the
    exception handler) is answered in the envelope, never with Django's HTML page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not is_api_path(request.path):
            return None
        err = translate(exception) or internal_error(
            getattr(request, "request_id", None), exception
        )
        return json_error_response(err)


class BrowserOnly:
    """For the middlewares that serve only the admin and the dashboard, people in a browser:
    sessions, CSRF cookies, login, flash messages. An API request is authenticated by its key
    on every request and sets no cookie, so it passes them by (the message storage alone
    builds a cookie signer for every request). Their `process_view` (CSRF's) still runs for
    it, and lets it through: every view under /v1 is CSRF-exempt."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request.path) and not self.async_mode:
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(BrowserOnly, django_sessions.SessionMiddleware):
    pass


class CsrfViewMiddleware(BrowserOnly, django_csrf.CsrfViewMiddleware):
    pass


class AuthenticationMiddleware(BrowserOnly, django_auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(BrowserOnly, django_messages.MessageMiddleware):
    pass
