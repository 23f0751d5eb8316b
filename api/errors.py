"""The error catalogue: every error code the API can return, defined once.

The seed document's codes come first, word for word (a test holds this table against it,
tests/data/error-codes.txt); codes the seed lacks but the API needs follow, and the API guide
(docs/api.md) documents them.
Raise `ApiError(E.session_not_found, field="sessionId")`; the exception handler renders it.
"""

from dataclasses import dataclass
from typing import Any

from rest_framework.exceptions import APIException


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    message: str
    troubleshooting: str


_SEED_TABLE: list[tuple[str, int, str, str]] = [
    # Authentication
    ("invalid_api_key", 401, "The API key provided is invalid",
     "Check that you're using the correct API key and that it hasn't been revoked"),
    ("missing_api_key", 401, "No API key was provided in the request",
     "Include your API key in the Authorization header"),
    ("expired_api_key", 401, "The API key has expired",
     "Generate a new API key from your dashboard"),
    ("insufficient_permissions", 403,
     "The API key doesn't have permission to perform this action",
     "Use an API key with the required permissions or contact support to upgrade your plan"),
    # Sessions
    ("session_not_found", 404, "The specified session ID doesn't exist",
     "Check that you're using the correct session ID"),
    ("session_not_connected", 400, "The session exists but is not connected to WhatsApp",
     "Ensure the QR code has been scanned and the session is active"),
    ("session_limit_reached", 403,
     "You've reached the maximum number of sessions allowed for your plan",
     "Delete unused sessions or upgrade your plan"),
    ("qr_code_expired", 400, "The QR code for session initialization has expired",
     "Create a new session to get a fresh QR code"),
    ("session_disconnected", 400, "The WhatsApp session has been disconnected",
     "Reconnect by creating a new session and scanning the QR code"),
    # Messages
    ("invalid_phone_number", 400, "The recipient phone number is invalid",
     "Ensure the phone number is in international format (e.g., 14155552671)"),
    ("recipient_not_on_whatsapp", 400, "The recipient doesn't have WhatsApp installed",
     "Verify that the recipient has an active WhatsApp account"),
    ("message_too_long", 400, "The message exceeds the maximum allowed length",
     "Reduce the message length (max 4096 characters for text messages)"),
    ("media_size_exceeded", 400, "The media file exceeds the maximum allowed size",
     "Reduce the file size (limits: Images 5MB, Videos 16MB, Documents 100MB)"),
    ("invalid_media_type", 400, "The media type is not supported",
     "Use a supported media type (image, video, document, audio)"),
    ("media_url_inaccessible", 400, "The media URL provided cannot be accessed",
     "Ensure the URL is publicly accessible and the file exists"),
    ("message_not_found", 404, "The specified message ID doesn't exist",
     "Check that you're using the correct message ID"),
    ("message_sending_failed", 500, "The message could not be sent due to a WhatsApp error",
     "Check the session status and try again later"),
    ("daily_message_limit_reached", 403,
     "You've reached the maximum number of messages allowed for your plan today",
     "Wait until the limit resets or upgrade your plan"),
    # Webhooks
    ("invalid_webhook_url", 400, "The webhook URL provided is invalid",
     "Ensure the URL is properly formatted and uses HTTPS (for production)"),
    ("webhook_url_unreachable", 400, "The webhook URL cannot be reached",
     "Verify that your webhook server is running and accessible from the internet"),
    ("webhook_response_timeout", 400, "The webhook URL took too long to respond",
     "Ensure your webhook server responds within 5 seconds"),
    ("invalid_webhook_event", 400, "One or more of the specified webhook events are invalid",
     "Use only supported event types (message.received, message.status, etc.)"),
    # Rate limiting
    ("rate_limit_exceeded", 429, "You've exceeded the rate limit for this endpoint",
     "Wait for the rate limit to reset (see Retry-After header) or upgrade your plan"),
    ("concurrent_request_limit_exceeded", 429, "Too many concurrent requests are being made",
     "Reduce the number of simultaneous requests to the API"),
    # General
    ("invalid_request", 400, "The request is malformed or contains invalid parameters",
     "Check the request format and parameters against the API documentation"),
    ("missing_required_parameter", 400, "A required parameter is missing from the request",
     "Check the API documentation for required parameters"),
    ("invalid_parameter_type", 400, "A parameter has the wrong data type",
     "Check the API documentation for the correct parameter types"),
    ("resource_not_found", 404, "The requested resource could not be found",
     "Verify that the resource ID or path is correct"),
    ("method_not_allowed", 405, "The HTTP method used is not supported for this endpoint",
     "Use the correct HTTP method (GET, POST, etc.) as specified in the documentation"),
    ("internal_server_error", 500, "An unexpected error occurred on the server",
     "Contact support if the issue persists"),
    ("service_unavailable", 503, "The service is temporarily unavailable", "Try again later"),
]

# Codes the seed does not have but the API needs. Documented in docs/api.md.
_ADDED_TABLE: list[tuple[str, int, str, str]] = [
    ("session_starting", 409, "The session is still starting; its QR code is not ready yet",
     "Retry after the number of seconds in the Retry-After header"),
    ("qr_code_unavailable", 409, "The session has no QR code to scan in its current state",
     "Only a session waiting for its QR code to be scanned has one; check the session status"),
    ("session_logged_out", 409, "The session was logged out and cannot be restarted",
     "Its login is gone: delete it and create a new session to link the phone again"),
    ("idempotency_key_reused", 409,
     "This Idempotency-Key was already used with a different request",
     "Use a new Idempotency-Key for a different request; reuse a key only to retry the same one"),
    ("invalid_parameter_value", 400, "A parameter's value is outside what it allows",
     "Check the allowed range or values of the parameter named in details.field"),
    ("message_not_editable", 409, "The message cannot be edited",
     "Only a text this service sent can be edited, within 15 minutes of being sent"),
    ("message_not_revocable", 409, "The message cannot be deleted for everyone",
     "Only a message this service sent, and that WhatsApp has, can be deleted"),
    ("message_not_cancelable", 409, "Only a message still queued can be canceled",
     "The message is being sent or was sent already; check its status"),
    ("message_canceled", 409, "The message was canceled before it was sent",
     "Send it again if it is still wanted"),
    ("group_not_found", 404, "The group was not found",
     "Check the group id: the session must be a member of the group"),
    ("idempotency_key_in_use", 409,
     "A request with this Idempotency-Key is still being processed",
     "Retry after the number of seconds in the Retry-After header"),
]

CATALOGUE: dict[str, ErrorCode] = {
    row[0]: ErrorCode(*row) for row in (*_SEED_TABLE, *_ADDED_TABLE)
}
SEED_CODES: frozenset[str] = frozenset(row[0] for row in _SEED_TABLE)


class _Codes:
    """Attribute access to the catalogue (`E.invalid_api_key`): a typo fails at import."""

    def __getattr__(self, name: str) -> ErrorCode:
        try:
            return CATALOGUE[name]
        except KeyError:
            raise AttributeError(f"no error code {name!r} in the catalogue") from None


E = _Codes()


class ApiError(APIException):
    """An error from the catalogue, with optional `details.field` / `details.reason`."""

    def __init__(
        self,
        error: ErrorCode,
        *,
        field: str | None = None,
        reason: str | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.error = error
        self.status_code = error.status
        self.message = message or error.message
        self.details: dict[str, Any] = {}
        if field is not None:
            self.details["field"] = field
        if reason is not None:
            self.details["reason"] = reason
        self.headers = headers or {}
        super().__init__(detail=self.message, code=error.code)

    @property
    def code(self) -> str:
        return self.error.code
