"""Admission of an API request (`API_ADMISSION`, called by the API's base view): the key in its
`Authorization` header checked and a slot of the key's rate and concurrency limits taken; the
slot is given back when the request ends (`Admitted.release`, called by the base view too).

With Redis and a key this process has seen, one round trip does both: the limiter script
reads the key's cached record as it takes the slot, with the limits of the record seen
before. If the record changed (revoked, another plan, evicted), it is read again the usual way
and the key checked against it; a slot taken with stale limits is given back and taken again,
and a key that fails its checks gives its slot back (its rate count keeps that request, as it
would have for any request that was refused after the count).
"""

import hmac
from dataclasses import dataclass

from rest_framework.request import Request

from accounts import limits
from accounts.authentication import (
    AuthenticatedKey,
    api_key_cache_key,
    api_key_prefix,
    api_key_record,
    api_key_verify,
    hash_api_key,
)
from accounts.limits import (
    LimitDecision,
    acquire_request_slot,
    decision_for,
    get_limiter,
    redis_cache_of,
    release_request_slot,
)
from api.errors import ApiError, E
from infra.local_cache import LocalTTLCache
from infra.logging import current_api_key
from infra.wakeups import Wakeup


@dataclass
class Admitted:
    """A request let in: its key (`request.auth`) and the slot it holds."""

    key: AuthenticatedKey
    decision: LimitDecision

    def headers(self) -> dict[str, str]:
        return self.decision.headers()

    def release(self, wakeups: list[Wakeup]) -> None:
        release_request_slot(self.decision, wakeups)


def admit(request: Request) -> Admitted:
    """Admit the request or raise the catalogue's error: no key, a bad one, or over its
    limits (with the limits' headers)."""
    header = request.META.get("HTTP_AUTHORIZATION", "").strip()
    if not header:
        raise ApiError(E.missing_api_key)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise ApiError(E.invalid_api_key, reason="Use the Bearer scheme.")
    token = token.strip()
    if not token:
        raise ApiError(E.missing_api_key)
    key, decision = api_key_admit(token)
    # The log lines of this request and its error log entry name the key and its account.
    current_api_key.set(key)
    decision.raise_if_denied()  # a denied request took no slot
    return Admitted(key, decision)


# The key records this process has seen, by prefix, with the bytes the cache held for them.
# The record itself stays in Redis (where a revocation drops it at once); this copy only lets
# a request send the record's GET together with the limiter script, in one round trip, and
# learn from the answer whether the copy is still the current record.
_seen_records = LocalTTLCache(ttl=3600, max_size=10_000)


def _limits_of(key: AuthenticatedKey) -> tuple:
    return key.key_id, key.rate_limit_per_minute, key.max_concurrent_requests


def api_key_admit(raw_key: str) -> tuple[AuthenticatedKey, LimitDecision]:
    """Authenticate an API key and take its request slot."""
    prefix = api_key_prefix(raw_key)
    limiter = get_limiter()
    redis_cache = redis_cache_of(limiter)
    seen = _seen_records.get(prefix)
    key_hash = hash_api_key(raw_key)
    if (redis_cache is None or seen is None
            or not hmac.compare_digest(seen[1].key_hash, key_hash)):
        key = api_key_verify(api_key_record(prefix), raw_key, key_hash)
        if redis_cache is not None:
            _seen_records.set(prefix, (None, key))
        return key, acquire_request_slot(key)

    seen_bytes, seen_key = seen
    now = limits.clock()  # (the module's: tests pin it)
    cached, (outcome, count, token) = limiter.get_and_acquire(
        redis_cache.make_and_validate_key(api_key_cache_key(prefix)), seen_key.key_id,
        seen_key.rate_limit_per_minute, seen_key.max_concurrent_requests, now)
    decision = decision_for(seen_key, now, outcome, count, token)
    try:
        record = seen_key
        if cached is None or cached != seen_bytes:
            record = api_key_record(prefix) if cached is None else redis_cache.decode(cached)
            record = record or None
            if record is None:
                _seen_records.delete(prefix)
            else:
                _seen_records.set(prefix, (cached, record))
        key = api_key_verify(record, raw_key, key_hash)
        if _limits_of(key) != _limits_of(seen_key):
            release_request_slot(decision)
            decision = acquire_request_slot(key)
    except BaseException:
        release_request_slot(decision)
        raise
    return key, decision
