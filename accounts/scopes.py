"""API key scopes, as the contract names them."""

SESSIONS_READ = "sessions:read"
SESSIONS_WRITE = "sessions:write"
MESSAGES_READ = "messages:read"
MESSAGES_SEND = "messages:send"
WEBHOOKS_READ = "webhooks:read"
WEBHOOKS_WRITE = "webhooks:write"
ACCOUNT_READ = "account:read"

ALL_SCOPES: tuple[str, ...] = (
    SESSIONS_READ,
    SESSIONS_WRITE,
    MESSAGES_READ,
    MESSAGES_SEND,
    WEBHOOKS_READ,
    WEBHOOKS_WRITE,
    ACCOUNT_READ,
)
