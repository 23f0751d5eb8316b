"""One WhatsApp session driven through a neonize client: the logic of a session's child
process, separated from the process so it can be driven by a fake client in tests.

`client` is a neonize `NewClient` (or a stand-in with the same surface); `publish(*events)`
puts EngineEvents on the bus; `ledger` keeps what was sent (so a resend after any crash is
recognised) and refuses every WhatsApp write once this process no longer owns the session.
"""

from __future__ import annotations

import logging
import threading

from sessions_app.engines import base
from sessions_app.engines.base import (
    EngineEvent,
    EngineUnavailable,
    NotFound,
    Quote,
    SendRejected,
    SentMessage,
)
from sessions_app.engines.whatsmeow import translate

logger = logging.getLogger(__name__)

# Errors of whatsmeow that mean "WhatsApp refuses this message", not "try again later".
_PERMANENT = ("not on whatsapp", "invalid jid", "bad request", "forbidden", "not-acceptable",
              "does not exist", "not participating")

# Errors of whatsmeow about a group that mean "the session is not in it" (its ErrNotInGroup,
# ErrGroupNotFound, and the IQ errors they wrap).
_NOT_MEMBER = ("not participating", "does not exist", "not-authorized", "item-not-found",
               "forbidden", "status 401", "status 403", "status 404")


def jid_of(address: str):
    """A neonize JID for how the API names a chat or person: digits (a number), or a full id
    (`...@g.us`, `...@lid`, `...@s.whatsapp.net`)."""
    from neonize.utils.jid import build_jid

    user, _at, server = address.partition("@")
    return build_jid(user, server or translate.USER_SERVER)


# States after which this process has nothing left to do: it exits and is not restarted.
FINAL_STATES = ("logged_out", "failed", "stopped")


class NotOwner(EngineUnavailable):
    """Another engine process owns the session now (its lease moved): write nothing."""


class MemoryLedger:
    """What a session sent, by our message id, kept in this process (the fake engine's tests;
    the child process keeps it in Redis, where it outlives the process)."""

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def check_owner(self) -> None:
        return None

    def begin(self, message_id: str) -> str | None:
        """Before a send: the WhatsApp id if this message went out before, else None (and the
        send is marked as in flight)."""
        known = self.entries.get(message_id)
        if known == "":
            raise SendRejected(IN_FLIGHT_UNKNOWN)
        if known is None:
            self.entries[message_id] = ""
        return known

    def done(self, message_id: str, whatsapp_id: str) -> None:
        self.entries[message_id] = whatsapp_id

    def abort(self, message_id: str) -> None:
        self.entries.pop(message_id, None)


IN_FLIGHT_UNKNOWN = ("The engine stopped while this message was being handed to WhatsApp, "
                     "which may or may not have it; it was not sent again, so that it cannot "
                     "arrive twice.")


class SessionRunner:
    def __init__(self, session_id: str, client, publish, *, phone_number: str | None = None,
                 events_module=None, media_sink=None, ledger=None, notify=None) -> None:
        # media_sink(event, data) stores an incoming file and publishes its event; without
        # one, media messages are passed on without their file.
        self.media_sink = media_sink
        self.ledger = ledger or MemoryLedger()
        # notify(state, device_jid) tells the supervisor how the session is (it resets its
        # backoff once connected, and resumes with the device after a crash).
        self.notify = notify or (lambda state, device_jid: None)
        self.device_jid: str | None = None
        self.session_id = session_id
        self.client = client
        self.publish = publish
        self.phone_number_for_pairing = phone_number
        self.phone: str | None = None
        self.state = "starting"
        self.message_ids: dict[str, str] = {}  # whatsapp id -> our message id (for receipts)
        self._pairing_requested = False
        self._lock = threading.Lock()
        self._register(events_module)

    # --- events from whatsmeow ---
    def _register(self, ev) -> None:
        if ev is None:
            from neonize import events as ev  # only in the child process (or tests)
        client, sid = self.client, self.session_id
        client.event.qr(self._on_qr)
        client.event(ev.PairStatusEv)(self._on_pair_status)
        client.event(ev.ConnectedEv)(self._on_connected)
        client.event(ev.KeepAliveRestoredEv)(self._on_connected)
        # whatsmeow reconnects by itself after these (its auto-reconnect is on).
        client.event(ev.DisconnectedEv)(
            lambda _c, _e: self._emit_state("disconnected", translate.disconnected_event(sid)))
        client.event(ev.KeepAliveTimeoutEv)(
            lambda _c, _e: self._emit_state("disconnected", translate.disconnected_event(sid)))
        # ...and not after these: WhatsApp's or the phone's decisions.
        client.event(ev.LoggedOutEv)(
            lambda _c, _e: self._emit_state("logged_out", translate.logged_out_event(sid)))
        client.event(ev.StreamReplacedEv)(lambda _c, _e: self._emit_state(
            "failed", translate.failed_event(sid, base.STREAM_REPLACED)))
        client.event(ev.ClientOutdatedEv)(lambda _c, _e: self._emit_state(
            "failed", translate.failed_event(sid, base.CLIENT_OUTDATED)))
        client.event(ev.TemporaryBanEv)(
            lambda _c, e: self._emit_state("failed", translate.temporary_ban_event(sid, e)))
        client.event(ev.ConnectFailureEv)(self._on_connect_failure)
        client.event(ev.MessageEv)(self._on_message)
        client.event(ev.ReceiptEv)(self._on_receipt)
        client.event(ev.GroupInfoEv)(self._on_group_info)

    _STATE_OF_EVENT = {base.LOGGED_OUT: "logged_out", base.FAILED: "failed",
                       base.DISCONNECTED: "disconnected"}

    def _on_connect_failure(self, _client, failure) -> None:
        logger.warning("session %s: WhatsApp refused the connection: %s (%s)", self.session_id,
                       failure.Message, failure.Reason)
        event = translate.connect_failure_event(self.session_id, failure)
        self._emit_state(self._STATE_OF_EVENT[event.type], event)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def _emit_state(self, state: str, event: EngineEvent) -> None:
        if self.final:
            return  # a logged-out or replaced session reports nothing after its end
        self.state = state
        self.publish(event)
        self.notify(state, self.device_jid)

    def _on_qr(self, _client, code: bytes) -> None:
        self.state = "qr_pending"
        self.publish(EngineEvent(base.QR, self.session_id, {"code": code.decode()}))
        self.notify(self.state, None)
        if self.phone_number_for_pairing and not self._pairing_requested:
            # whatsmeow can pair by phone number only once its QR flow has started.
            self._pairing_requested = True
            try:
                pairing = self.client.PairPhone(self.phone_number_for_pairing, True)
                self.publish(EngineEvent(base.PAIRING_CODE, self.session_id, {"code": pairing}))
            except Exception as error:  # a bad number: the QR code still works
                logger.warning("pairing code for %s failed: %s", self.session_id, error)

    def _on_pair_status(self, _client, event) -> None:
        if event.Error:
            logger.warning("session %s: pairing failed: %s", self.session_id, event.Error)
            self._emit_state("failed", translate.failed_event(
                self.session_id, base.ENGINE_ERROR, " Pairing with the phone failed."))
            return
        self.phone = event.ID.User
        self.device_jid = f"{event.ID.User}:{event.ID.Device}@{event.ID.Server}"
        self.publish(EngineEvent(base.PAIRED, self.session_id,
                                 {"phoneNumber": self.phone, "deviceJid": self.device_jid}))
        self.notify(self.state, self.device_jid)

    def _on_connected(self, _client, _event) -> None:
        if self.phone is None:
            try:  # safe only once connected (before, whatsmeow panics)
                self.phone = self.client.get_me().JID.User
            except Exception:
                logger.warning("could not read the phone number of %s", self.session_id)
        data = {"phoneNumber": self.phone}
        if self.device_jid:
            data["deviceJid"] = self.device_jid
        self._emit_state("connected", EngineEvent(base.CONNECTED, self.session_id, data))

    def _on_message(self, _client, message) -> None:
        if message.Info.MessageSource.IsFromMe:
            return
        who = self._with_stored_number(translate.message_sender(message))
        event = translate.message_event(self.session_id, message, who)
        if event is None:
            return
        identities = translate.identity_events(self.session_id, [who])
        if (event.type != base.MESSAGE_RECEIVED or event.data["type"] not in translate.MEDIA_TYPES
                or self.media_sink is None):
            self.publish(*identities, event)
            return
        if identities:
            self.publish(*identities)
        try:
            data = self.client.download_any(message.Message)
        except Exception as error:  # expired on WhatsApp's side, network: say so, keep the text
            event.data["mediaError"] = f"the file could not be downloaded: {error}"
            self.publish(event)
            return
        self.media_sink(event, data)

    def _with_stored_number(self, who: dict) -> dict:
        """A person behind a hidden id, with their number if whatsmeow's LID store has it."""
        if who["lid"] and not who["phoneNumber"]:
            number = self._stored_identity(lid=who["lid"])["phoneNumber"]
            if number:
                return {**who, "phoneNumber": number}
        return who

    def _stored_identity(self, *, lid: str | None = None, phone_number: str | None = None
                         ) -> dict:
        try:
            if lid is not None:
                found = self.client.get_pn_from_lid(jid_of(lid))
                return {"lid": lid, "phoneNumber": found.User or None}
            found = self.client.get_lid_from_pn(jid_of(phone_number))
            return {"lid": translate.jid_text(found) if found.User else None,
                    "phoneNumber": phone_number}
        except Exception as error:  # not in the store, or the store failed: not known
            logger.info("session %s: no stored identity for %s: %s", self.session_id,
                        lid or phone_number, error)
            return {"lid": lid, "phoneNumber": phone_number}

    def _on_group_info(self, _client, event) -> None:
        events = translate.group_participants_events(self.session_id, event)
        if events:
            self.publish(*events)

    def _on_receipt(self, _client, receipt) -> None:
        events = translate.receipt_events(self.session_id, receipt, self.message_ids)
        if events:
            self.publish(*events)

    # --- commands ---
    def _require_connected(self) -> None:
        if self.state != "connected":
            raise EngineUnavailable(f"the session is {self.state}")

    def _send(self, message_id: str, to: str, build, reply_to: dict | None = None
              ) -> SentMessage:
        self._require_connected()
        with self._lock:  # one send of a message at a time, recorded before the next
            known = self.ledger.begin(message_id)
            if known:
                return SentMessage(whatsapp_id=known)
            try:
                response = self.client.send_message(
                    jid_of(to), self._quoting(build(), to, Quote.from_dict(reply_to)))
            except Exception as error:
                self.ledger.abort(message_id)  # WhatsApp did not take it: a retry may send
                text = str(error)
                logger.warning("session %s: sending %s failed: %s", self.session_id,
                               message_id, text)
                if any(marker in text.lower() for marker in _PERMANENT):
                    raise SendRejected(f"WhatsApp refused the message: {text}") from error
                raise EngineUnavailable(f"sending failed: {text}") from error
            whatsapp_id = response.ID
            self.ledger.done(message_id, whatsapp_id)
            self.message_ids[whatsapp_id] = message_id
        self.publish(EngineEvent(base.RECEIPT, self.session_id, {
            "messageId": message_id, "whatsappId": whatsapp_id, "status": "sent"}))
        return SentMessage(whatsapp_id=whatsapp_id)

    def _quoting(self, built, chat: str, quote: Quote | None):
        """The message built, quoting `quote` if it replies to one, with neonize's own
        builder: it takes what the message holds (the text, or the one content field set)."""
        if quote is None:
            return built
        from neonize.proto import Neonize_pb2 as N
        from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

        content = built if isinstance(built, str) else built.ListFields()[0][1]
        quoted = N.Message(
            Info=N.MessageInfo(ID=quote.whatsapp_id, MessageSource=N.MessageSource(
                Chat=jid_of(chat), Sender=jid_of(quote.sender), IsFromMe=quote.from_me,
                IsGroup=chat.endswith("@g.us"))),
            Message=E2E.Message(conversation=quote.text))
        return self.client.build_reply_message(content, quoted=quoted)

    def send_text(self, *, message_id: str, to: str, text: str,
                  reply_to: dict | None = None) -> SentMessage:
        return self._send(message_id, to, lambda: text, reply_to)

    def send_media(self, *, message_id: str, to: str, kind: str, data: bytes, mime_type: str,
                   filename: str | None, caption: str | None,
                   reply_to: dict | None = None) -> SentMessage:
        def build():
            builders = {
                "image": lambda: self.client.build_image_message(data, caption=caption),
                "video": lambda: self.client.build_video_message(data, caption=caption),
                "audio": lambda: self.client.build_audio_message(data),
                "document": lambda: self.client.build_document_message(
                    data, filename=filename, caption=caption, mimetype=mime_type),
            }
            return builders[kind]()

        return self._send(message_id, to, build, reply_to)

    def send_location(self, *, message_id: str, to: str, latitude: float, longitude: float,
                      name: str | None, address: str | None,
                      reply_to: dict | None = None) -> SentMessage:
        from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

        return self._send(message_id, to, lambda: E2E.Message(locationMessage=E2E.LocationMessage(
            degreesLatitude=latitude, degreesLongitude=longitude, name=name or "",
            address=address or "")), reply_to)

    def send_contacts(self, *, message_id: str, to: str, contacts: list[dict],
                      reply_to: dict | None = None) -> SentMessage:
        from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

        def build():
            cards = [E2E.ContactMessage(displayName=card["name"], vcard=card["vcard"])
                     for card in contacts]
            if len(cards) == 1:
                return E2E.Message(contactMessage=cards[0])
            return E2E.Message(contactsArrayMessage=E2E.ContactsArrayMessage(
                displayName=f"{len(cards)} contacts", contacts=cards))

        return self._send(message_id, to, build, reply_to)

    def send_reaction(self, *, message_id: str, to: str, target: dict,
                      emoji: str) -> SentMessage:
        quote = Quote.from_dict(target)
        return self._send(message_id, to, lambda: self.client.build_reaction(
            jid_of(to), jid_of(quote.sender), quote.whatsapp_id, emoji))

    def send_edit(self, *, message_id: str, to: str, target_whatsapp_id: str,
                  text: str) -> SentMessage:
        from neonize.builder import build_edit
        from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

        return self._send(message_id, to, lambda: build_edit(
            jid_of(to), target_whatsapp_id, E2E.Message(conversation=text)))

    def send_revoke(self, *, message_id: str, to: str, target_whatsapp_id: str) -> SentMessage:
        # The session's own message: its sender is the session's own number.
        return self._send(message_id, to, lambda: self.client.build_revoke(
            jid_of(to), self.client.get_me().JID, target_whatsapp_id))

    def check_numbers(self, numbers: list[str]) -> dict[str, bool]:
        self._require_connected()
        answers = self.client.is_on_whatsapp(*[f"+{n}" for n in numbers])
        return {answer.Query.lstrip("+"): bool(answer.IsIn) for answer in answers}

    def send_chat_state(self, *, to: str, state: str) -> None:
        self._require_connected()
        from neonize.utils.enum import ChatPresence, ChatPresenceMedia

        presence = (ChatPresence.CHAT_PRESENCE_PAUSED if state == "paused"
                    else ChatPresence.CHAT_PRESENCE_COMPOSING)
        media = (ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO if state == "recording"
                 else ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)
        self.client.send_chat_presence(jid_of(to), presence, media)

    def mark_read(self, *, chat: str, whatsapp_ids: list[str], sender: str | None = None) -> None:
        self._require_connected()
        self.ledger.check_owner()
        from neonize.utils.enum import ReceiptType

        jid = jid_of(chat)
        self.client.mark_read(*whatsapp_ids, chat=jid, sender=jid_of(sender) if sender else jid,
                              receipt=ReceiptType.READ)

    # --- groups and identities ---
    def _group_command(self, what: str, command):
        """Run a group command of whatsmeow: "not in the group" is NotFound, the rest
        EngineUnavailable."""
        self._require_connected()
        try:
            return command()
        except Exception as error:
            text = str(error)
            if any(marker in text.lower() for marker in _NOT_MEMBER):
                raise NotFound(f"{what}: {text}") from error
            raise EngineUnavailable(f"{what} failed: {text}") from error

    def _group(self, info) -> dict:
        """A group as the interface shows it; what its members disclose is published."""
        group = translate.group_data(info)
        identities = translate.identity_events(self.session_id, group["participants"])
        if identities:
            self.publish(*identities)
        return group

    def list_groups(self) -> list[dict]:
        return [self._group(info) for info in
                self._group_command("listing groups", self.client.get_joined_groups)]

    def group_info(self, *, group_id: str) -> dict:
        return self._group(self._group_command(
            f"reading {group_id}", lambda: self.client.get_group_info(jid_of(group_id))))

    def create_group(self, *, subject: str, participants: list[str]) -> dict:
        self.ledger.check_owner()
        return self._group(self._group_command("creating a group", lambda: (
            self.client.create_group(subject, [jid_of(number) for number in participants]))))

    def update_group_participants(self, *, group_id: str, add: list[str],
                                  remove: list[str]) -> dict:
        self.ledger.check_owner()
        from neonize.utils.enum import ParticipantChange

        group = jid_of(group_id)
        for numbers, change in ((add, ParticipantChange.ADD), (remove, ParticipantChange.REMOVE)):
            if numbers:
                self._group_command(f"changing {group_id}", lambda n=numbers, c=change: (
                    self.client.update_group_participants(group, [jid_of(x) for x in n], c)))
        return self.group_info(group_id=group_id)

    def leave_group(self, *, group_id: str) -> None:
        self.ledger.check_owner()
        self._group_command(f"leaving {group_id}",
                            lambda: self.client.leave_group(jid_of(group_id)))

    def resolve_identity(self, *, lid: str | None = None,
                         phone_number: str | None = None) -> dict:
        self._require_connected()
        return self._stored_identity(lid=lid, phone_number=phone_number)

    def logout(self) -> None:
        self.ledger.check_owner()
        try:
            self.client.logout()
        finally:
            self._emit_state("logged_out", EngineEvent(base.LOGGED_OUT, self.session_id, {
                "reason": "Logged out by the service.", "code": base.LOGGED_OUT_BY_PHONE}))

    def state_name(self) -> str:
        return self.state

    def stop(self) -> None:
        self.client.disconnect()
        self.state = "stopped"
