"""Endpoints that belong to the service as a whole: health, and the envelope for Django's own
404 and 500 pages under /v1."""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from config.api import PublicApiView, ok
from config.errors import ApiError, E
from config.exception_handler import UNAVAILABLE_ERRORS, json_error_response
from config.middleware import is_api_path


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except UNAVAILABLE_ERRORS:
        return False


def _redis_status() -> str:
    if not settings.REDIS_URL:
        return "not_configured"
    from accounts.limits import redis_client

    try:
        redis_client().ping()
        return "ok"
    except UNAVAILABLE_ERRORS:
        return "unavailable"


class HealthApi(PublicApiView):
    error_codes = ("service_unavailable",)

    @extend_schema(
        operation_id="health",
        summary="Service health (no API key needed)",
        responses={
            200: inline_serializer(
                "Health",
                {
                    "success": serializers.BooleanField(),
                    "data": inline_serializer(
                        "HealthData",
                        {
                            "status": serializers.CharField(),
                            "database": serializers.CharField(),
                            "redis": serializers.CharField(),
                            "engine": serializers.CharField(),
                        },
                    ),
                },
            )
        },
    )
    def get(self, request):
        database = "ok" if _database_ok() else "unavailable"
        redis_state = _redis_status()
        down = [
            name for name, state in (("database", database), ("redis", redis_state))
            if state == "unavailable"
        ]
        if down:
            raise ApiError(
                E.service_unavailable,
                reason=f"unreachable: {', '.join(down)}",
                headers={"Retry-After": str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)},
            )
        return ok(
            {
                "status": "ok",
                "database": database,
                "redis": redis_state,
                "engine": settings.WHATSAPP_ENGINE,
            }
        )


@csrf_exempt
def api_route_not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    return json_error_response(ApiError(E.resource_not_found, reason=f"No route {request.path}"))


def _is_dashboard_path(path: str) -> bool:
    return path == "/dashboard" or path.startswith("/dashboard/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return json_error_response(ApiError(E.resource_not_found))
    if _is_dashboard_path(request.path):
        from dashboard.access import render_error

        return render_error(request, E.resource_not_found, reason="No such page.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request.path):
        return json_error_response(ApiError(E.internal_server_error))
    if _is_dashboard_path(request.path):
        from django.template.loader import render_to_string

        from dashboard.access import error_context

        # No request context: what failed may be the database the session lives in.
        page = render_to_string("dashboard/error.html",
                                {"error": error_context(E.internal_server_error)})
        return HttpResponse(page, status=500)
    from django.views.defaults import server_error as html_server_error

    return html_server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form without a valid CSRF token (expired, or posted from another site)."""
    if _is_dashboard_path(request.path):
        from dashboard.access import render_error

        return render_error(request, E.invalid_request, status=403, reason=(
            "The form expired or was sent from another site; reload the page and try again."))
    from django.views.csrf import csrf_failure as default_csrf_failure

    return default_csrf_failure(request, reason)
