"""The dashboard's own pages for Django's errors: not found, server error, and a form whose
CSRF token failed, in the catalogue's words like every other dashboard error."""

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views.csrf import csrf_failure as django_csrf_failure

from api.errors import E
from dashboard.access import error_context, render_error


def is_dashboard_path(path: str) -> bool:
    return path == "/dashboard" or path.startswith("/dashboard/")


def dashboard_page_not_found(request: HttpRequest,
                             exception: Exception | None = None) -> HttpResponse:
    return render_error(request, E.resource_not_found, reason="No such page.")


def dashboard_server_error(request: HttpRequest) -> HttpResponse:
    # No request context: what failed may be the database the session lives in.
    page = render_to_string("dashboard/error.html",
                            {"error": error_context(E.internal_server_error)})
    return HttpResponse(page, status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form without a valid CSRF token (expired, or posted from another site): the
    dashboard's page for its forms, Django's for the admin's."""
    if is_dashboard_path(request.path):
        return render_error(request, E.invalid_request, status=403, reason=(
            "The form expired or was sent from another site; reload the page and try again."))
    return django_csrf_failure(request, reason)
