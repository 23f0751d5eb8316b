"""Standard Webhooks signatures (https://www.standardwebhooks.com), made with the
`standardwebhooks` package. Secrets are `whsec_` + base64 of 24 to 64 random bytes."""

import base64
import binascii
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook as Signer

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)


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
