"""Request bodies: strict JSON fields (a JSON type is checked, never coerced: DRF turns 5 into
"5") and input serializers that refuse unknown parameters."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rest_framework import serializers

from api.errors import ApiError, E


def iso(moment: datetime | None) -> str | None:
    """A time as the API shows it: ISO 8601 in UTC, to the second (`2026-11-25T18:00:00Z`)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


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


class StrictNumberField(serializers.FloatField):
    """A JSON number (integer or not), never a string or a boolean."""

    default_error_messages = {"invalid_type": "Must be a number."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float) or data != data:
            self.fail("invalid_type")
        return float(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid_type": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid_type")
        return data


class InputSerializer(serializers.Serializer):
    """Request bodies: a JSON object whose every key is a known parameter (like Stripe, an
    unknown parameter is refused rather than silently ignored: it is usually a typo)."""

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, Mapping):
            raise ApiError(E.invalid_request, reason="The request body must be a JSON object.")
        for key in data:
            if key not in self.fields or self.fields[key].read_only:
                raise ApiError(E.invalid_request, field=str(key), reason="Unknown parameter.")
        return super().to_internal_value(data)
