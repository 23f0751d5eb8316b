"""Request ids on every response, and a record of every API error response for the admin."""

import contextvars
import logging
import re
import time
import uuid

from django.contrib.auth import middleware as django_auth
from django.contrib.messages import middleware as django_messages
from django.contrib.sessions import middleware as django_sessions
from django.http import HttpRequest, HttpResponse
from django.middleware import csrf as django_csrf

from config.exception_handler import internal_error, json_error_response, translate

logger = logging.getLogger("api.requests")

# The request id of the request being served, for log lines written deep in the stack.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_request_id", default=None
)
# The account of the authenticated request being served (set by the authentication class).
current_account_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_account_id", default=None
)

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")


def is_api_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class RequestIdMiddleware:
    """Echo a client's sane `X-Request-ID`, otherwise make one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _SANE_REQUEST_ID.match(supplied) else f"req_{uuid.uuid4().hex}"
        request.request_id = request_id
        token = current_request_id.set(request_id)
        account_token = current_account_id.set(None)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
            current_account_id.reset(account_token)
        response["X-Request-ID"] = request_id
        if is_api_path(request.path):
            from config.metrics import API_LATENCY, API_REQUESTS

            err = getattr(response, "api_error", None)
            API_REQUESTS.labels(request.method, str(response.status_code),
                                err.code if err else "").inc()
            API_LATENCY.observe(time.perf_counter() - started)
        return response


class RejectNulBytesMiddleware:
    """NUL bytes (`%00`) never reach PostgreSQL, which refuses them in text (a 500): a path
    with one names nothing (404, in the API's envelope under /v1); an API query parameter
    with one is `invalid_request` naming the parameter. Bodies are checked by the input
    serializers and forms."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            from config.views import not_found

            return not_found(request)
        if is_api_path(request.path) and "%00" in request.META.get("QUERY_STRING", ""):
            for name, values in request.GET.lists():
                if any("\x00" in value for value in values) or "\x00" in name:
                    from config.errors import ApiError, E

                    return json_error_response(ApiError(
                        E.invalid_request, field=name.replace("\x00", ""),
                        reason="Null characters are not allowed."))
        return self.get_response(request)


class ApiErrorLogMiddleware:
    """Records each error response of the API (`ApiErrorLog`), and turns an exception that
    escaped a non-DRF view under /v1 into the envelope instead of Django's HTML page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        err = getattr(response, "api_error", None)
        if err is not None:
            from accounts.services import error_log_record

            error_log_record(request=request, error=err, status=response.status_code)
        return response

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
    on every request and sets no cookie, so it passes them by: a bare API request then took
    128 us of CPU instead of 157 (timed in-process; the message storage alone builds a cookie
    signer). Their `process_view` (CSRF's) still runs for it, and lets it through: every view
    under /v1 is CSRF-exempt."""

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
