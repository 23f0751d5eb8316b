"""The event bus between engines and the consumer.

With Redis it is a Redis stream read through a consumer group: the real engine worker (another
process, maybe another machine) appends to it, entries stay pending until acknowledged, and a
consumer that died has its entries claimed by the next one. Without Redis (embedded mode) it is
a database table claimed row by row. Either way an event is acknowledged only after the
consumer's database transaction committed: a crash in between replays it, and the consumer's
handlers are idempotent.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta
from typing import Protocol

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from infra.redis import redis_client
from sessions_app.engines.base import EngineEvent, stream_append


def claim_timeout_seconds() -> int:
    """An entry claimed but not acknowledged this long ago is handed out again (its consumer
    is presumed dead)."""
    return settings.ENGINE_EVENT_CLAIM_TIMEOUT_SECONDS


class EventBus(Protocol):
    def publish(self, *events: EngineEvent) -> None:
        """Append events, all or none (a crash never leaves half of them)."""

    def read_batch(self, count: int) -> list[tuple[str, EngineEvent]]: ...

    def ack(self, entry_ids: list[str]) -> None: ...

    def pending_count(self) -> int: ...


def _consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class RedisStreamBus:
    def __init__(self, client: redis.Redis, stream: str, group: str = "consumers") -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self._group_ready = False

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def publish(self, *events: EngineEvent) -> None:
        stream_append(self.client, self.stream, events)

    def read_batch(self, count: int) -> list[tuple[str, EngineEvent]]:
        self._ensure_group()
        consumer = _consumer_name()
        # First what a dead consumer left behind, then new entries.
        _, claimed, _ = self.client.xautoclaim(
            self.stream, self.group, consumer, claim_timeout_seconds() * 1000, "0-0",
            count=count,
        )
        entries = list(claimed)
        if len(entries) < count:
            fresh = self.client.xreadgroup(
                self.group, consumer, {self.stream: ">"}, count=count - len(entries)
            )
            for _stream, items in fresh or []:
                entries.extend(items)
        batch = []
        for entry_id, fields in entries:
            if not fields:  # deleted while pending
                self.client.xack(self.stream, self.group, entry_id)
                continue
            raw = fields[b"event"] if b"event" in fields else fields["event"]
            key = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            batch.append((key, EngineEvent.from_dict(json.loads(raw))))
        return batch

    def ack(self, entry_ids: list[str]) -> None:
        if entry_ids:
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(self.stream, self.group, *entry_ids)
            pipe.xdel(self.stream, *entry_ids)
            pipe.execute()

    def pending_count(self) -> int:
        self._ensure_group()
        info = self.client.xinfo_groups(self.stream)
        for group in info:
            name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
            if name == self.group:
                return int(group.get("lag") or 0) + int(group["pending"])
        return 0


class DatabaseBus:
    """Embedded mode: rows of `EngineEventRecord`, claimed by a conditional UPDATE. (The model
    is imported in the methods: the real engine's child processes import this module without
    Django being set up, and never use this bus.)"""

    def publish(self, *events: EngineEvent) -> None:
        from sessions_app.models import EngineEventRecord

        with transaction.atomic():
            for event in events:
                EngineEventRecord.objects.create(
                    session_id=event.session_id, payload=event.to_dict(),
                    occurred_at=event.occurred_at,
                )

    def read_batch(self, count: int) -> list[tuple[str, EngineEvent]]:
        from sessions_app.models import EngineEventRecord

        now = timezone.now()
        claimable = Q(processed_at__isnull=True) & (
            Q(claimed_at__isnull=True)
            | Q(claimed_at__lt=now - timedelta(seconds=claim_timeout_seconds()))
        )
        ids = list(
            EngineEventRecord.objects.filter(claimable).order_by("id").values_list("id", flat=True)[
                :count
            ]
        )
        if not ids:
            return []
        token = _consumer_name()
        with transaction.atomic():
            # Only the rows still unclaimed are ours: another consumer may have raced us.
            EngineEventRecord.objects.filter(claimable, id__in=ids).update(
                claimed_at=now, claimed_by=token
            )
        rows = EngineEventRecord.objects.filter(
            id__in=ids, claimed_by=token, claimed_at=now, processed_at__isnull=True
        ).order_by("id")
        return [(str(row.id), EngineEvent.from_dict(row.payload)) for row in rows]

    def ack(self, entry_ids: list[str]) -> None:
        from sessions_app.models import EngineEventRecord

        if entry_ids:
            EngineEventRecord.objects.filter(id__in=[int(i) for i in entry_ids]).update(
                processed_at=timezone.now()
            )

    def pending_count(self) -> int:
        from sessions_app.models import EngineEventRecord

        return EngineEventRecord.objects.filter(processed_at__isnull=True).count()


def get_event_bus() -> EventBus:
    if settings.REDIS_URL:
        return RedisStreamBus(redis_client(), stream=f"{settings.REDIS_NAMESPACE}:engine-events")
    return DatabaseBus()
