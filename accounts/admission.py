"""Admission of an API request (`API_ADMISSION`, called by the API's base view): the key in its
`Authorization` header checked and a slot of the key's rate and concurrency limits taken. The
slot is given back when the request ends (`Admitted.release`, called by the base view too):
one piece takes it and gives it back."""

from dataclasses import dataclass

from rest_framework.request import Request

from accounts.authentication import AuthenticatedKey, api_key_authenticate
from accounts.limits import LimitDecision, acquire_request_slot, release_request_slot
from api.errors import ApiError, E
from infra.logging import current_api_key


@dataclass
class Admitted:
    """A request let in: its key (`request.auth`) and the slot it holds."""

    key: AuthenticatedKey
    decision: LimitDecision

    def headers(self) -> dict[str, str]:
        return self.decision.headers()

    def release(self) -> None:
        release_request_slot(self.decision)


def admit(request: Request) -> Admitted:
    """Admit the request or raise the catalogue's error: no key, a bad one, or over its
    limits (with the limits' headers; such a request took no slot). A request with a bad
    key is never counted against the key."""
    header = request.META.get("HTTP_AUTHORIZATION", "").strip()
    if not header:
        raise ApiError(E.missing_api_key)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise ApiError(E.invalid_api_key, reason="Use the Bearer scheme.")
    token = token.strip()
    if not token:
        raise ApiError(E.missing_api_key)
    key = api_key_authenticate(token)
    # The log lines of this request and its error log entry name the key and its account.
    current_api_key.set(key)
    decision = acquire_request_slot(key)
    decision.raise_if_denied()
    return Admitted(key, decision)
