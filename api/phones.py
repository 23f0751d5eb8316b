"""Phone numbers as the API takes them: international format, digits with an optional leading
`+` (`14155552671`), validated with libphonenumber. Stored and sent as digits only."""

import functools
import re

import phonenumbers

from api.errors import ApiError, E

# ASCII digits only (`\d` takes any script's digits), the whole string.
_SHAPE = re.compile(r"\+?[1-9][0-9]{6,14}")


def normalize_phone_number(raw: object, *, field: str) -> str:
    if not isinstance(raw, str):
        raise ApiError(E.invalid_parameter_type, field=field, reason="Must be a string.")
    if not _SHAPE.fullmatch(raw):
        raise ApiError(
            E.invalid_phone_number,
            field=field,
            reason="Use international format: country code and number, digits only.",
        )
    digits = raw.removeprefix("+")
    if not _is_valid_number(digits):
        raise ApiError(E.invalid_phone_number, field=field, reason="Not a valid phone number.")
    return digits


@functools.lru_cache(maxsize=4096)
def _is_valid_number(digits: str) -> bool:
    """libphonenumber's verdict, remembered: senders write to the same numbers again and
    again, and parsing one with its country's metadata is costly."""
    try:
        parsed = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed)
