"""What every API view shares: the success envelope, strict input serializers, JSON-only
negotiation, and the base view that applies authentication, rate and concurrency limits."""

import functools
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApiError, E
from config.wakeups import wakeups_held


def ok(data: Any, status: int = 200, **extra: Any) -> Response:
    return Response({"success": True, "data": data, **extra}, status=status)


# --- strict input fields: JSON types are checked, never coerced (DRF turns 5 into "5") -------


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid_type": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid_type")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid_type": "Must be an integer."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid_type")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid_type": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid_type")
        return data


# What DRF's CharField refuses in any string (its two default validators).
_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")


class InputSerializer(serializers.Serializer):
    """Request bodies: a JSON object whose every key is a known parameter (like Stripe, an
    unknown parameter is refused rather than silently ignored: it is usually a typo)."""

    @classmethod
    def validated_plain(cls, data: Any) -> dict | None:
        """The hot path's shortcut, for serializers made only of required, non-blank
        `StrictCharField`s without length limits (the text send): a body of exactly those keys,
        each a string that DRF would take as it is, gives what full validation would give, the
        fields' `validate_<name>` methods run in the same order. Returns None for anything
        else, which then goes through full validation and gets its exact errors."""
        plain = _plain_fields_of(cls)
        if plain is None or type(data) is not dict or len(data) != len(plain):
            return None
        validated = {}
        for name, trim, _check in plain:
            value = data.get(name)
            if (type(value) is not str or not value or (trim and value != value.strip())
                    or _NUL_OR_SURROGATE.search(value)):
                return None
            validated[name] = value
        serializer = None
        for name, _trim, check in plain:
            if check is not None:
                serializer = serializer or cls()
                try:
                    validated[name] = check(serializer, validated[name])
                except serializers.ValidationError:
                    return None  # DRF would collect it with the other fields' errors
        return validated

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, Mapping):
            raise ApiError(E.invalid_request, reason="The request body must be a JSON object.")
        for key in data:
            if key not in self.fields or self.fields[key].read_only:
                raise ApiError(E.invalid_request, field=str(key), reason="Unknown parameter.")
        return super().to_internal_value(data)


@functools.cache
def _plain_fields_of(serializer_class: type[InputSerializer]) -> tuple | None:
    """(name, trims whitespace, its `validate_<name>` or None) of each field, or None if any
    field is not plain."""
    if getattr(serializer_class, "validate", None) is not serializers.Serializer.validate:
        return None  # an object-level check: full validation runs it
    plain = []
    for name, field in serializer_class().fields.items():
        if (type(field) is not StrictCharField or not field.required or field.allow_blank
                or field.allow_null or field.read_only or field.source != name
                or field.max_length is not None or field.min_length is not None
                or len(field.validators) != 2):
            return None
        plain.append((name, field.trim_whitespace,
                      getattr(serializer_class, f"validate_{name}", None)))
    return tuple(plain)


# --- the base view --------------------------------------------------------------------------


class ApiView(APIView):
    """Base of every authenticated endpoint.

    `required_scopes` maps an HTTP method to the API key scope it needs; `error_codes` lists
    the catalogue codes the operation can answer with (the OpenAPI schema publishes them).
    """

    required_scopes: ClassVar[dict[str, str]] = {}
    error_codes: ClassVar[tuple[str, ...]] = ()
    http_method_names = ["get", "post", "put", "patch", "delete", "head"]
    metadata_class = None

    def required_scope_for(self, method: str) -> str | None:
        if method == "HEAD":
            method = "GET"
        return self.required_scopes.get(method)

    def perform_authentication(self, request: Request) -> None:
        # Runs authentication, which raises on a missing or bad key and takes the request's
        # slot (accounts.limits.api_key_admit).
        request.user  # noqa: B018
        decision = getattr(request._request, "limit_decision", None)
        if decision is not None:
            # Kept before raising so a 429 carries the RateLimit headers too.
            self._limit_decision = decision
            decision.raise_if_denied()

    def initial(self, request: Request, *args, **kwargs) -> None:
        from accounts.idempotency import idempotency_begin

        self._idempotency = None
        super().initial(request, *args, **kwargs)
        if request.method == "POST":
            self._idempotency = idempotency_begin(request)

    def handle_exception(self, exc: Exception) -> Response:
        from accounts.idempotency import IdempotentReplay

        if isinstance(exc, IdempotentReplay):
            return Response(exc.body, status=exc.status,
                            headers={"Idempotent-Replayed": "true"})
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        record = getattr(self, "_idempotency", None)
        if record is not None:
            from accounts.idempotency import idempotency_finish

            self._idempotency = None
            idempotency_finish(record, response.status_code, getattr(response, "data", None))
        decision = getattr(self, "_limit_decision", None)
        if decision is not None:
            for header, value in decision.headers().items():
                response[header] = value
        return response

    def dispatch(self, request, *args, **kwargs):
        # Wake-ups committed by the operation are held so that they reach Redis together with
        # the slot's release: one round trip at the end of the request instead of two.
        with wakeups_held() as wakeups:
            try:
                return super().dispatch(request, *args, **kwargs)
            finally:
                decision = getattr(self, "_limit_decision", None)
                if decision is not None:
                    from accounts.limits import release_request_slot

                    release_request_slot(decision, wakeups)

    @staticmethod
    def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict:
        if issubclass(serializer_class, InputSerializer):
            plain = serializer_class.validated_plain(data)
            if plain is not None:
                return plain
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class PublicApiView(APIView):
    """Endpoints open without a key (health)."""

    authentication_classes: ClassVar[list] = []
    permission_classes: ClassVar[list] = []
    http_method_names = ["get", "head"]
    metadata_class = None
    error_codes: ClassVar[tuple[str, ...]] = ()
