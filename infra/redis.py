"""The service's own Redis client (limits, the engine event stream and commands), one per URL
and process: a client is thread-safe and keeps a pool of connections."""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _redis_client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def redis_client() -> redis.Redis:
    return _redis_client_for(settings.REDIS_URL)


def redis_key(*parts: object) -> str:
    """A key in the service's namespace (REDIS_NAMESPACE), so deployments can share a Redis."""
    return ":".join([settings.REDIS_NAMESPACE, *map(str, parts)])
