"""What a form's POST shows, on a page of its own (post/redirect/get): the POST keeps it in
the cache for a few minutes under a random token tied to the signed-in session, and
redirects to a page that reads it. A reload of that page never submits the form again. A
secret (a new API key, a webhook's signing secret) is taken out at its first showing, so a
reload, the back button or a second tab cannot show it again."""

import secrets

from django.core.cache import cache
from django.http import HttpRequest

RESULT_TTL_SECONDS = 300


def _key(request: HttpRequest, token: str) -> str:
    return f"dashboard-result:{request.session.session_key}:{token}"


def result_keep(request: HttpRequest, payload: dict) -> str:
    """Keep `payload` for the page the POST redirects to; returns its token."""
    if request.session.session_key is None:
        request.session.save()
    token = secrets.token_urlsafe(18)
    cache.set(_key(request, token), payload, RESULT_TTL_SECONDS)
    return token


def result_read(request: HttpRequest, token: str, *, once: bool = False) -> dict | None:
    """What the POST kept, or None (another session's, expired, or a secret shown already).
    `once`: taken out as it is read (only the first reader gets it)."""
    if request.session.session_key is None or len(token) > 64:
        return None
    key = _key(request, token)
    payload = cache.get(key)
    if payload is None or (once and not cache.delete(key)):
        return None
    return payload
