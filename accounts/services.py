"""Writes for accounts, plans, API keys and the error log."""

import logging
import secrets
import string
from datetime import datetime

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.authentication import hash_api_key
from accounts.models import Account, ApiErrorLog, ApiKey, Plan
from accounts.scopes import ALL_SCOPES
from config.errors import ApiError

logger = logging.getLogger(__name__)

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits


def plan_upsert(
    *,
    name: str,
    max_sessions: int,
    daily_message_limit: int,
    rate_limit_per_minute: int,
    max_concurrent_requests: int,
) -> tuple[Plan, bool]:
    return Plan.objects.update_or_create(
        name=name,
        defaults={
            "max_sessions": max_sessions,
            "daily_message_limit": daily_message_limit,
            "rate_limit_per_minute": rate_limit_per_minute,
            "max_concurrent_requests": max_concurrent_requests,
        },
    )


def account_create(*, name: str, plan: Plan) -> Account:
    return Account.objects.create(name=name, plan=plan)


def account_change_plan(*, account: Account, plan: Plan) -> Account:
    account.plan = plan
    account.save(update_fields=["plan"])
    return account


def _new_raw_key() -> tuple[str, str]:
    prefix = "wak_" + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(12))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(32))
    return prefix, f"{prefix}_{secret}"


def api_key_create(
    *,
    account: Account,
    name: str = "",
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the raw key, which is never available again."""
    scopes = list(ALL_SCOPES) if scopes is None else list(scopes)
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}")
    prefix, raw = _new_raw_key()
    key = ApiKey.objects.create(
        account=account,
        name=name,
        prefix=prefix,
        key_hash=hash_api_key(raw),
        scopes=scopes,
        expires_at=expires_at,
    )
    return key, raw


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])  # the save signal drops the cached record
    return api_key


def error_log_record(*, request: HttpRequest, error: ApiError, status: int) -> None:
    """Record an error response. Never raises: a failing log must not turn a 4xx into a 500."""
    key = getattr(request, "api_key", None)
    try:
        with transaction.atomic():
            ApiErrorLog.objects.create(
                account_id=key.account_id if key else None,
                key_prefix=key.prefix if key else "",
                method=request.method or "",
                path=request.path[:500],
                status=status,
                code=error.code,
                message=error.message[:500],
                details=error.details,
                request_id=getattr(request, "request_id", ""),
            )
    except Exception:  # the database may be the very thing that is down
        logger.warning(
            "could not record API error %s (request %s)",
            error.code,
            getattr(request, "request_id", ""),
            exc_info=True,
        )
