"""`GET /v1/health`: whether the service and its dependencies answer (open without a key).

503 when the database or Redis is unreachable (this process cannot serve). A part that is
down without stopping the API (no engine host alive: sends are accepted and wait) makes
`status` `degraded`, still 200."""

from collections.abc import Callable

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from api.errors import ApiError, E
from api.views import PublicApiView, ok
from infra.dependencies import database_status, redis_status

# What the apps above add to the report (they register, this layer cannot import them):
# name -> report() returning (the value shown under `name`, whether it is healthy).
_reports: dict[str, Callable[[], tuple[object, bool]]] = {}


def health_report_register(name: str, report: Callable[[], tuple[object, bool]]) -> None:
    _reports[name] = report


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
                            "engineHosts": serializers.JSONField(
                                allow_null=True,
                                help_text="{alive, sessionsOwned, capacityLeft, hosts}: the "
                                          "real engine's hosts; null for the sandbox"),
                        },
                    ),
                },
            )
        },
    )
    def get(self, request):
        database, redis_state = database_status(), redis_status()
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
        data = {"status": "ok", "database": database, "redis": redis_state,
                "engine": settings.WHATSAPP_ENGINE}
        for name, report in _reports.items():
            data[name], healthy = report()
            if not healthy:
                data["status"] = "degraded"
        return ok(data)
