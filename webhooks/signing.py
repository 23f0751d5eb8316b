"""Standard Webhooks signatures (https://www.standardwebhooks.com), made with the
`standardwebhooks` package. Secrets are `whsec_` + base64 of 24 to 64 random bytes."""

import base64
import binascii
import secrets
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as Signer

from webhooks.models import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
USER_AGENT = f"{settings.SERVICE_NAME}-webhooks/1"


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_is_valid(secret: str) -> bool:
    if not secret.startswith(SECRET_PREFIX):
        return False
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(raw) <= 64


def signature_headers(*, secrets_in_use: list[str], message_id: str, timestamp: datetime,
                      body: str) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per secret in use (a rotation's
    old and new secret), space-separated, so receivers verify with either."""
    signatures = [Signer(secret).sign(message_id, timestamp, body) for secret in secrets_in_use]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def secrets_in_use(webhook: Webhook, now=None) -> list[str]:
    now = now or timezone.now()
    in_use = [webhook.secret]
    if webhook.previous_secret and webhook.previous_secret_expires_at and (
        webhook.previous_secret_expires_at > now
    ):
        in_use.append(webhook.previous_secret)
    return in_use


def signed_headers(webhook: Webhook, *, message_id: str, body: str, now=None) -> dict[str, str]:
    now = now or timezone.now()
    return {
        **signature_headers(secrets_in_use=secrets_in_use(webhook, now), message_id=message_id,
                            timestamp=now, body=body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
