"""Reads for accounts."""

from typing import Any

from accounts.models import Account
from accounts.quotas import daily_messages_used


def account_usage(*, account: Account) -> dict[str, Any]:
    from sessions_app.selectors import session_count_live

    return {
        "messagesToday": daily_messages_used(account_id=account.id),
        "sessions": session_count_live(account_id=account.id),
    }
