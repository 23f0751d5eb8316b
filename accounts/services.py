"""Writes for accounts, plans, API keys and the error log."""

import hashlib
import logging
import secrets
import string
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.authentication import hash_api_key
from accounts.models import (
    Account,
    ApiErrorLog,
    ApiKey,
    Invitation,
    MemberRole,
    Membership,
    Plan,
    PlanChangeRequest,
    PlanChangeStatus,
)
from accounts.scopes import ALL_SCOPES
from accounts.sign_in import client_address
from api.errors import ApiError

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


def api_key_roll(*, api_key: ApiKey, old_key_valid_for: timedelta) -> tuple[ApiKey, str]:
    """Replace a key: a new one with the same name and scopes, and the old one kept working
    for `old_key_valid_for` (zero: revoked now) so that clients can switch without downtime."""
    if api_key.is_revoked or api_key.is_expired:
        raise ValueError("a revoked or expired key cannot be rolled")
    with transaction.atomic():
        new_key, raw = api_key_create(account=api_key.account, name=api_key.name,
                                      scopes=api_key.scopes, expires_at=None)
        if old_key_valid_for <= timedelta(0):
            api_key_revoke(api_key=api_key)
        else:
            ends = timezone.now() + old_key_valid_for
            if api_key.expires_at is None or ends < api_key.expires_at:
                api_key.expires_at = ends
                api_key.save(update_fields=["expires_at"])
    return new_key, raw


# --- customer users, invitations, plan requests ---------------------------------------------


class MemberError(ValueError):
    """A customer-user operation that cannot be done; the message is safe to show."""


def _normalized_email(email: str) -> str:
    return get_user_model().objects.normalize_email(email.strip()).lower()


def email_in_use(email: str) -> bool:
    """Whether a user already signs in with this email (customer users' username is it)."""
    return get_user_model().objects.filter(username__iexact=_normalized_email(email)).exists()


def member_create(*, account: Account, email: str, password: str | None,
                  role: str = MemberRole.MEMBER):
    """A customer user (signing in with `email`) in `account`. Without a password the user
    gets a random one nobody knows, and sets their own through the password reset email."""
    email = _normalized_email(email)
    User = get_user_model()
    if email_in_use(email):
        raise MemberError("A user with this email address already exists.")
    if password is None:
        password = secrets.token_urlsafe(32)
    else:
        validate_password(password, User(username=email, email=email))
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=email, email=email, password=password)
            Membership.objects.create(user=user, account=account, role=role)
    except IntegrityError:
        raise MemberError("A user with this email address already exists.") from None
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(*, account: Account, email: str, role: str, invited_by,
                      accept_url: str) -> tuple[Invitation, str]:
    """Invite `email` to the account and email them the link; returns the invitation and the
    link (shown once to the operator too, for when email is not set up).
    `accept_url` has a `{token}` placeholder."""
    email = _normalized_email(email)
    if email_in_use(email):
        raise MemberError("A user with this email address already exists.")
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        account=account, email=email, role=role, token_hash=_token_hash(token),
        invited_by=invited_by,
        expires_at=timezone.now() + timedelta(seconds=settings.INVITATION_TTL_SECONDS),
    )
    link = accept_url.format(token=token)
    send_mail(
        subject=f"You are invited to {account.name} on {settings.SERVICE_NAME}",
        message=(f"You have been invited to join {account.name} as {role}.\n\n"
                 f"Choose a password to accept: {link}\n\n"
                 f"The link works once and expires on "
                 f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC."),
        from_email=None, recipient_list=[email],
    )
    return invitation, link


def invitation_find(*, token: str) -> Invitation | None:
    """The usable invitation for this token, or None."""
    invitation = (Invitation.objects.select_related("account")
                  .filter(token_hash=_token_hash(token)).first())
    return invitation if invitation is not None and invitation.is_usable else None


def invitation_accept(*, token: str, password: str):
    """Create the invited user with this password. Raises MemberError when the link is used,
    expired or unknown."""
    with transaction.atomic():
        invitation = (Invitation.objects.select_for_update()
                      .filter(token_hash=_token_hash(token)).first())
        if invitation is None or not invitation.is_usable:
            raise MemberError("This invitation link is invalid, used or expired.")
        user = member_create(account=invitation.account, email=invitation.email,
                             password=password, role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
    return user


def plan_change_request_create(*, account: Account, plan: Plan, note: str,
                               user) -> PlanChangeRequest:
    if plan.pk == account.plan_id:
        raise MemberError(f"Your account is already on the {plan.name} plan.")
    try:
        with transaction.atomic():
            return PlanChangeRequest.objects.create(
                account=account, current_plan=account.plan, requested_plan=plan,
                note=note[:2000], requested_by=user)
    except IntegrityError:
        raise MemberError("You already have an open plan request; an operator will answer "
                          "it soon.") from None


def plan_change_request_decide(*, request: PlanChangeRequest, approve: bool,
                               operator) -> PlanChangeRequest:
    """Approve (the account moves to the requested plan) or decline an open request."""
    with transaction.atomic():
        locked = PlanChangeRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status != PlanChangeStatus.OPEN:
            raise MemberError(f"This request is already {locked.status}.")
        locked.status = PlanChangeStatus.APPROVED if approve else PlanChangeStatus.DECLINED
        locked.decided_at = timezone.now()
        locked.decided_by = operator
        locked.save(update_fields=["status", "decided_at", "decided_by"])
        if approve:
            account_change_plan(account=locked.account, plan=locked.requested_plan)
    return locked


def _storable(details: dict) -> dict:
    """The error's details as PostgreSQL's JSON takes them: it refuses a NUL character, which
    a request can put in a parameter's name (`{"a\u0000b": 1}`)."""
    return {name: value.replace("\x00", "\ufffd") if isinstance(value, str) else value
            for name, value in details.items()}


def _anonymous_entry_allowed(request: HttpRequest) -> bool:
    """Errors of requests with no admitted key (random keys, scans) are recorded at most
    ERROR_LOG_ANONYMOUS_PER_MINUTE times a minute per client address: one address cannot fill
    the log. Requests with a key are always recorded (the rate limits bound them)."""
    # The namespace, as in the sign-in limits: deployments sharing a Redis count apart.
    bucket = (f"{settings.REDIS_NAMESPACE}:error-log:anonymous:{client_address(request)}:"
              f"{int(time.time() // 60)}")
    try:
        if cache.add(bucket, 1, timeout=120):
            return True
        return cache.incr(bucket) <= settings.ERROR_LOG_ANONYMOUS_PER_MINUTE
    except Exception:  # the cache is down: record, as before
        return True


def error_logs_purge() -> int:
    """Forget error log entries older than ERROR_LOG_RETENTION_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.ERROR_LOG_RETENTION_DAYS)
    deleted, _ = ApiErrorLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def error_log_record(*, request: HttpRequest, error: ApiError, status: int,
                     api_key=None) -> None:
    """Record an error response (`api_key`: the request's, when it was admitted). Never
    raises: a failing log must not turn a 4xx into a 500."""
    key = api_key
    if key is None and not _anonymous_entry_allowed(request):
        return  # a flood of keyless requests from one address: its first entries are kept
    try:
        with transaction.atomic():
            ApiErrorLog.objects.create(
                account_id=key.account_id if key else None,
                key_prefix=key.prefix if key else "",
                method=request.method or "",
                path=request.path.replace("\x00", "")[:500],
                status=status,
                code=error.code,
                message=error.message[:500],
                details=_storable(error.details),
                request_id=getattr(request, "request_id", ""),
            )
    except Exception:  # the database may be the very thing that is down
        logger.warning(
            "could not record API error %s (request %s)",
            error.code,
            getattr(request, "request_id", ""),
            exc_info=True,
        )
