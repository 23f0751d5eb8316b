"""Phone numbers as the API takes them: international format, digits with an optional leading
`+` (`14155552671`), validated with libphonenumber. Stored and sent as digits only."""

import re

import phonenumbers

from config.errors import ApiError, E

_SHAPE = re.compile(r"^\+?[1-9]\d{6,14}$")


def normalize_phone_number(raw: object, *, field: str) -> str:
    if not isinstance(raw, str):
        raise ApiError(E.invalid_parameter_type, field=field, reason="Must be a string.")
    if not _SHAPE.match(raw):
        raise ApiError(
            E.invalid_phone_number,
            field=field,
            reason="Use international format: country code and number, digits only.",
        )
    digits = raw.removeprefix("+")
    try:
        parsed = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise ApiError(E.invalid_phone_number, field=field, reason="Not a valid phone number.")
    return digits
