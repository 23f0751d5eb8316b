"""`GET /v1/health`: whether the service and its dependencies answer (open without a key)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from api.errors import ApiError, E
from api.views import PublicApiView, ok
from infra.dependencies import database_status, redis_status


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
        return ok(
            {
                "status": "ok",
                "database": database,
                "redis": redis_state,
                "engine": settings.WHATSAPP_ENGINE,
            }
        )
