"""Request bodies: strict JSON fields (a JSON type is checked, never coerced: DRF turns 5 into
"5") and input serializers that refuse unknown parameters."""

import functools
import re
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from api.errors import ApiError, E


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

