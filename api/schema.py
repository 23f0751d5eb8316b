"""OpenAPI generation: success bodies in the `{success, data}` envelope, and for every
operation the catalogue codes it can answer with, grouped by HTTP status."""

import inspect
from collections import defaultdict

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers

from api.errors import CATALOGUE

AUTH_CODES = (
    "missing_api_key",
    "invalid_api_key",
    "expired_api_key",
    "insufficient_permissions",
    "rate_limit_exceeded",
    "concurrent_request_limit_exceeded",
)
BODY_CODES = ("missing_required_parameter", "invalid_parameter_type")
# A bad query value or body can reach any operation.
ALWAYS_CODES = ("invalid_request", "internal_server_error", "service_unavailable")

_envelopes: dict[str, serializers.Serializer] = {}


def list_parameters(*filters):
    """`limit`, `cursor` and the list's filters, with the bounds the API enforces."""
    return [
        *filters,
        OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100},
                         description="page size, 1-100 (default 20)"),
        OpenApiParameter("cursor", {"type": "string", "pattern": "^[a-z]{2,4}_[0-9A-Z]{26}$"},
                         description="`pagination.nextCursor` of the previous page"),
    ]


class Pagination(serializers.Serializer):
    """One component for every list's `pagination`."""

    nextCursor = serializers.CharField(allow_null=True)


def envelope(serializer_class: type[serializers.Serializer], *, many: bool = False):
    """`{success: true, data: <serializer>}` (lists add `pagination`) for the schema."""
    name = f"{serializer_class.__name__.removesuffix('Output')}{'List' if many else ''}Response"
    if name not in _envelopes:
        fields = {"success": serializers.BooleanField(), "data": serializer_class(many=many)}
        if many:
            fields["pagination"] = Pagination()
        _envelopes[name] = inline_serializer(name, fields)
    return _envelopes[name]


def _error_schema(codes: list[str]) -> dict:
    return {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": codes},
                    "message": {"type": "string"},
                    "details": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "reason": {"type": "string"},
                        },
                    },
                },
            },
        },
    }


class ApiAutoSchema(AutoSchema):
    def error_codes(self) -> list[str]:
        codes: list[str] = list(getattr(self.view, "error_codes", ()))
        if getattr(self.view, "takes_api_key", False):
            codes.extend(AUTH_CODES)
        if self.method in ("POST", "PUT", "PATCH"):
            codes.extend(BODY_CODES)
        codes.extend(ALWAYS_CODES)
        return list(dict.fromkeys(codes))

    def get_operation(self, *args, **kwargs) -> dict | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        by_status: dict[int, list[str]] = defaultdict(list)
        for code in self.error_codes():
            by_status[CATALOGUE[code].status].append(code)
        for status, codes in sorted(by_status.items()):
            listing = "; ".join(f"`{c}`: {CATALOGUE[c].message}" for c in codes)
            operation["responses"][str(status)] = {
                "description": listing,
                "content": {"application/json": {"schema": _error_schema(codes)}},
            }
        return operation

    def get_auth(self) -> list[dict]:
        """The key the operation takes (the API authenticates in its own admission, which
        the generator cannot see): so the docs page's "Try it out" sends it."""
        return [{"ApiKey": []}] if getattr(self.view, "takes_api_key", False) else []

    def get_description(self) -> str:
        """The view's own docstring only: the base views' say how they work, not what the
        operation does."""
        return inspect.cleandoc(type(self.view).__dict__.get("__doc__") or "")
