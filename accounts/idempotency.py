"""`Idempotency-Key` on POST requests, as Stripe does it.

The first request with a key reserves it (a committed row, so a concurrent duplicate sees it at
once); its 2xx response is stored and replayed, with `Idempotent-Replayed: true`, to any later
request with the same key and the same body for 24 hours. The same key with another body is
`idempotency_key_reused`. A duplicate arriving while the first is still running waits for it
(up to IN_PROGRESS_WAIT_SECONDS) and replays its answer. An error response is not stored: the
reservation is dropped, so the client may retry with the same key.
"""

import hashlib
import json
import re
import time
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import IdempotencyRecord
from api.errors import ApiError, E
from api.views import IdempotentReplay

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
IN_PROGRESS_WAIT_SECONDS = 10.0
# A reservation this old whose request never finished (its process died) may be taken over.
STALE_RESERVATION = timedelta(minutes=2)
_SANE_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def _request_hash(request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotency_begin(request) -> IdempotencyRecord | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _SANE_KEY.match(key):
        raise ApiError(E.invalid_request, field=HEADER,
                       reason="1 to 255 printable ASCII characters, no spaces.")
    digest = _request_hash(request)
    account_id = request.auth.account_id
    deadline = time.monotonic() + IN_PROGRESS_WAIT_SECONDS
    while True:
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    account_id=account_id, key=key, request_hash=digest
                )
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(account_id=account_id, key=key).first()
        if existing is None:
            continue  # dropped meanwhile: try to reserve again
        now = timezone.now()
        if existing.created_at < now - TTL:
            IdempotencyRecord.objects.filter(pk=existing.pk).delete()
            continue
        if existing.request_hash != digest:
            raise ApiError(E.idempotency_key_reused, field=HEADER)
        if existing.response_status is not None:
            raise IdempotentReplay(existing.response_status, existing.response_body)
        if existing.created_at < now - STALE_RESERVATION:
            IdempotencyRecord.objects.filter(pk=existing.pk, response_status=None).delete()
            continue
        if time.monotonic() > deadline:
            raise ApiError(E.idempotency_key_in_use, field=HEADER, headers={"Retry-After": "1"})
        time.sleep(0.05)


def idempotency_finish(record: IdempotencyRecord, status: int, body) -> None:
    if 200 <= status < 300:
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            response_status=status, response_body=body
        )
    else:
        IdempotencyRecord.objects.filter(pk=record.pk, response_status=None).delete()


def idempotency_records_purge() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - TTL).delete()
    return deleted


class IdempotencyKeys:
    """The API's base view's idempotency (`API_IDEMPOTENCY`)."""

    def begin(self, request) -> IdempotencyRecord | None:
        return idempotency_begin(request)

    def finish(self, reservation: IdempotencyRecord, status: int, body) -> None:
        idempotency_finish(reservation, status, body)
