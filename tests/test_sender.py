"""The per-session sender and the sweeper, driven directly (no worker): retries with backoff,
the lease, requeueing what a dead sender left, failing what waited too long."""

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Message
from messaging.sender import messages_sweep, session_sender_run
from sessions_app.engines import get_engine
from sessions_app.models import Session
from tests.conftest import connected_session

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session(alice, settings) -> dict:
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0
    return connected_session(alice)


def queue(alice, session, n=1, **fields) -> list[Message]:
    return [Message.objects.create(account=alice.account, session_id=session["id"],
                                   direction="outbound", type="text", to_number="14155550123",
                                   text=f"m{i}", status="queued", **fields) for i in range(n)]


def test_a_run_sends_everything_queued_in_order(alice, session):
    messages = queue(alice, session, 3)
    assert session_sender_run(session_id=session["id"]) == "idle"
    from sessions_app.event_consumer import engine_events_drain

    engine_events_drain()
    assert [Message.objects.get(pk=m.pk).status for m in messages] == ["read"] * 3


@pytest.fixture
def wakeup_rounds(monkeypatch) -> list[list[str]]:
    """The keys of each round of held wake-ups the sender sends (they are still sent)."""
    from infra import wakeups

    rounds, send = [], wakeups.wakeups_send

    def recording(held):
        if held:
            rounds.append([wakeup.key for wakeup in held])
        send(held)

    monkeypatch.setattr(wakeups, "wakeups_send", recording)
    return rounds


def test_the_wake_ups_of_a_claim_go_out_together_once_its_messages_are_sent(
        alice, session, wakeup_rounds):
    from django.core.cache import cache

    from sessions_app.engines import CONSUMER_WAKEUP_KEY as _DRAIN_SCHEDULED

    cache.delete(_DRAIN_SCHEDULED)
    messages = queue(alice, session, 5)
    assert session_sender_run(session_id=session["id"]) == "idle"
    # One claim, one round: the event consumer's wake-up held once, not once per message.
    assert wakeup_rounds == [[_DRAIN_SCHEDULED]]
    assert cache.get(_DRAIN_SCHEDULED) == 1  # and sent: the consumer was woken
    assert [Message.objects.get(pk=m.pk).status for m in messages] == ["sent"] * 5


def test_paced_sends_wake_the_consumer_after_each_message(alice, session, settings,
                                                          wakeup_rounds):
    from sessions_app.engines import CONSUMER_WAKEUP_KEY as _DRAIN_SCHEDULED

    settings.SEND_MIN_INTERVAL_SECONDS = 0.01  # slept through in the run, a claim per send
    queue(alice, session, 3)
    assert session_sender_run(session_id=session["id"]) == "idle"
    assert wakeup_rounds == [[_DRAIN_SCHEDULED]] * 3


def test_an_unavailable_engine_is_retried_with_backoff_then_fails(alice, session, settings):
    settings.SEND_MAX_ATTEMPTS = 2
    (message,) = queue(alice, session)
    get_engine()._set(session["id"], state="stopped")  # the phone is gone, the DB not yet told
    assert session_sender_run(session_id=session["id"]) == "backoff"
    message.refresh_from_db()
    assert message.status == "queued" and message.attempts == 1
    assert message.next_attempt_at > timezone.now()
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    session_sender_run(session_id=session["id"])
    message.refresh_from_db()
    assert message.status == "failed" and message.error_code == "message_sending_failed"
    assert "2 attempts" in message.error_message


def statuses(messages) -> list[tuple[str, int]]:
    return [Message.objects.values_list("status", "attempts").get(pk=m.pk) for m in messages]


def test_a_message_waiting_for_its_retry_holds_back_the_ones_behind_it(alice, session):
    messages = queue(alice, session, 5)
    Message.objects.filter(pk=messages[2].pk).update(
        attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=1))
    assert session_sender_run(session_id=session["id"]) == "backoff"
    assert statuses(messages) == [("sent", 1), ("sent", 1), ("queued", 1), ("queued", 0),
                                  ("queued", 0)]


def test_messages_claimed_behind_one_put_back_for_a_retry_return_to_the_queue_untried(
        alice, session, monkeypatch):
    messages = queue(alice, session, 5)
    engine = get_engine()
    send_text = engine.send_text

    def phone_goes_away_after_two(session_id, **kwargs):
        if kwargs["message_id"] == messages[2].id:
            engine._set(session_id, state="stopped")
        return send_text(session_id, **kwargs)

    monkeypatch.setattr(engine, "send_text", phone_goes_away_after_two)
    assert session_sender_run(session_id=session["id"]) == "backoff"
    # The three after the first two had been claimed together with them: the one that met
    # the gone phone waits for its retry, the two behind it are back as they were.
    assert statuses(messages) == [("sent", 1), ("sent", 1), ("queued", 1), ("queued", 0),
                                  ("queued", 0)]
    assert Message.objects.get(pk=messages[2].pk).next_attempt_at > timezone.now()


def test_a_run_out_of_time_wakes_the_next_one_after_letting_go_of_the_lease(
        alice, session, monkeypatch):
    from messaging import sender

    (message,) = queue(alice, session)
    monkeypatch.setattr(sender, "RUN_BUDGET_SECONDS", -1)  # out of time at once
    lease_when_woken = []
    monkeypatch.setattr(sender, "schedule_session_sender", lambda session_id, **kwargs:
                        lease_when_woken.append(Session.objects.values_list(
                            "sender_lease_owner", flat=True).get(pk=session_id)))
    assert session_sender_run(session_id=session["id"]) == "budget"
    assert lease_when_woken == [""]  # a run woken now can take the lease
    assert Message.objects.get(pk=message.pk).status == "queued"


def test_a_second_sender_finds_the_lease_taken(alice, session):
    queue(alice, session)
    Session.objects.filter(pk=session["id"]).update(
        sender_lease_owner="other", sender_lease_until=timezone.now() + timedelta(seconds=30))
    assert session_sender_run(session_id=session["id"]) == "busy"
    assert Message.objects.get().status == "queued"


def test_an_expired_lease_is_taken_over(alice, session):
    queue(alice, session)
    Session.objects.filter(pk=session["id"]).update(
        sender_lease_owner="dead", sender_lease_until=timezone.now() - timedelta(seconds=1))
    assert session_sender_run(session_id=session["id"]) == "idle"
    assert Message.objects.get().status != "queued"


def test_the_sweeper_requeues_a_message_whose_sender_died(alice, session, settings):
    (message,) = queue(alice, session)
    Message.objects.filter(pk=message.pk).update(
        status="sending",
        sending_started_at=timezone.now() - timedelta(
            seconds=settings.MESSAGE_SENDING_TIMEOUT_SECONDS + 1))
    fresh = queue(alice, session)[0]
    Message.objects.filter(pk=fresh.pk).update(status="sending",
                                               sending_started_at=timezone.now())
    result = messages_sweep()
    assert result["requeued"] == 1
    assert Message.objects.get(pk=message.pk).status == "queued"
    assert Message.objects.get(pk=fresh.pk).status == "sending"


def test_the_sweeper_fails_messages_queued_too_long(alice, session, settings):
    (old,) = queue(alice, session)
    Message.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.MESSAGE_QUEUE_MAX_AGE_SECONDS + 5))
    (recent,) = queue(alice, session)
    # Only where the session is away (a connected one's queue waits its turn, its pace).
    Session.objects.filter(pk=session["id"]).update(status="disconnected")
    assert messages_sweep()["expired"] == 1
    old.refresh_from_db()
    assert old.status == "failed" and old.error_code == "message_sending_failed"
    assert "maximum age" in old.error_message
    assert Message.objects.get(pk=recent.pk).status == "queued"


def test_a_late_receipt_never_moves_a_message_backwards(alice, session):
    from messaging.services import message_status_apply

    (message,) = queue(alice, session)
    assert message_status_apply(message_id=message.id, status="read")
    assert not message_status_apply(message_id=message.id, status="delivered")
    assert not message_status_apply(message_id=message.id, status="failed")
    message.refresh_from_db()
    assert message.status == "read" and message.delivered_at is None


def test_step_times_never_go_backwards_whatever_clock_reported_them(alice, session):
    from messaging.services import message_status_apply

    (message,) = queue(alice, session)
    sent_at = timezone.now()
    message_status_apply(message_id=message.id, status="sent", at=sent_at)
    # A receipt stamped by the engine's clock a little before our own `sent`.
    message_status_apply(message_id=message.id, status="delivered",
                         at=sent_at - timedelta(milliseconds=300))
    message_status_apply(message_id=message.id, status="read",
                         at=sent_at + timedelta(seconds=2))
    message.refresh_from_db()
    assert message.sent_at == message.delivered_at == sent_at
    assert message.read_at == sent_at + timedelta(seconds=2)


def test_a_run_of_receipts_is_applied_in_order_with_one_event_per_step(alice, session):
    from messaging.services import StatusUpdate, message_statuses_apply
    from webhooks.models import Event

    first, second = queue(alice, session, 2)
    changed = message_statuses_apply([
        StatusUpdate(first.id, "sent"), StatusUpdate(second.id, "sent"),
        StatusUpdate(first.id, "delivered"), StatusUpdate(first.id, "sent"),  # late: ignored
        StatusUpdate(second.id, "read"), StatusUpdate(first.id, "read"),
        StatusUpdate("msg_unknown", "read"),
    ])
    assert changed == 5
    events = Event.objects.filter(type="message.status").order_by("id")
    assert [(e.data["id"], e.data["status"]) for e in events] == [
        (first.id, "sent"), (second.id, "sent"), (first.id, "delivered"),
        (second.id, "read"), (first.id, "read")]
    # Each event shows the message as it was at its step, not as it ended.
    assert events[0].data["deliveredAt"] is None and events[2].data["readAt"] is None
    assert [Message.objects.get(pk=m.pk).status for m in (first, second)] == ["read", "read"]


def test_a_change_made_first_elsewhere_is_read_again_and_never_overwritten(alice, session):
    """The sender records `sent` from the row it claimed; a receipt applied meanwhile (the
    engine reports before the sender records) wins, and nothing is recorded twice."""
    from messaging.services import StatusUpdate, message_status_apply, message_statuses_apply
    from webhooks.models import Event

    (message,) = queue(alice, session)
    Message.objects.filter(pk=message.pk).update(status="sending")
    claimed = Message.objects.get(pk=message.pk)
    assert message_status_apply(message_id=message.id, status="delivered")  # the receipt
    assert message_statuses_apply([StatusUpdate(message.id, "sent", whatsapp_id="WA1")],
                                  known=[claimed]) == 0
    stored = Message.objects.get(pk=message.pk)
    assert stored.status == "delivered" and stored.whatsapp_id == ""
    assert [e.data["status"] for e in Event.objects.filter(type="message.status")] == [
        "delivered"]

    (later,) = queue(alice, session)
    Message.objects.filter(pk=later.pk).update(status="sending")
    claimed = Message.objects.get(pk=later.pk)
    Message.objects.filter(pk=later.pk).update(status="queued")  # requeued by the sweeper
    assert message_statuses_apply([StatusUpdate(later.id, "sent", whatsapp_id="WA2")],
                                  known=[claimed]) == 1  # read again: sent from queued
    assert Message.objects.get(pk=later.pk).whatsapp_id == "WA2"


# --- pacing (SEND_MIN_INTERVAL_SECONDS) -----------------------------------------------------


@pytest.fixture
def continuations(monkeypatch) -> list[dict]:
    """The wake-ups a run schedules, caught instead of sent."""
    from messaging import sender

    caught = []
    monkeypatch.setattr(sender, "schedule_session_sender",
                        lambda session_id, **kwargs: caught.append(kwargs))
    return caught


def test_a_paced_run_pauses_instead_of_sleeping_its_lease_kept_for_its_continuation(
        alice, session, settings, continuations):
    settings.SEND_MIN_INTERVAL_SECONDS = 30
    messages = queue(alice, session, 2)
    assert session_sender_run(session_id=session["id"]) == "paused"
    assert statuses(messages) == [("sent", 1), ("queued", 0)]
    row = Session.objects.get(pk=session["id"])
    assert 29 < (row.next_send_at - timezone.now()).total_seconds() <= 30
    assert row.sender_lease_owner and row.sender_lease_until >= row.next_send_at
    (continuation,) = continuations
    assert continuation["owner"] == row.sender_lease_owner
    assert 29 < continuation["countdown"] <= 30
    # Another run (a new message's wake-up, the sweeper) finds the session taken.
    assert session_sender_run(session_id=session["id"]) == "busy"
    # The continuation, once the pause is over, sends the next one and lets the lease go.
    Session.objects.filter(pk=session["id"]).update(next_send_at=timezone.now())
    assert session_sender_run(session_id=session["id"], owner=continuation["owner"]) == "idle"
    assert statuses(messages) == [("sent", 1), ("sent", 1)]
    row.refresh_from_db()
    assert row.sender_lease_owner == "" and row.next_send_at > timezone.now()


def test_the_pace_holds_from_one_run_to_the_next(alice, session, settings, continuations):
    settings.SEND_MIN_INTERVAL_SECONDS = 30
    (first,) = queue(alice, session)
    assert session_sender_run(session_id=session["id"]) == "idle"
    (second,) = queue(alice, session)
    # A new run, a moment later: it must not send before the pause since the last send.
    assert session_sender_run(session_id=session["id"]) == "paused"
    assert statuses([first, second]) == [("sent", 1), ("queued", 0)]


def test_a_paused_run_whose_continuation_never_came_is_taken_over(alice, session, settings,
                                                                  continuations):
    settings.SEND_MIN_INTERVAL_SECONDS = 30
    messages = queue(alice, session, 2)
    assert session_sender_run(session_id=session["id"]) == "paused"
    # Its continuation was lost (the broker went down): the pause and the lease run out.
    past = timezone.now() - timedelta(seconds=1)
    Session.objects.filter(pk=session["id"]).update(next_send_at=past, sender_lease_until=past)
    assert session_sender_run(session_id=session["id"]) == "idle"
    assert statuses(messages) == [("sent", 1), ("sent", 1)]
    # The lost continuation, if it comes back at last, sends nothing twice.
    stale_owner = continuations[0]["owner"]
    Session.objects.filter(pk=session["id"]).update(next_send_at=past)
    assert session_sender_run(session_id=session["id"], owner=stale_owner) == "idle"
    assert statuses(messages) == [("sent", 1), ("sent", 1)]


def test_a_short_pause_is_slept_through_in_the_run(alice, session, settings, continuations):
    settings.SEND_MIN_INTERVAL_SECONDS = 0.01  # under INLINE_PAUSE_SECONDS
    messages = queue(alice, session, 3)
    assert session_sender_run(session_id=session["id"]) == "idle"
    assert statuses(messages) == [("sent", 1)] * 3 and continuations == []


def test_the_sweeper_wakes_no_session_whose_sender_holds_its_lease(alice, session, settings,
                                                                   continuations):
    settings.SEND_MIN_INTERVAL_SECONDS = 30
    queue(alice, session, 2)
    assert session_sender_run(session_id=session["id"]) == "paused"
    continuations.clear()
    assert messages_sweep()["woken"] == 0 and continuations == []
    # The paused run's worker died: once its lease runs out, the sweeper wakes the session.
    Session.objects.filter(pk=session["id"]).update(
        sender_lease_until=timezone.now() - timedelta(seconds=1))
    assert messages_sweep()["woken"] == 1
    assert continuations == [{"dedupe": False}]


# --- the wake-up marker (one pending run per session) ----------------------------------------


@pytest.fixture
def sender_wakeups(session, monkeypatch) -> list[tuple]:
    """The sender's tasks enqueued (args, countdown), caught instead of sent; the wake-up
    markers are real (Redis)."""
    from infra import wakeups
    from messaging.services import SENDER_TASK, session_sender_woken

    session_sender_woken(session["id"])  # the marker its connection set (its queue was empty)
    caught = []
    enqueue = wakeups.enqueue

    def catch(task, args, countdown=None):
        if task != SENDER_TASK:
            return enqueue(task, args, countdown)
        caught.append((list(args), countdown))

    monkeypatch.setattr(wakeups, "enqueue", catch)
    return caught


def accept(alice, session) -> Message:
    """A message accepted as the API accepts one: committed with its sender's wake-up."""
    from django.db import transaction

    from messaging.services import schedule_session_sender

    with transaction.atomic():
        (message,) = queue(alice, session)
        schedule_session_sender(session["id"])
    return message


def marker(session) -> object:
    from django.core.cache import cache

    from messaging.services import sender_wake_key as _scheduled_key

    return cache.get(_scheduled_key(session["id"]))


def test_a_run_that_finds_the_lease_taken_leaves_the_wake_up_pending(alice, session,
                                                                     sender_wakeups):
    from messaging.tasks import send_session_messages

    accept(alice, session)
    assert sender_wakeups == [([session["id"]], None)] and marker(session) is not None
    Session.objects.filter(pk=session["id"]).update(
        sender_lease_owner="other", sender_lease_until=timezone.now() + timedelta(seconds=30))
    assert send_session_messages(session["id"]) == "busy"
    # The holder lets the marker go when it ends: more messages meanwhile start nothing.
    assert marker(session) is not None
    accept(alice, session)
    assert len(sender_wakeups) == 1


def test_a_paused_run_keeps_the_wake_up_pending_for_its_continuation(alice, session, settings,
                                                                    sender_wakeups):
    from messaging.tasks import send_session_messages

    settings.SEND_MIN_INTERVAL_SECONDS = 30
    accept(alice, session)
    accept(alice, session)
    assert send_session_messages(session["id"]) == "paused"
    assert marker(session) is not None
    accept(alice, session)  # the continuation will send it: no run of its own
    assert [countdown is None for _args, countdown in sender_wakeups] == [True, False]


def test_a_run_that_ends_lets_the_wake_up_go_and_wakes_what_came_meanwhile(
        alice, session, sender_wakeups, monkeypatch):
    from messaging import sender
    from messaging.tasks import send_session_messages

    first = accept(alice, session)
    real_drain = sender._drain
    late = []

    def drain_then_a_message_arrives(*args):
        outcome = real_drain(*args)
        late.append(accept(alice, session))  # its wake-up dropped: the marker is still set
        return outcome

    monkeypatch.setattr(sender, "_drain", drain_then_a_message_arrives)
    assert send_session_messages(session["id"]) == "idle"
    assert Message.objects.get(pk=first.pk).status != "queued"
    assert Message.objects.get(pk=late[0].pk).status == "queued"
    # The run let the marker go, then found the late message and woke a run for it.
    assert sender_wakeups == [([session["id"]], None)] * 2
    assert marker(session) is not None  # set by that wake-up


def test_a_run_that_fails_lets_its_lease_and_the_wake_up_go(alice, session, sender_wakeups,
                                                           monkeypatch):
    from messaging import sender
    from messaging.tasks import send_session_messages

    accept(alice, session)

    def claim_fails(session_id, pace):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(sender, "_claim", claim_fails)
    with pytest.raises(RuntimeError):
        send_session_messages(session["id"])
    assert marker(session) is None
    assert Session.objects.values_list("sender_lease_owner", flat=True).get(
        pk=session["id"]) == ""


def test_the_pace_read_by_the_lease_statement_is_an_aware_datetime_from_either_database():
    from datetime import UTC, datetime

    from messaging.sender import _datetime_read

    aware = datetime(2026, 12, 1, 11, 50, 53, 123456, tzinfo=UTC)
    assert _datetime_read(aware) == aware  # PostgreSQL
    # SQLite (the embedded mode) answers a raw cursor with a naive datetime in UTC, or text.
    assert _datetime_read(aware.replace(tzinfo=None)) == aware
    assert _datetime_read("2026-12-01 11:50:53.123456") == aware
    assert _datetime_read(None) is None


# --- the session's send policy ----------------------------------------------------------------


def test_a_send_policy_draws_each_pause_between_its_two_intervals(alice, session,
                                                                  continuations):
    response = alice.http.patch(f"/v1/sessions/{session['id']}", json={
        "sendPolicy": {"minIntervalSeconds": 20, "maxIntervalSeconds": 40}})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["sendPolicy"] == {
        "minIntervalSeconds": 20.0, "maxIntervalSeconds": 40.0, "dailyLimit": None}
    pauses = []
    for _ in range(8):
        queue(alice, session, 2)
        Session.objects.filter(pk=session["id"]).update(next_send_at=None,
                                                        sender_lease_until=None)
        assert session_sender_run(session_id=session["id"]) == "paused"
        row = Session.objects.get(pk=session["id"])
        pauses.append((row.next_send_at - timezone.now()).total_seconds())
        Message.objects.filter(session_id=session["id"], status="queued").delete()
    assert all(19 < pause <= 40 for pause in pauses), pauses
    assert len({round(pause) for pause in pauses}) > 1  # drawn, not fixed


def test_past_its_daily_limit_a_session_keeps_the_rest_queued_for_the_next_day(
        alice, session, continuations):
    alice.http.patch(f"/v1/sessions/{session['id']}",
                     json={"sendPolicy": {"minIntervalSeconds": 0, "dailyLimit": 2}})
    messages = queue(alice, session, 4)
    assert session_sender_run(session_id=session["id"]) == "paused"
    assert statuses(messages) == [("sent", 1), ("sent", 1), ("queued", 0), ("queued", 0)]
    row = Session.objects.get(pk=session["id"])
    assert (row.sends_day, row.sends_today) == (timezone.now().date(), 2)
    page = alice.http.get(f"/v1/sessions/{session['id']}/queue").json()
    assert [m["id"] for m in page["data"]] == [m.id for m in messages[2:]]
    midnight = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    assert page["nextSendAt"] == midnight
    # Queued for days, they are not expired: the session is connected, they wait their turn.
    Message.objects.filter(pk__in=[m.id for m in messages[2:]]).update(
        created_at=timezone.now() - timedelta(days=3))
    messages_sweep()
    assert statuses(messages[2:]) == [("queued", 0), ("queued", 0)]
    # The next day (its count is of yesterday), the rest go.
    Session.objects.filter(pk=session["id"]).update(
        sends_day=timezone.now().date() - timedelta(days=1), sender_lease_until=None)
    assert session_sender_run(session_id=session["id"]) == "idle"
    assert statuses(messages) == [("sent", 1)] * 4


def test_the_queue_lists_what_is_still_to_go_oldest_first_in_pages(alice, session, bob):
    messages = queue(alice, session, 3)
    page = alice.http.get(f"/v1/sessions/{session['id']}/queue", params={"limit": 2}).json()
    assert [m["id"] for m in page["data"]] == [m.id for m in messages[:2]]
    assert page["nextSendAt"] is None
    rest = alice.http.get(f"/v1/sessions/{session['id']}/queue",
                          params={"cursor": page["pagination"]["nextCursor"]}).json()
    assert [m["id"] for m in rest["data"]] == [messages[2].id]
    assert bob.http.get(f"/v1/sessions/{session['id']}/queue").status_code == 404
