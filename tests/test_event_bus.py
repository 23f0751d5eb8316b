"""Both transports of the engine event bus keep the same promises: order, acknowledgement
after processing, redelivery of what a dead consumer left."""

import time

import pytest

from infra.redis import redis_client
from sessions_app.engines import base
from sessions_app.engines.base import EngineEvent
from sessions_app.engines.bus import DatabaseBus, RedisStreamBus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["redis", "database"])
def event_bus(request, settings):
    if request.param == "redis":
        return RedisStreamBus(redis_client(), stream=f"{settings.REDIS_NAMESPACE}:bus-test")
    return DatabaseBus()


def events(n: int) -> list[EngineEvent]:
    return [EngineEvent(base.QR, f"ses_{i}", {"code": f"c{i}"}) for i in range(n)]


def test_events_come_out_in_order_and_once_acknowledged_are_gone(event_bus):
    for event in events(5):
        event_bus.publish(event)
    assert event_bus.pending_count() == 5
    batch = event_bus.read_batch(3)
    assert [e.data["code"] for _, e in batch] == ["c0", "c1", "c2"]
    event_bus.ack([entry for entry, _ in batch])
    rest = event_bus.read_batch(10)
    assert [e.data["code"] for _, e in rest] == ["c3", "c4"]
    event_bus.ack([entry for entry, _ in rest])
    assert event_bus.read_batch(10) == []
    assert event_bus.pending_count() == 0


def test_an_entry_claimed_but_never_acknowledged_is_handed_out_again(event_bus, settings):
    event_bus.publish(events(1)[0])
    first = event_bus.read_batch(10)
    assert len(first) == 1
    assert event_bus.read_batch(10) == []  # claimed, not yet presumed dead
    settings.ENGINE_EVENT_CLAIM_TIMEOUT_SECONDS = 1
    time.sleep(1.1)
    again = event_bus.read_batch(10)
    assert [e for _, e in again] == [e for _, e in first]
