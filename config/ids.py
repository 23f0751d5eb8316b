"""Opaque, prefixed, time-ordered ids (`ses_01JH...`): 10 characters of millisecond time then
16 random ones, in Crockford base32. Sorting by id sorts by creation time, so cursor pagination
needs no second column."""

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    millis = int(time.time() * 1000)
    return f"{prefix}_{_encode(millis, 10)}{_encode(secrets.randbits(80), 16)}"


# Named functions for model fields' `default` (migrations refer to them by name).


def new_account_id() -> str:
    return new_id("acc")


def new_api_key_id() -> str:
    return new_id("key")


def new_session_id() -> str:
    return new_id("ses")


def new_event_id() -> str:
    return new_id("evt")


def new_message_id() -> str:
    return new_id("msg")


def new_webhook_id() -> str:
    return new_id("whk")


def new_delivery_id() -> str:
    return new_id("dlv")
