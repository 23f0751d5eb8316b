"""Reads for accounts."""

from typing import Any

from accounts.models import Account
from accounts.quotas import daily_messages_used


def account_usage(*, account: Account) -> dict[str, Any]:
    return {"messagesToday": daily_messages_used(account_id=account.id)}
