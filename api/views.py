"""What every API view shares: the success envelope, the base views, and the answers for a
route or a page that does not exist under /v1.

`ApiView` admits each request and makes POSTs idempotent through the two pieces the settings
name, as DRF takes its authentication classes from its settings: `API_ADMISSION` checks the
API key and takes the request's slot of the key's rate and concurrency limits (given back when
the request ends, here and nowhere else), `API_IDEMPOTENCY` keeps the answers to replay.
"""

import functools
from typing import Any, ClassVar, Protocol

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiError, E
from api.exception_handler import json_error_response
from infra.wakeups import wakeups_held


def ok(data: Any, status: int = 200, **extra: Any) -> Response:
    return Response({"success": True, "data": data, **extra}, status=status)


class Admission(Protocol):
    """A request let in by `API_ADMISSION(request)`, which raises the catalogue's error for a
    missing or bad key or a request over the key's limits (with the limits' headers)."""

    key: Any  # the API key, as views see it in `request.auth`

    def headers(self) -> dict[str, str]:
        """The limits' headers for the response (`RateLimit-*`)."""

    def release(self) -> None:
        """Give the request's slot back. Never raises."""


class Idempotency(Protocol):
    """`Idempotency-Key` on POST requests (`API_IDEMPOTENCY`)."""

    def begin(self, request: Request) -> Any:
        """Reserve the request's key (None when it has none). Raises `IdempotentReplay` with
        the first answer to replay, or the catalogue's error."""

    def finish(self, reservation: Any, status: int, body: Any) -> None:
        """Keep the answer to replay (a 2xx), or drop the reservation."""


class IdempotentReplay(Exception):
    """The answer already given to this request's `Idempotency-Key`, to be given again."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__("replay")
        self.status = status
        self.body = body


@functools.cache
def _admit():
    return import_string(settings.API_ADMISSION)


@functools.cache
def _idempotency() -> Idempotency:
    return import_string(settings.API_IDEMPOTENCY)()


class ApiView(APIView):
    """Base of every endpoint that takes an API key.

    `required_scopes` maps an HTTP method to the API key scope it needs; `error_codes` lists
    the catalogue codes the operation can answer with (the OpenAPI schema publishes them).
    """

    required_scopes: ClassVar[dict[str, str]] = {}
    error_codes: ClassVar[tuple[str, ...]] = ()
    http_method_names = ["get", "post", "put", "patch", "delete", "head"]
    metadata_class = None
    # The key is checked by the admission (`perform_authentication`), not by DRF's classes.
    authentication_classes: ClassVar[list] = []
    takes_api_key: ClassVar[bool] = True

    def required_scope_for(self, method: str) -> str | None:
        if method == "HEAD":
            method = "GET"
        return self.required_scopes.get(method)

    def dispatch(self, request, *args, **kwargs):
        self.admission: Admission | None = None
        self.idempotency_reservation = None
        # The operation's wake-ups go out once it is over, each one once.
        with wakeups_held():
            try:
                return super().dispatch(request, *args, **kwargs)
            finally:
                if self.admission is not None:
                    self.admission.release()

    def perform_authentication(self, request: Request) -> None:
        """The request's admission, in place of DRF's authentication."""
        self.admission = _admit()(request)
        request.user = request.auth = self.admission.key

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if request.method == "POST":
            self.idempotency_reservation = _idempotency().begin(request)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, IdempotentReplay):
            return Response(exc.body, status=exc.status,
                            headers={"Idempotent-Replayed": "true"})
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        reservation, self.idempotency_reservation = self.idempotency_reservation, None
        if reservation is not None:
            _idempotency().finish(reservation, response.status_code,
                                  getattr(response, "data", None))
        if self.admission is not None:
            for header, value in self.admission.headers().items():
                response[header] = value
        return response

    @staticmethod
    def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class PublicApiView(APIView):
    """Endpoints open without a key (health)."""

    authentication_classes: ClassVar[list] = []
    permission_classes: ClassVar[list] = []
    http_method_names = ["get", "head"]
    metadata_class = None
    error_codes: ClassVar[tuple[str, ...]] = ()
    takes_api_key: ClassVar[bool] = False


@csrf_exempt
def api_route_not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    return json_error_response(ApiError(E.resource_not_found, reason=f"No route {request.path}"))


def api_page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 page under /v1, in the envelope."""
    return json_error_response(ApiError(E.resource_not_found))


def api_bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 400 page under /v1 (a Host header not in ALLOWED_HOSTS, another suspicious
    request), in the envelope."""
    return json_error_response(ApiError(E.invalid_request, reason="The request was refused."))


def api_server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 page under /v1, in the envelope."""
    return json_error_response(ApiError(E.internal_server_error))
