"""Limits on password guessing, shared by the customers' dashboard and the operators' admin:
each sign-in (or password reset) POST counts against its client address and against the
email typed, before the password is checked, so guesses are capped whatever their outcome."""

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import is_ratelimited


def client_address(request: HttpRequest) -> str:
    """The client's address as the rate limits see it. Behind a reverse proxy every request
    comes from the proxy: with CLIENT_IP_FROM_FORWARDED_FOR, the last X-Forwarded-For entry
    (the one the proxy appended; the ones before it are the client's own claims) is taken."""
    if settings.CLIENT_IP_FROM_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR", "")


def sign_in_attempts_exceeded(request: HttpRequest, group: str, *, email_field: str) -> bool:
    """Count this POST against the limits (per address, and per email in `email_field`) and
    say whether one is exceeded."""

    def typed_email(_group: str, request: HttpRequest) -> str:
        return request.POST.get(email_field, "").strip().lower()  # case cannot dodge it

    limited = False
    for name, key in (("ip", "ip"), ("email", typed_email)):
        # The group carries the Redis namespace: deployments sharing a Redis count apart.
        limited |= is_ratelimited(request, group=f"{settings.REDIS_NAMESPACE}:{group}:{name}",
                                  key=key, rate=settings.DASHBOARD_LOGIN_RATE, method="POST",
                                  increment=True)
    return limited
