"""API keys: how a request's key is found and checked.

Keys look like `wak_<12 chars>_<32 chars>`. The first part is the public prefix that finds the
row; only an HMAC (keyed by SECRET_KEY) of the whole key is stored and compared in constant
time. The key's record (scopes, expiry, account state, plan limits) is cached so the hot path
does no database query; every change to a key, account or plan drops it (accounts/signals.py).
"""

import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import ApiKey
from api.errors import ApiError, E
from infra.local_cache import LocalTTLCache

KEY_PATTERN = re.compile(r"^(wak_[a-z0-9]{12})_[A-Za-z0-9]{32}$")
_LAST_USED_RESOLUTION_SECONDS = 60
_NEGATIVE_CACHE_SECONDS = 10


@dataclass(frozen=True)
class AuthenticatedKey:
    """What a request knows about its API key: `request.auth` (and `request.user`)."""

    key_id: str
    prefix: str
    key_hash: str
    scopes: frozenset[str]
    expires_at: datetime | None
    revoked: bool
    account_id: str
    account_active: bool
    max_sessions: int
    daily_message_limit: int
    rate_limit_per_minute: int
    max_concurrent_requests: int

    is_authenticated = True


def hash_api_key(raw_key: str) -> str:
    return salted_hmac("accounts.ApiKey", raw_key, algorithm="sha256").hexdigest()


def api_key_cache_key(prefix: str) -> str:
    return f"apikey:{prefix}"


def _load_key_record(prefix: str) -> AuthenticatedKey | None:
    key = ApiKey.objects.select_related("account__plan").filter(prefix=prefix).first()
    if key is None:
        return None
    plan = key.account.plan
    return AuthenticatedKey(
        key_id=key.id,
        prefix=key.prefix,
        key_hash=key.key_hash,
        scopes=frozenset(key.scopes),
        expires_at=key.expires_at,
        revoked=key.revoked_at is not None,
        account_id=key.account_id,
        account_active=key.account.is_active,
        max_sessions=plan.max_sessions,
        daily_message_limit=plan.daily_message_limit,
        rate_limit_per_minute=plan.rate_limit_per_minute,
        max_concurrent_requests=plan.max_concurrent_requests,
    )


def api_key_prefix(raw_key: str) -> str:
    """The public part of a key, which finds its record."""
    match = KEY_PATTERN.match(raw_key)
    if match is None:
        raise ApiError(E.invalid_api_key, reason="The key is malformed.")
    return match.group(1)


def api_key_record(prefix: str) -> AuthenticatedKey | None:
    """The key's record from the cache, else from the database (cached then, an unknown
    prefix too, briefly)."""
    cache_key = api_key_cache_key(prefix)
    record = cache.get(cache_key)
    if record is None:
        record = _load_key_record(prefix)
        if record is None:
            cache.set(cache_key, False, _NEGATIVE_CACHE_SECONDS)
        else:
            cache.set(cache_key, record, settings.API_KEY_CACHE_SECONDS)
    return record or None


def api_key_verify(record: AuthenticatedKey | None, raw_key: str,
                   key_hash: str | None = None) -> AuthenticatedKey:
    """Whether `raw_key` (whose `hash_api_key` the caller may have computed already) is the
    key of `record` and may be used now; raises the catalogue's error if not."""
    key_hash = key_hash or hash_api_key(raw_key)
    if record is None or not hmac.compare_digest(record.key_hash, key_hash):
        raise ApiError(E.invalid_api_key)
    if record.revoked:
        raise ApiError(E.invalid_api_key, reason="The key has been revoked.")
    if record.expires_at is not None and record.expires_at <= timezone.now():
        raise ApiError(E.expired_api_key)
    if not record.account_active:
        raise ApiError(E.insufficient_permissions, reason="The account is disabled.")
    _touch_last_used(record.key_id)
    return record


def api_key_authenticate(raw_key: str) -> AuthenticatedKey:
    return api_key_verify(api_key_record(api_key_prefix(raw_key)), raw_key)


_recently_touched = LocalTTLCache(ttl=_LAST_USED_RESOLUTION_SECONDS)


def _touch_last_used(key_id: str) -> None:
    """Record use at most once a minute per key: a write per request would cost the hot path
    (this process remembers its own touches; Redis dedupes across processes)."""
    if _recently_touched.get(key_id):
        return
    _recently_touched.set(key_id, True)
    if cache.add(f"apikey-used:{key_id}", 1, _LAST_USED_RESOLUTION_SECONDS):
        ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
