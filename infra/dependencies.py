"""The service's two dependencies, the database and Redis: which errors mean one of them is
unreachable (the API answers 503 `service_unavailable` for those, and workers retry), and
whether each answers now (the health endpoint)."""

import redis.exceptions
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django_redis.exceptions import ConnectionInterrupted

from infra.redis import redis_client

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    ConnectionInterrupted,  # Redis, as the cache (django-redis) reports it
)


def database_status() -> str:
    """`ok` or `unavailable`."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except UNAVAILABLE_ERRORS:
        return "unavailable"


def redis_status() -> str:
    """`ok`, `unavailable`, or `not_configured` (the embedded mode runs without Redis)."""
    if not settings.REDIS_URL:
        return "not_configured"
    try:
        redis_client().ping()
        return "ok"
    except UNAVAILABLE_ERRORS:
        return "unavailable"
