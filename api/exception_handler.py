"""One exception handler for the whole API: everything becomes the seed's envelope.

Django's and DRF's own exceptions are translated into catalogue codes first; anything
unexpected is logged with the request id and answered as `internal_server_error`, never
with a traceback. An unreachable database or Redis answers 503 `service_unavailable`.
"""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from api.errors import ApiError, E
from infra.dependencies import UNAVAILABLE_ERRORS

logger = logging.getLogger("api.errors")

# DRF field error codes that mean "the JSON value has the wrong type".
_TYPE_ERROR_CODES = {"invalid_type", "not_a_list", "not_a_dict", "null", "not_a_string"}


def error_body(err: ApiError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.details:
        error["details"] = err.details
    return {"success": False, "error": error}


def _first_field_error(detail: Any, path: str | None) -> tuple[str | None, Any]:
    """Walk DRF's nested error detail to the first leaf: (field path, ErrorDetail)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "detail"):
                child_path = path
            elif isinstance(key, int):
                child_path = path  # an item of a list names its list
            else:
                child_path = f"{path}.{key}" if path else str(key)
            return _first_field_error(value, child_path)
    if isinstance(detail, list) and detail:
        return _first_field_error(detail[0], path)
    return path, detail


def _from_validation_error(exc: drf.ValidationError) -> ApiError:
    field, leaf = _first_field_error(exc.detail, None)
    code = getattr(leaf, "code", "invalid")
    reason = str(leaf)
    if code == "required":
        return ApiError(E.missing_required_parameter, field=field, reason=reason)
    if code in _TYPE_ERROR_CODES:
        return ApiError(E.invalid_parameter_type, field=field, reason=reason)
    return ApiError(E.invalid_request, field=field, reason=reason)


def translate(exc: BaseException) -> ApiError | None:
    """The catalogue error for an exception, or None when it is unexpected (a bug)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UNAVAILABLE_ERRORS):
        logger.warning("dependency unavailable: %s: %s", type(exc).__name__, exc)
        return ApiError(
            E.service_unavailable,
            headers={"Retry-After": str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)},
        )
    if isinstance(exc, Http404 | drf.NotFound):
        return ApiError(E.resource_not_found)
    if isinstance(exc, DjangoPermissionDenied | drf.PermissionDenied):
        return ApiError(E.insufficient_permissions)
    if isinstance(exc, drf.NotAuthenticated):
        return ApiError(E.missing_api_key)
    if isinstance(exc, drf.AuthenticationFailed):
        return ApiError(E.invalid_api_key)
    if isinstance(exc, drf.MethodNotAllowed):
        return ApiError(E.method_not_allowed, reason=str(exc.detail))
    if isinstance(exc, drf.Throttled):
        headers = {"Retry-After": str(int(exc.wait or 1))}
        return ApiError(E.rate_limit_exceeded, headers=headers)
    if isinstance(exc, RequestDataTooBig):
        return ApiError(E.invalid_request, reason=(
            f"The body is too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."))
    if isinstance(exc, drf.ParseError):
        return ApiError(E.invalid_request, reason=f"The body is not valid JSON: {exc.detail}")
    if isinstance(exc, drf.UnsupportedMediaType):
        return ApiError(E.invalid_request, reason="Content-Type must be application/json.")
    if isinstance(exc, drf.ValidationError):
        return _from_validation_error(exc)
    if isinstance(exc, drf.APIException) and exc.status_code == 406:
        return ApiError(E.invalid_request, reason=str(exc.detail))
    return None


def _headers_for(err: ApiError) -> dict[str, str]:
    headers = dict(err.headers)
    if err.status_code == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
    return headers


def internal_error(request_id: str | None, exc: BaseException) -> ApiError:
    logger.error("unhandled error (request %s)", request_id, exc_info=exc)
    return ApiError(E.internal_server_error)


def api_exception_handler(exc: Exception, context: dict) -> Response:
    request = context.get("request")
    err = translate(exc)
    if err is None:
        err = internal_error(getattr(request, "request_id", None), exc)
    set_rollback()
    response = Response(error_body(err), status=err.status_code, headers=_headers_for(err))
    response.api_error = err
    return response


def json_error_response(err: ApiError) -> JsonResponse:
    """The same envelope for responses made outside DRF (Django's 404/500 under /v1)."""
    # Written as DRF writes the API's answers: compact, UTF-8.
    response = JsonResponse(error_body(err), status=err.status_code,
                            json_dumps_params={"separators": (",", ":"), "ensure_ascii": False})
    for header, value in _headers_for(err).items():
        response[header] = value
    response.api_error = err
    return response
