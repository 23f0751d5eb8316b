"""The API error log: every error response under /v1 recorded, with whose request it was."""

from django.http import HttpRequest, HttpResponse

from accounts.services import error_log_record
from infra.logging import current_api_key


class ApiErrorLogMiddleware:
    """Records each error response of the API (`ApiErrorLog`): the responses that carry the
    catalogue's error (`response.api_error`, set where the envelope is made)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        err = getattr(response, "api_error", None)
        if err is not None:
            error_log_record(request=request, error=err, status=response.status_code,
                             api_key=current_api_key.get())
        return response
