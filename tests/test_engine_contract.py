"""The contract every engine implements. Each engine supplies a harness that plays the phone's
part (pairing, dropping the connection, a contact writing); the tests speak only through the
`Engine` interface and the events it publishes. The real engine joins `HARNESSES` with its
fake neonize client."""

from dataclasses import dataclass, field

import pytest

from infra.ids import new_id
from messaging.vcard import vcard
from sessions_app.engines import base
from sessions_app.engines.base import EngineEvent, EngineUnavailable, SendRejected
from sessions_app.engines.sandbox.engine import SandboxEngine

pytestmark = pytest.mark.django_db


@dataclass
class Harness:
    engine: base.Engine
    events: list[EngineEvent] = field(default_factory=list)

    def of_type(self, kind: str, session_id: str) -> list[EngineEvent]:
        return [e for e in self.events if e.type == kind and e.session_id == session_id]

    # How each engine's phone side is simulated.
    def pair(self, session_id: str, phone: str) -> None:
        raise NotImplementedError

    def drop(self, session_id: str) -> None:
        raise NotImplementedError

    def receive(self, session_id: str, sender: str, text: str) -> None:
        raise NotImplementedError

    def end(self, session_id: str, reason: str) -> None:
        """WhatsApp or the phone ends the session (`logged_out`, `stream_replaced`,
        `banned`)."""
        raise NotImplementedError


class SandboxHarness(Harness):
    def pair(self, session_id, phone):
        self.engine.scan(session_id, phone_number=phone)

    def drop(self, session_id):
        self.engine.disconnect(session_id)

    def receive(self, session_id, sender, text):
        self.engine.inbound(session_id, from_number=sender, text=text)

    def end(self, session_id, reason):
        self.engine.disconnect(session_id, reason=reason)


def make_sandbox(settings) -> Harness:
    settings.SANDBOX_STATUS_DELAY_SECONDS = 0  # receipts at once: no worker needed here
    harness = SandboxHarness(engine=None)
    harness.engine = SandboxEngine(lambda *events: harness.events.extend(events))
    return harness


class FakeClientWhatsmeowEngine(base.Engine):
    """The real engine's per-session logic (SessionRunner, run in each child process) driven
    through the fake neonize client, in this process."""

    name = "whatsmeow"

    def __init__(self, publish) -> None:
        super().__init__(publish)
        self.runners = {}

    def _runner(self, session_id):
        if session_id not in self.runners:
            raise EngineUnavailable("no such session")
        return self.runners[session_id]

    def start(self, session_id, *, phone_number=None, device=None):
        from neonize import events as neonize_events

        from sessions_app.engines.whatsmeow.runner import SessionRunner
        from tests.support.fake_neonize import FakeNeonizeClient

        # A new runner, as a new child process would be (the ledger of sends stays).
        ledger = self.runners[session_id].ledger if session_id in self.runners else None
        runner = SessionRunner(session_id, FakeNeonizeClient(device=device), self.publish,
                               phone_number=phone_number, events_module=neonize_events,
                               ledger=ledger)
        self.runners[session_id] = runner
        runner.client.connect()

    def stop(self, session_id):
        self._runner(session_id).stop()

    def logout(self, session_id):
        self._runner(session_id).logout()

    def state(self, session_id):
        runner = self.runners.get(session_id)
        return runner.state if runner else None

    # What the child process receives: the quote as a dict, over the command pipe.
    def send_text(self, session_id, *, reply_to=None, **kwargs):
        sent = self._runner(session_id).send_text(reply_to=reply_to and reply_to.to_dict(),
                                                  **kwargs)
        self._runner(session_id).client.deliver_receipts()
        return sent

    def send_media(self, session_id, *, reply_to=None, **kwargs):
        return self._runner(session_id).send_media(reply_to=reply_to and reply_to.to_dict(),
                                                   **kwargs)

    def send_location(self, session_id, *, reply_to=None, **kwargs):
        return self._runner(session_id).send_location(
            reply_to=reply_to and reply_to.to_dict(), **kwargs)

    def send_contacts(self, session_id, *, reply_to=None, **kwargs):
        return self._runner(session_id).send_contacts(
            reply_to=reply_to and reply_to.to_dict(), **kwargs)

    def send_reaction(self, session_id, *, target, **kwargs):
        return self._runner(session_id).send_reaction(target=target.to_dict(), **kwargs)

    def send_edit(self, session_id, **kwargs):
        return self._runner(session_id).send_edit(**kwargs)

    def send_revoke(self, session_id, **kwargs):
        return self._runner(session_id).send_revoke(**kwargs)

    def check_numbers(self, session_id, numbers):
        return self._runner(session_id).check_numbers(numbers)

    def send_chat_state(self, session_id, **kwargs):
        self._runner(session_id).send_chat_state(**kwargs)

    def mark_read(self, session_id, *, chat, whatsapp_ids, sender=None):
        self._runner(session_id).mark_read(chat=chat, whatsapp_ids=whatsapp_ids, sender=sender)

    def list_groups(self, session_id):
        return self._runner(session_id).list_groups()

    def group_info(self, session_id, group_id):
        return self._runner(session_id).group_info(group_id=group_id)

    def create_group(self, session_id, **kwargs):
        return self._runner(session_id).create_group(**kwargs)

    def update_group_participants(self, session_id, group_id, **kwargs):
        return self._runner(session_id).update_group_participants(group_id=group_id, **kwargs)

    def leave_group(self, session_id, group_id):
        self._runner(session_id).leave_group(group_id=group_id)

    def resolve_identity(self, session_id, **kwargs):
        return self._runner(session_id).resolve_identity(**kwargs)


class WhatsmeowHarness(Harness):
    def pair(self, session_id, phone):
        self.engine.runners[session_id].client.pair(phone)

    def drop(self, session_id):
        self.engine.runners[session_id].client.drop()

    def receive(self, session_id, sender, text):
        self.engine.runners[session_id].client.receive(sender, text)

    def end(self, session_id, reason):
        self.engine.runners[session_id].client.end(reason)


def make_whatsmeow(settings) -> Harness:
    harness = WhatsmeowHarness(engine=None)
    harness.engine = FakeClientWhatsmeowEngine(lambda *events: harness.events.extend(events))
    return harness


HARNESSES = {"sandbox": make_sandbox, "whatsmeow": make_whatsmeow}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request, settings) -> Harness:
    return HARNESSES[request.param](settings)


@pytest.fixture
def session_id() -> str:
    return new_id("ses")


def connect(harness: Harness, session_id: str, phone: str = "14155552671") -> None:
    harness.engine.start(session_id)
    harness.pair(session_id, phone)


def test_start_publishes_a_qr_code(harness, session_id):
    harness.engine.start(session_id)
    (qr,) = harness.of_type(base.QR, session_id)
    assert isinstance(qr.data["code"], str) and qr.data["code"]
    assert harness.engine.state(session_id) == "qr_pending"


def test_start_with_a_phone_number_publishes_a_pairing_code(harness, session_id):
    harness.engine.start(session_id, phone_number="14155552671")
    (pairing,) = harness.of_type(base.PAIRING_CODE, session_id)
    assert len(pairing.data["code"]) == 8


def test_pairing_connects_with_the_phone_number(harness, session_id):
    connect(harness, session_id, "447911123456")
    (event,) = harness.of_type(base.CONNECTED, session_id)
    assert event.data["phoneNumber"] == "447911123456"
    assert harness.engine.state(session_id) == "connected"


def test_sending_text_returns_an_id_and_receipts_follow_in_order(harness, session_id):
    connect(harness, session_id)
    message_id = new_id("msg")
    sent = harness.engine.send_text(session_id, message_id=message_id, to="14155550123",
                                    text="hi")
    assert sent.whatsapp_id
    receipts = harness.of_type(base.RECEIPT, session_id)
    assert [r.data["status"] for r in receipts] == ["sent", "delivered", "read"]
    assert {r.data["messageId"] for r in receipts} == {message_id}
    assert {r.data["whatsappId"] for r in receipts} == {sent.whatsapp_id}
    assert receipts[0].occurred_at <= receipts[1].occurred_at <= receipts[2].occurred_at


def test_a_resend_of_the_same_message_is_recognised(harness, session_id):
    connect(harness, session_id)
    message_id = new_id("msg")
    first = harness.engine.send_text(session_id, message_id=message_id, to="14155550123",
                                     text="a")
    again = harness.engine.send_text(session_id, message_id=message_id, to="14155550123",
                                     text="a")
    assert first.whatsapp_id == again.whatsapp_id
    # the resend is the same WhatsApp message: its receipts are not repeated
    assert len(harness.of_type(base.RECEIPT, session_id)) == 3


def test_sending_media_takes_bytes(harness, session_id):
    connect(harness, session_id)
    sent = harness.engine.send_media(
        session_id, message_id=new_id("msg"), to="14155550123", kind="image",
        data=b"\x89PNG\r\n\x1a\n" + b"0" * 32, mime_type="image/png", filename="a.png",
        caption="look",
    )
    assert sent.whatsapp_id


def test_sending_a_location_returns_an_id(harness, session_id):
    connect(harness, session_id)
    sent = harness.engine.send_location(
        session_id, message_id=new_id("msg"), to="14155550123", latitude=48.8584,
        longitude=2.2945, name="Tour Eiffel", address=None)
    assert sent.whatsapp_id


@pytest.mark.parametrize("count", [1, 3])
def test_sending_contact_cards_returns_an_id(harness, session_id, count):
    connect(harness, session_id)
    cards = [{"name": f"Ann {n}", "vcard": vcard(f"Ann {n}", f"1415555010{n}")}
             for n in range(count)]
    sent = harness.engine.send_contacts(session_id, message_id=new_id("msg"),
                                        to="14155550123", contacts=cards)
    assert sent.whatsapp_id


def test_a_rejected_send_raises_send_rejected(harness, session_id):
    connect(harness, session_id)
    with pytest.raises(SendRejected) as error:
        harness.engine.send_text(session_id, message_id=new_id("msg"), to="14155550001",
                                  text="x")
    assert error.value.code == "message_sending_failed"


def test_sending_without_a_connection_is_unavailable(harness, session_id):
    harness.engine.start(session_id)
    with pytest.raises(EngineUnavailable):
        harness.engine.send_text(session_id, message_id=new_id("msg"), to="14155550123",
                                  text="x")


def test_check_numbers(harness, session_id):
    connect(harness, session_id)
    assert harness.engine.check_numbers(session_id, ["14155550000", "14155552671"]) == {
        "14155550000": False,
        "14155552671": True,
    }


def test_dropping_the_connection_publishes_disconnected(harness, session_id):
    connect(harness, session_id)
    harness.drop(session_id)
    (dropped,) = harness.of_type(base.DISCONNECTED, session_id)
    assert dropped.data["code"] == base.CONNECTION_LOST and dropped.data["reason"]
    assert harness.engine.state(session_id) == "disconnected"


def test_a_stored_login_resumes_without_a_qr_code(harness, session_id):
    connect(harness, session_id, "447911123456")
    (paired,) = harness.of_type(base.PAIRED, session_id)
    harness.drop(session_id)
    harness.events.clear()
    harness.engine.start(session_id, device=paired.data["deviceJid"])
    assert not harness.of_type(base.QR, session_id)
    (connected,) = harness.of_type(base.CONNECTED, session_id)
    assert connected.data["phoneNumber"] == "447911123456"
    assert harness.engine.state(session_id) == "connected"


def test_a_resend_after_a_restart_is_recognised(harness, session_id):
    connect(harness, session_id)
    (paired,) = harness.of_type(base.PAIRED, session_id)
    message_id = new_id("msg")
    first = harness.engine.send_text(session_id, message_id=message_id, to="14155550123",
                                     text="a")
    harness.engine.start(session_id, device=paired.data["deviceJid"])  # a new process
    again = harness.engine.send_text(session_id, message_id=message_id, to="14155550123",
                                     text="a")
    assert again.whatsapp_id == first.whatsapp_id


@pytest.mark.parametrize("reason, event_type, code", [
    ("logged_out", base.LOGGED_OUT, base.LOGGED_OUT_BY_PHONE),
    ("stream_replaced", base.FAILED, base.STREAM_REPLACED),
    ("banned", base.FAILED, base.TEMPORARILY_BANNED),
])
def test_whatsapps_and_the_phones_decisions_end_the_session(harness, session_id, reason,
                                                            event_type, code):
    connect(harness, session_id)
    harness.end(session_id, reason)
    (ended,) = harness.of_type(event_type, session_id)
    assert ended.data["code"] == code
    with pytest.raises(EngineUnavailable):
        harness.engine.send_text(session_id, message_id=new_id("msg"), to="14155550123",
                                  text="x")


def test_logout_publishes_logged_out(harness, session_id):
    connect(harness, session_id)
    harness.engine.logout(session_id)
    assert harness.of_type(base.LOGGED_OUT, session_id)
    assert harness.engine.state(session_id) == "logged_out"


def test_a_message_from_a_contact_is_published(harness, session_id):
    connect(harness, session_id)
    harness.receive(session_id, "14155559876", "hello there")
    (event,) = harness.of_type(base.MESSAGE_RECEIVED, session_id)
    assert event.data["from"] == "14155559876"
    assert event.data["text"] == "hello there"
    assert event.data["whatsappId"]


def test_mark_read_is_accepted(harness, session_id):
    connect(harness, session_id)
    harness.engine.mark_read(session_id, chat="14155559876", whatsapp_ids=["ABC"])


def test_unknown_session_has_no_state(harness):
    assert harness.engine.state(new_id("ses")) is None


def test_events_survive_serialisation(harness, session_id):
    connect(harness, session_id)
    for event in harness.events:
        assert EngineEvent.from_dict(event.to_dict()) == event


def test_the_sandbox_forgets_a_message_within_a_day_and_a_phone_within_a_month(settings):
    from django.core.cache import cache

    harness = make_sandbox(settings)
    session_id, message_id = new_id("ses"), new_id("msg")
    connect(harness, session_id)
    harness.engine.send_text(session_id, message_id=message_id, to="14155550123", text="hi")
    seconds = {name: cache.ttl(name) for name in (  # django-redis's TTL reader
        f"sandbox:send-attempts:{message_id}", f"sandbox:delivered:{message_id}",
        f"sandbox:{session_id}")}
    day, month = 24 * 3600, 30 * 24 * 3600
    assert all(0 < seconds[name] <= day for name in list(seconds)[:2]), seconds
    assert day < seconds[f"sandbox:{session_id}"] <= month, seconds


def test_a_sandbox_send_makes_three_redis_round_trips(settings, redis_round_trips):
    """Its cost on the send path: the attempt counted, the phone's state and the message's
    delivery read, the delivery marked (the receipts go to the engine's publisher, a list
    here)."""
    harness = make_sandbox(settings)
    session_id, message_id = new_id("ses"), new_id("msg")
    connect(harness, session_id)
    redis_round_trips.clear()
    harness.engine.send_text(session_id, message_id=message_id, to="14155550123", text="hi")
    assert len(redis_round_trips) == 3
    assert SandboxEngine.send_attempts(message_id) == 1
    assert [e.data["status"] for e in harness.events if e.type == base.RECEIPT] == [
        "sent", "delivered", "read"]


def test_the_sandbox_stamps_each_receipt_with_when_the_phone_answers(settings, monkeypatch):
    """`delivered` and `read` come SANDBOX_STATUS_DELAY_SECONDS apart, and say so: their
    times are not the moment they were scheduled."""
    from sessions_app.engines.sandbox import engine as sandbox

    harness = make_sandbox(settings)
    settings.SANDBOX_STATUS_DELAY_SECONDS = 1
    scheduled = []
    monkeypatch.setattr(sandbox, "enqueue", lambda task, args, countdown: scheduled.append(
        (EngineEvent.from_dict(args[0]), countdown)))
    session_id = new_id("ses")
    connect(harness, session_id)
    harness.engine.send_text(session_id, message_id=new_id("msg"), to="14155550123", text="hi")
    (sent,) = harness.of_type(base.RECEIPT, session_id)
    assert [(e.data["status"], countdown) for e, countdown in scheduled] == [
        ("delivered", 1), ("read", 2)]
    assert [(e.occurred_at - sent.occurred_at).total_seconds() for e, _ in scheduled] == (
        pytest.approx([1, 2], abs=0.01))


def paired_real_engine() -> tuple[FakeClientWhatsmeowEngine, str, list[EngineEvent]]:
    """The real engine's session logic over the fake client, its phone paired: the engine, the
    session's id, and the events it publishes."""
    events: list[EngineEvent] = []
    engine = FakeClientWhatsmeowEngine(lambda *published: events.extend(published))
    session_id = new_id("ses")
    engine.start(session_id)
    engine.runners[session_id].client.pair("14155552671")
    return engine, session_id, events


def test_the_real_engine_builds_locations_and_contact_cards_as_whatsapp_protobufs():
    """What the real engine hands neonize's send_message: WhatsApp's own message protobufs
    (neonize has no builder for these two; the fake client records what it was given)."""
    engine, session_id, _events = paired_real_engine()
    engine.send_location(session_id, message_id=new_id("msg"), to="14155550123",
                         latitude=-33.8568, longitude=151.2153, name="Opera House",
                         address="Bennelong Point")
    one = vcard("Ann", "14155550100")
    engine.send_contacts(session_id, message_id=new_id("msg"), to="14155550123",
                         contacts=[{"name": "Ann", "vcard": one}])
    engine.send_contacts(session_id, message_id=new_id("msg"), to="14155550123",
                         contacts=[{"name": "Ann", "vcard": one},
                                   {"name": "Bo", "vcard": vcard("Bo", "14155550101")}])
    location, card, cards = (message for _to, message in engine.runners[session_id].client.sent)
    assert location.locationMessage.degreesLatitude == -33.8568
    assert location.locationMessage.degreesLongitude == 151.2153
    assert (location.locationMessage.name, location.locationMessage.address) == (
        "Opera House", "Bennelong Point")
    assert card.contactMessage.displayName == "Ann" and card.contactMessage.vcard == one
    assert [c.displayName for c in cards.contactsArrayMessage.contacts] == ["Ann", "Bo"]
    assert "waid=14155550101:+14155550101" in cards.contactsArrayMessage.contacts[1].vcard


def test_the_real_engine_reports_locations_contact_cards_and_stickers_it_receives():
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

    engine, session_id, events = paired_real_engine()
    client = engine.runners[session_id].client
    client.receive_message("447911123456", E2E.Message(locationMessage=E2E.LocationMessage(
        degreesLatitude=51.5, degreesLongitude=-0.12, name="Here")))
    client.receive_message("447911123456", E2E.Message(
        contactsArrayMessage=E2E.ContactsArrayMessage(contacts=[
            E2E.ContactMessage(displayName="Ann", vcard=vcard("Ann", "14155550100")),
            E2E.ContactMessage(displayName="No number", vcard="BEGIN:VCARD\nEND:VCARD")])))
    client.receive_message("447911123456", E2E.Message(
        stickerMessage=E2E.StickerMessage(mimetype="image/webp")))
    client.receive_message("447911123456", E2E.Message(
        reactionMessage=E2E.ReactionMessage(text="👍")))
    received = [e.data for e in events if e.type == base.MESSAGE_RECEIVED]
    assert [data["type"] for data in received] == ["location", "contact", "sticker"]
    assert received[0]["location"] == {"latitude": 51.5, "longitude": -0.12, "name": "Here",
                                       "address": None}
    assert [(c["name"], c["phoneNumber"]) for c in received[1]["contacts"]] == [
        ("Ann", "14155550100"), ("No number", None)]
    assert received[2]["mimeType"] == "image/webp"


@pytest.mark.parametrize("kind", ["text", "location", "contact"])
def test_a_reply_quotes_the_message_it_answers(harness, session_id, kind):
    connect(harness, session_id)
    quote = base.Quote(whatsapp_id="3EB0QUOTED", sender="447911123456", from_me=False,
                       text="Where are you?")
    send = {"text": lambda: harness.engine.send_text(
                session_id, message_id=new_id("msg"), to="447911123456", text="Here",
                reply_to=quote),
            "location": lambda: harness.engine.send_location(
                session_id, message_id=new_id("msg"), to="447911123456", latitude=1.5,
                longitude=2.5, name=None, address=None, reply_to=quote),
            "contact": lambda: harness.engine.send_contacts(
                session_id, message_id=new_id("msg"), to="447911123456",
                contacts=[{"name": "Ann", "vcard": vcard("Ann", "14155550100")}],
                reply_to=quote)}
    assert send[kind]().whatsapp_id
    if harness.engine.name != "whatsmeow":
        return  # the sandbox's phone shows nothing: the quote is the real engine's to build
    _to, message = harness.engine.runners[session_id].client.sent[-1]
    content = {"text": message.extendedTextMessage, "location": message.locationMessage,
               "contact": message.contactMessage}[kind]
    context = content.contextInfo
    assert context.stanzaID == "3EB0QUOTED"
    assert context.participant == "447911123456@s.whatsapp.net"
    assert context.quotedMessage.conversation == "Where are you?"
    if kind == "text":
        assert message.extendedTextMessage.text == "Here"


def test_the_real_engine_reports_which_message_a_received_reply_quotes():
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

    engine, session_id, events = paired_real_engine()
    client = engine.runners[session_id].client
    client.receive_message("447911123456", E2E.Message(
        extendedTextMessage=E2E.ExtendedTextMessage(
            text="Yes", contextInfo=E2E.ContextInfo(stanzaID="3EB0ASKED"))))
    client.receive_message("447911123456", E2E.Message(conversation="no quote"))
    received = [e.data for e in events if e.type == base.MESSAGE_RECEIVED]
    assert received[0]["replyToWhatsappId"] == "3EB0ASKED"
    assert "replyToWhatsappId" not in received[1]


def test_reactions_edits_and_deletions_are_sent(harness, session_id):
    connect(harness, session_id)
    original = harness.engine.send_text(session_id, message_id=new_id("msg"),
                                        to="447911123456", text="See you at 5")
    ours = base.Quote(whatsapp_id=original.whatsapp_id, sender="14155552671", from_me=True,
                      text="See you at 5")
    theirs = base.Quote(whatsapp_id="3EB0THEIRS", sender="447911123456", from_me=False,
                        text="ok")
    sent = [
        harness.engine.send_reaction(session_id, message_id=new_id("msg"), to="447911123456",
                                     target=theirs, emoji="👍"),
        harness.engine.send_edit(session_id, message_id=new_id("msg"), to="447911123456",
                                 target_whatsapp_id=ours.whatsapp_id, text="See you at 6"),
        harness.engine.send_revoke(session_id, message_id=new_id("msg"), to="447911123456",
                                   target_whatsapp_id=ours.whatsapp_id),
    ]
    assert all(result.whatsapp_id for result in sent)
    if harness.engine.name != "whatsmeow":
        return
    built = [message for _to, message in harness.engine.runners[session_id].client.sent[-3:]]
    reaction, edit, revoke = built
    assert reaction.reactionMessage.key.ID == "3EB0THEIRS"
    assert reaction.reactionMessage.text == "👍"
    edited = edit.editedMessage.message.protocolMessage
    assert (edited.key.ID, edited.key.fromMe) == (original.whatsapp_id, True)
    assert edited.editedMessage.conversation == "See you at 6"
    assert revoke.protocolMessage.type == revoke.protocolMessage.REVOKE
    assert (revoke.protocolMessage.key.ID, revoke.protocolMessage.key.fromMe) == (
        original.whatsapp_id, True)


def test_the_real_engine_reports_a_contacts_reactions_edits_and_deletions():
    from neonize.builder import build_edit
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E
    from neonize.utils.jid import build_jid

    engine, session_id, events = paired_real_engine()
    client = engine.runners[session_id].client
    contact = "447911123456"
    client.receive_message(contact, E2E.Message(reactionMessage=E2E.ReactionMessage(
        key=MessageKey(ID="3EB0OURS"), text="👍")))
    # An edit as WhatsApp's apps send it (neonize's own builder), and a deletion.
    client.receive_message(contact, build_edit(build_jid(contact), "3EB0THEIRS",
                                               E2E.Message(conversation="fixed typo")))
    client.receive_message(contact, E2E.Message(protocolMessage=E2E.ProtocolMessage(
        type=E2E.ProtocolMessage.REVOKE, key=MessageKey(ID="3EB0THEIRS"))))
    acted = [(e.type, e.data) for e in events
             if e.type in (base.REACTION, base.EDITED, base.REVOKED)]
    assert acted == [
        (base.REACTION, {"whatsappId": "3EB0OURS", "from": contact, "emoji": "👍"}),
        (base.EDITED, {"whatsappId": "3EB0THEIRS", "from": contact, "text": "fixed typo"}),
        (base.REVOKED, {"whatsappId": "3EB0THEIRS", "from": contact}),
    ]
    assert not [e for e in events if e.type == base.MESSAGE_RECEIVED]


@pytest.mark.parametrize(("state", "presence", "media"), [
    ("typing", "CHAT_PRESENCE_COMPOSING", "CHAT_PRESENCE_MEDIA_TEXT"),
    ("recording", "CHAT_PRESENCE_COMPOSING", "CHAT_PRESENCE_MEDIA_AUDIO"),
    ("paused", "CHAT_PRESENCE_PAUSED", "CHAT_PRESENCE_MEDIA_TEXT"),
])
def test_the_chat_is_shown_typing_recording_or_neither(harness, session_id, state, presence,
                                                       media):
    connect(harness, session_id)
    harness.engine.send_chat_state(session_id, to="447911123456", state=state)
    if harness.engine.name == "whatsmeow":
        assert harness.engine.runners[session_id].client.presences == [
            ("447911123456", presence, media)]


def test_a_chat_state_without_a_connection_is_unavailable(harness, session_id):
    connect(harness, session_id)
    harness.drop(session_id)
    with pytest.raises(EngineUnavailable):
        harness.engine.send_chat_state(session_id, to="447911123456", state="typing")


def test_the_real_engine_names_the_sender_by_its_whatsapp_id_and_push_name():
    from neonize.proto import Neonize_pb2 as N
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

    engine, session_id, events = paired_real_engine()
    client = engine.runners[session_id].client
    client.receive("447911123456", "hi")  # a direct chat, the sender given
    info = N.MessageInfo(ID="3EB0NOSENDER", Pushname="", MessageSource=N.MessageSource(
        Chat=N.JID(User="447911000000", Server="s.whatsapp.net"), IsFromMe=False))
    client.emit_message(info, E2E.Message(conversation="no sender field"))
    received = [e.data for e in events if e.type == base.MESSAGE_RECEIVED]
    assert (received[0]["senderId"], received[0]["pushName"]) == (
        "447911123456@s.whatsapp.net", "Contact")
    assert (received[1]["senderId"], received[1]["from"]) == (
        "447911000000@s.whatsapp.net", "447911000000")


# --- groups and hidden ids ----------------------------------------------------------------


def test_groups_are_created_listed_read_changed_and_left(harness, session_id):
    connect(harness, session_id)
    engine = harness.engine
    group = engine.create_group(session_id, subject="Team",
                                participants=["447911123456", "447911120000"])
    assert group["id"].endswith("@g.us") and group["subject"] == "Team"
    assert {(m["phoneNumber"], m["isAdmin"]) for m in group["participants"]} == {
        ("14155552671", True), ("447911123456", False)}  # not on WhatsApp: left out
    assert [g["id"] for g in engine.list_groups(session_id)] == [group["id"]]
    assert engine.group_info(session_id, group["id"])["participants"] == group["participants"]
    changed = engine.update_group_participants(session_id, group["id"],
                                               add=["14155550123"], remove=["447911123456"])
    assert {m["phoneNumber"] for m in changed["participants"]} == {"14155552671",
                                                                    "14155550123"}
    engine.leave_group(session_id, group["id"])
    assert engine.list_groups(session_id) == []
    with pytest.raises(base.NotFound):
        engine.group_info(session_id, group["id"])
    with pytest.raises(base.NotFound):
        engine.leave_group(session_id, group["id"])


def test_a_group_the_session_is_not_in_is_not_found(harness, session_id):
    connect(harness, session_id)
    with pytest.raises(base.NotFound):
        harness.engine.group_info(session_id, "120363000000000001@g.us")
    with pytest.raises(base.NotFound):
        harness.engine.update_group_participants(session_id, "120363000000000001@g.us",
                                                 add=["447911123456"], remove=[])


def test_group_commands_need_a_connection(harness, session_id):
    connect(harness, session_id)
    harness.drop(session_id)
    with pytest.raises(EngineUnavailable):
        harness.engine.list_groups(session_id)


def test_a_text_goes_to_a_group_of_the_session_only(harness, session_id):
    connect(harness, session_id)
    group = harness.engine.create_group(session_id, subject="Team",
                                        participants=["447911123456"])
    sent = harness.engine.send_text(session_id, message_id=new_id("msg"), to=group["id"],
                                    text="hello team")
    assert sent.whatsapp_id
    with pytest.raises(SendRejected):
        harness.engine.send_text(session_id, message_id=new_id("msg"),
                                 to="120363000000000001@g.us", text="hi")


def test_an_identity_unknown_to_the_engine_is_none(harness, session_id):
    connect(harness, session_id)
    assert harness.engine.resolve_identity(session_id, lid="123456789012345@lid") == {
        "lid": "123456789012345@lid", "phoneNumber": None}
    assert harness.engine.resolve_identity(session_id, phone_number="447911123456") == {
        "lid": None, "phoneNumber": "447911123456"}


def test_the_sandbox_withholds_a_hidden_senders_number_until_it_is_disclosed(settings):
    harness = make_sandbox(settings)
    session_id = new_id("ses")
    connect(harness, session_id)
    harness.engine.inbound(session_id, from_number="447911123456", text="hi",
                           sender_lid="123456789012345@lid")
    (hidden,) = harness.of_type(base.MESSAGE_RECEIVED, session_id)
    assert (hidden.data["from"], hidden.data["senderId"]) == ("123456789012345@lid",) * 2
    assert harness.of_type(base.IDENTITY, session_id) == []
    harness.engine.inbound(session_id, from_number="447911123456", text="it's me")
    (identity,) = harness.of_type(base.IDENTITY, session_id)
    assert identity.data == {"lid": "123456789012345@lid", "phoneNumber": "447911123456"}
    assert harness.engine.resolve_identity(session_id, lid="123456789012345@lid")[
        "phoneNumber"] == "447911123456"


def _jid(user: str, server: str = "s.whatsapp.net"):
    from neonize.proto import Neonize_pb2 as N

    return N.JID(User=user, Server=server)


def _received(info_source, text: str = "hi"):
    """Emit a message with this MessageSource on a paired real engine; its events."""
    from neonize.proto import Neonize_pb2 as N
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

    engine, session_id, events = paired_real_engine()
    client = engine.runners[session_id].client
    client.emit_message(N.MessageInfo(ID="3EB0JID", Pushname="Ana", MessageSource=info_source),
                        E2E.Message(conversation=text))
    return engine, session_id, events


def test_the_real_engine_translates_a_direct_chats_sender():
    from neonize.proto import Neonize_pb2 as N

    _engine, _sid, events = _received(N.MessageSource(
        Chat=_jid("447911123456"), Sender=_jid("447911123456"), IsFromMe=False))
    (message,) = [e.data for e in events if e.type == base.MESSAGE_RECEIVED]
    assert (message["from"], message["senderId"]) == ("447911123456",
                                                      "447911123456@s.whatsapp.net")
    assert "chatId" not in message


def test_the_real_engine_translates_a_group_message_to_the_group_and_its_member():
    from neonize.proto import Neonize_pb2 as N

    _engine, _sid, events = _received(N.MessageSource(
        Chat=_jid("120363025246125486", "g.us"), Sender=_jid("447911123456"), IsGroup=True,
        IsFromMe=False))
    (message,) = [e.data for e in events if e.type == base.MESSAGE_RECEIVED]
    assert message["chatId"] == "120363025246125486@g.us"
    assert message["from"] == "447911123456"


def test_the_real_engine_translates_a_hidden_sender_and_what_discloses_it():
    from neonize.proto import Neonize_pb2 as N

    lid = _jid("123456789012345", "lid")
    # Hidden, nothing disclosed: the hidden id, never its digits as a number.
    _engine, _sid, events = _received(N.MessageSource(Chat=lid, Sender=lid, IsFromMe=False))
    (message,) = [e.data for e in events if e.type == base.MESSAGE_RECEIVED]
    assert message["from"] == message["senderId"] == "123456789012345@lid"
    assert [e for e in events if e.type == base.IDENTITY] == []
    # In a group with the number alongside (whatsmeow's SenderAlt): both, and the mapping.
    _engine, _sid, events = _received(N.MessageSource(
        Chat=_jid("120363025246125486", "g.us"), Sender=lid, SenderAlt=_jid("447911123456"),
        IsGroup=True, AddressingMode=N.AddressingMode.Value("LID"), IsFromMe=False))
    identity, message = [e for e in events if e.type in (base.IDENTITY, base.MESSAGE_RECEIVED)]
    assert identity.data == {"lid": "123456789012345@lid", "phoneNumber": "447911123456"}
    assert (message.data["from"], message.data["senderId"], message.data["chatId"]) == (
        "447911123456", "123456789012345@lid", "120363025246125486@g.us")


def test_the_real_engine_fills_a_hidden_senders_number_from_whatsmeows_store():
    from neonize.proto import Neonize_pb2 as N
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

    engine, session_id, events = paired_real_engine()
    client = engine.runners[session_id].client
    client.lid_store["123456789012345"] = "447911123456"
    lid = _jid("123456789012345", "lid")
    client.emit_message(N.MessageInfo(ID="3EB0STORE", MessageSource=N.MessageSource(
        Chat=lid, Sender=lid, IsFromMe=False)), E2E.Message(conversation="hi"))
    identity, message = [e for e in events if e.type in (base.IDENTITY, base.MESSAGE_RECEIVED)]
    assert identity.data == {"lid": "123456789012345@lid", "phoneNumber": "447911123456"}
    assert message.data["from"] == "447911123456"
    assert engine.resolve_identity(session_id, phone_number="447911123456")["lid"] == (
        "123456789012345@lid")


def test_the_real_engine_reports_group_member_changes():
    engine, session_id, events = paired_real_engine()
    client = engine.runners[session_id].client
    client.group_changed("120363025246125486", Join=["447911123456"], Leave=["14155550123"],
                         Promote=["447911123457"])
    changes = [e.data for e in events if e.type == base.GROUP_PARTICIPANTS]
    assert changes == [
        {"groupId": "120363025246125486@g.us", "action": action,
         "participants": [{"id": f"{number}@s.whatsapp.net", "phoneNumber": number}]}
        for action, number in (("add", "447911123456"), ("remove", "14155550123"),
                               ("promote", "447911123457"))]


def test_the_real_engine_reads_members_behind_hidden_ids_and_discloses_their_numbers():
    from neonize.proto import Neonize_pb2 as N

    engine, session_id, events = paired_real_engine()
    client = engine.runners[session_id].client
    client.groups["120363025246125486"] = N.GroupInfo(
        JID=_jid("120363025246125486", "g.us"), GroupName=N.GroupName(Name="Team"),
        GroupTopic=N.GroupTopic(Topic="Plans"),
        Participants=[
            N.GroupParticipant(JID=_jid("111", "lid"), PhoneNumber=_jid("447911123456"),
                               IsAdmin=True),
            N.GroupParticipant(JID=_jid("222", "lid")),
        ])
    group = engine.group_info(session_id, "120363025246125486@g.us")
    assert (group["subject"], group["description"]) == ("Team", "Plans")
    assert [(m["id"], m["phoneNumber"], m["isAdmin"]) for m in group["participants"]] == [
        ("111@lid", "447911123456", True), ("222@lid", None, False)]
    assert [e.data for e in events if e.type == base.IDENTITY] == [
        {"lid": "111@lid", "phoneNumber": "447911123456"}]


def test_the_real_engine_addresses_groups_and_hidden_ids_by_their_jids():
    engine, session_id, _events = paired_real_engine()
    client = engine.runners[session_id].client
    group = engine.create_group(session_id, subject="Team", participants=["447911123456"])
    engine.send_text(session_id, message_id=new_id("msg"), to=group["id"], text="a")
    engine.send_text(session_id, message_id=new_id("msg"), to="123456789012345@lid", text="b")
    assert [to for to, _message in client.sent] == [group["id"], "123456789012345@lid"]
