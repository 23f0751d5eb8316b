"""Opaque, prefixed, time-ordered ids (`ses_01JH...`): 10 characters of millisecond time then
16 random ones, in Crockford base32. Sorting by id sorts by creation time, so cursor pagination
needs no second column."""

import os
import secrets
import threading
import time
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


_last = [0, 0]  # the millisecond and random part of this process's latest id
_lock = threading.Lock()


def _forget_last_id() -> None:
    # Forked workers must not count up from their parent's last id: two children would
    # then make the same ids in the same millisecond.
    _last[0] = _last[1] = 0


os.register_at_fork(after_in_child=_forget_last_id)


def new_id(prefix: str) -> str:
    """Monotonic within a process (as ULID's monotonic mode): an id made in the same
    millisecond as the previous one takes its random part plus one, so rows written in one
    batch (events, deliveries) sort in the order they were made."""
    millis = int(time.time() * 1000)
    with _lock:
        if millis <= _last[0]:
            millis, random_part = _last[0], _last[1] + 1
        else:
            random_part = secrets.randbits(79)  # 79 bits: room to count up within 80
        _last[0], _last[1] = millis, random_part
    return f"{prefix}_{_encode(millis, 10)}{_encode(random_part, 16)}"


def id_floor(prefix: str, when: datetime) -> str:
    """The smallest id that can have been made at or after `when`: `id >= id_floor(...)`
    selects rows by creation time through the primary key's index."""
    return f"{prefix}_{_encode(int(when.timestamp() * 1000), 10)}"


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
