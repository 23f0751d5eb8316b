"""Reads for accounts."""

from collections.abc import Callable
from typing import Any

from accounts.models import Account
from accounts.quotas import daily_messages_used

# What other apps count against an account's plan (live sessions against `maxSessions`), by the
# name `GET /v1/account` shows it under: each app registers its own count when it starts
# (accounts depends on no other app).
_usage_counters: dict[str, Callable[[str], int]] = {}


def usage_counter_register(name: str, count: Callable[[str], int]) -> None:
    """`count(account_id)` is shown as `usage.<name>`."""
    _usage_counters[name] = count


def account_usage(*, account: Account) -> dict[str, Any]:
    return {
        "messagesToday": daily_messages_used(account_id=account.id),
        **{name: count(account.id) for name, count in _usage_counters.items()},
    }
