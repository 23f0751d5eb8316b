"""Per-key rate limit (requests per minute, fixed window) and concurrency limit (requests in
flight), checked together in one round trip.

With Redis both live in one Lua script, so they hold across any number of web processes. An
in-flight slot is a member of a sorted set scored by its start time: it is released when the
request ends, and a slot whose process died is dropped after CONCURRENCY_SLOT_TTL_SECONDS.
Without Redis (embedded mode, one process) the same rules run in memory under a lock.

django-ratelimit is not used here: it has no concurrency limit and no way to report the
remaining allowance for the RateLimit headers in the same call.
"""

import contextlib
import math
import secrets
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

from accounts.authentication import AuthenticatedKey
from api.errors import ApiError, E
from infra.redis import redis_client, redis_key

WINDOW_SECONDS = 60

ALLOWED, RATE_LIMITED, TOO_MANY_IN_FLIGHT = 1, 0, 2


def clock() -> float:
    """The limiter's time source (tests pin it to stay inside one window)."""
    return time.time()


@dataclass
class LimitDecision:
    key_id: str
    outcome: int
    limit: int
    used: int
    reset_seconds: int
    slot_token: str | None

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.limit - self.used, 0)),
            "RateLimit-Reset": str(self.reset_seconds),
        }

    def raise_if_denied(self) -> None:
        """The catalogue's error for a request over the limits, with the limits' headers."""
        if self.outcome == RATE_LIMITED:
            raise ApiError(
                E.rate_limit_exceeded,
                reason=f"{self.limit} requests per minute allowed for this key.",
                headers={**self.headers(), "Retry-After": str(self.reset_seconds)},
            )
        if self.outcome == TOO_MANY_IN_FLIGHT:
            raise ApiError(
                E.concurrent_request_limit_exceeded,
                headers={**self.headers(), "Retry-After": "1"},
            )


# KEYS: the rate window's counter, the in-flight set. Returns {outcome, count in this window}.
_ACQUIRE_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then return {0, count} end
local now = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return {2, count} end
redis.call('ZADD', KEYS[2], now, ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {1, count}
"""


class RedisLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.script = client.register_script(_ACQUIRE_LUA)

    def acquire(
        self, key_id: str, rate: int, max_in_flight: int, now: float
    ) -> tuple[int, int, str]:
        token = secrets.token_hex(8)
        keys = [redis_key("rl", key_id, int(now // WINDOW_SECONDS)),
                redis_key("inflight", key_id)]
        args = [rate, WINDOW_SECONDS + 1, max_in_flight, int(now * 1000),
                settings.CONCURRENCY_SLOT_TTL_SECONDS * 1000, token]
        outcome, count = self.script(keys=keys, args=args)
        return int(outcome), int(count), token

    def release(self, key_id: str, token: str) -> None:
        self.client.zrem(redis_key("inflight", key_id), token)

    def in_flight(self, key_id: str) -> int:
        return int(self.client.zcard(redis_key("inflight", key_id)))


class MemoryLimiter:
    """The same rules for a single process (embedded mode)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, int], int] = {}
        self.slots: dict[str, dict[str, float]] = {}

    def acquire(
        self, key_id: str, rate: int, max_in_flight: int, now: float
    ) -> tuple[int, int, str]:
        window = int(now // WINDOW_SECONDS)
        token = secrets.token_hex(8)
        with self.lock:
            if len(self.counts) > 10_000:
                self.counts = {k: v for k, v in self.counts.items() if k[1] >= window}
            count = self.counts.get((key_id, window), 0) + 1
            self.counts[(key_id, window)] = count
            if count > rate:
                return RATE_LIMITED, count, token
            slots = self.slots.setdefault(key_id, {})
            oldest = now - settings.CONCURRENCY_SLOT_TTL_SECONDS
            for stale in [t for t, started in slots.items() if started < oldest]:
                del slots[stale]
            if len(slots) >= max_in_flight:
                return TOO_MANY_IN_FLIGHT, count, token
            slots[token] = now
            return ALLOWED, count, token

    def release(self, key_id: str, token: str) -> None:
        with self.lock:
            self.slots.get(key_id, {}).pop(token, None)

    def in_flight(self, key_id: str) -> int:
        with self.lock:
            return len(self.slots.get(key_id, {}))


_memory_limiter = MemoryLimiter()


@lru_cache(maxsize=4)
def _redis_limiter_for(url: str) -> RedisLimiter:
    return RedisLimiter(redis_client())


def get_limiter() -> RedisLimiter | MemoryLimiter:
    if settings.REDIS_URL:
        return _redis_limiter_for(settings.REDIS_URL)
    return _memory_limiter


def acquire_request_slot(key: AuthenticatedKey) -> LimitDecision:
    now = clock()
    outcome, count, token = get_limiter().acquire(
        key.key_id, key.rate_limit_per_minute, key.max_concurrent_requests, now
    )
    return _decision(key, now, outcome, count, token)


def _decision(key: AuthenticatedKey, now: float, outcome: int, count: int,
               token: str) -> LimitDecision:
    reset = max(1, math.ceil((int(now // WINDOW_SECONDS) + 1) * WINDOW_SECONDS - now))
    return LimitDecision(
        key_id=key.key_id,
        outcome=outcome,
        limit=key.rate_limit_per_minute,
        used=min(count, key.rate_limit_per_minute),
        reset_seconds=reset,
        slot_token=token if outcome == ALLOWED else None,
    )


def release_request_slot(decision: LimitDecision) -> None:
    """Always called when a request ends. Never raises: if Redis is gone the slot expires."""
    if decision.slot_token is None:
        return
    with contextlib.suppress(redis.RedisError):
        get_limiter().release(decision.key_id, decision.slot_token)
