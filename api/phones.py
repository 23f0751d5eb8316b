"""Phone numbers as the API takes them: international format, digits with an optional leading
`+` (`14155552671`), validated with libphonenumber. Stored and sent as digits only. And the
other ids a chat or person may have: a group's (`...@g.us`), a hidden person's (`...@lid`)."""

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


GROUP_ID_SUFFIX = "@g.us"
LID_SUFFIX = "@lid"
_GROUP_ID = re.compile(r"[0-9]{5,30}(-[0-9]{5,20})?@g\.us")
_LID = re.compile(r"[0-9]{5,30}@lid")


def normalize_chat_id(raw: object, *, field: str) -> str:
    """A chat as the API takes it: a number (as `normalize_phone_number`), a group's id
    (`...@g.us`), or a person's hidden id (`...@lid`). A number's full WhatsApp id
    (`...@s.whatsapp.net`) is taken as the number."""
    if isinstance(raw, str) and "@" in raw:
        user, _at, server = raw.partition("@")
        if server == "s.whatsapp.net":
            return normalize_phone_number(user, field=field)
        if not (_GROUP_ID.fullmatch(raw) or _LID.fullmatch(raw)):
            raise ApiError(E.invalid_parameter_value, field=field, reason=(
                "Use a number in international format, a group id (…@g.us) or a hidden id "
                "(…@lid)."))
        return raw
    return normalize_phone_number(raw, field=field)


def is_group_id(chat_id: str) -> bool:
    return chat_id.endswith(GROUP_ID_SUFFIX)


def is_lid(address: str) -> bool:
    return address.endswith(LID_SUFFIX)


def normalize_group_id(raw: object, *, field: str) -> str:
    if not isinstance(raw, str) or not _GROUP_ID.fullmatch(raw):
        raise ApiError(E.invalid_parameter_value, field=field,
                       reason="A group's id is digits followed by @g.us.")
    return raw


def normalize_lid(raw: object, *, field: str) -> str:
    if not isinstance(raw, str):
        raise ApiError(E.invalid_parameter_type, field=field, reason="Must be a string.")
    if not _LID.fullmatch(raw):
        raise ApiError(E.invalid_parameter_value, field=field,
                       reason="A hidden id is digits followed by @lid.")
    return raw
