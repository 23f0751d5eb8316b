"""A stand-in for neonize's NewClient that plays WhatsApp and the phone, and emits real
neonize event objects (the protobuf messages whatsmeow's events arrive as)."""

import itertools

from neonize import events as ev
from neonize.client import NewClient
from neonize.exc import GetGroupInfoError, SendMessageError
from neonize.proto import Neonize_pb2 as N
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E2E

_ids = itertools.count(1)


def _jid(user: str) -> N.JID:
    return N.JID(User=user, Server="s.whatsapp.net")


class _Events:
    def __init__(self) -> None:
        self.handlers = {}
        self.qr_handler = None

    def __call__(self, event_type):
        def register(handler):
            self.handlers[event_type] = handler
            return handler

        return register

    def qr(self, handler) -> None:
        self.qr_handler = handler


class FakeNeonizeClient(NewClient):
    """neonize's client with WhatsApp's side played here: what would reach WhatsApp (through
    the Go library) is overridden, and neonize's own message builders that do not (a reply's
    quote) run as they are."""

    def __init__(self, device: str | None = None) -> None:  # no Go client behind it
        self.event = _Events()
        self.me: str | None = None
        self.device = device  # a stored login: connect resumes it
        self.pending_receipts: list[N.Receipt] = []
        self.media: dict[str, bytes] = {}
        self.sent: list = []  # (to, the message as built), in order
        self.presences: list = []  # (chat, ChatPresence name, ChatPresenceMedia name)
        self.read_marks: list[tuple] = []
        self.groups: dict[str, N.GroupInfo] = {}  # by the group's user part
        self.lid_store: dict[str, str] = {}  # whatsmeow's LID store: hidden id's user -> number

    def _emit(self, event_type, event) -> None:
        self.event.handlers[event_type](self, event)

    # --- the neonize surface the runner uses ---
    def connect(self) -> None:
        if self.device:
            self.me = self.device.partition(":")[0]
            self._emit(ev.ConnectedEv, N.Connected(status=True))
            return
        self.event.qr_handler(self, b"2@fakeref,fakenoisekey,fakeidentitykey,fakeadvsecret")

    def PairPhone(self, phone: str, show_push_notification: bool) -> str:
        return "FAKE1234"

    def get_me(self) -> N.Device:
        if self.me is None:
            raise RuntimeError("not connected")  # the real library panics here
        return N.Device(JID=_jid(self.me))

    def send_message(self, to: N.JID, message) -> N.SendResponse:
        if to.User.endswith("0001"):
            raise SendMessageError("server returned error 406: not-acceptable")
        if to.Server == "g.us" and to.User not in self.groups:
            raise SendMessageError("failed to get group info: that group does not exist")
        whatsapp_id = f"3EB0FAKE{next(_ids):08d}"
        # Recorded as the API names the chat: a number's digits, else the full id.
        self.sent.append((to.User if to.Server == "s.whatsapp.net" else f"{to.User}@{to.Server}",
                          message))
        for kind in (1, 4):  # DELIVERED, READ: the recipient's phone answers later
            self.pending_receipts.append(N.Receipt(
                MessageSource=N.MessageSource(Chat=to, Sender=to),
                MessageIDs=[whatsapp_id], Type=kind))
        return N.SendResponse(ID=whatsapp_id)

    def build_image_message(self, data: bytes, caption: str | None = None) -> E2E.Message:
        return E2E.Message(imageMessage=E2E.ImageMessage(caption=caption or ""))

    build_video_message = build_image_message

    def build_audio_message(self, data: bytes) -> E2E.Message:
        return E2E.Message(audioMessage=E2E.AudioMessage())

    def build_document_message(self, data: bytes, filename=None, caption=None, mimetype=None):
        return E2E.Message(documentMessage=E2E.DocumentMessage(fileName=filename or ""))

    def build_reaction(self, chat, sender, message_id: str, reaction: str) -> E2E.Message:
        # whatsmeow's own (Go) builder in the real client: the key of the message reacted to.
        from neonize.proto.waCommon.WACommon_pb2 import MessageKey

        return E2E.Message(reactionMessage=E2E.ReactionMessage(
            key=MessageKey(ID=message_id, remoteJID=f"{chat.User}@{chat.Server}",
                           fromMe=sender.User == self.me),
            text=reaction))

    def is_on_whatsapp(self, *numbers: str) -> list[N.IsOnWhatsAppResponse]:
        return [N.IsOnWhatsAppResponse(Query=n, IsIn=not n.endswith("0000")) for n in numbers]

    def send_chat_presence(self, jid, state, media) -> None:
        self.presences.append((jid.User, state.name, media.name))

    def mark_read(self, *message_ids, chat, sender, receipt, timestamp=None) -> None:
        self.read_marks.append((message_ids, chat.User))

    # Groups and identities, as whatsmeow answers them.
    def get_joined_groups(self) -> list[N.GroupInfo]:
        return list(self.groups.values())

    def get_group_info(self, jid: N.JID) -> N.GroupInfo:
        if jid.User not in self.groups:
            raise GetGroupInfoError(
                "that group does not exist: info query returned status 404: item-not-found")
        return self.groups[jid.User]

    def create_group(self, name: str, participants: list[N.JID] = []) -> N.GroupInfo:  # noqa: B006
        user = f"1203630{next(_ids):011d}"
        info = N.GroupInfo(JID=N.JID(User=user, Server="g.us"), GroupName=N.GroupName(Name=name),
                           Participants=[N.GroupParticipant(JID=_jid(self.me),
                                                            IsSuperAdmin=True)])
        info.Participants.extend(N.GroupParticipant(JID=jid) for jid in participants
                                 if not jid.User.endswith("0000"))
        self.groups[user] = info
        return info

    def update_group_participants(self, jid: N.JID, participants_changes: list[N.JID],
                                  action) -> list[N.GroupParticipant]:
        info = self.get_group_info(jid)
        users = {jid.User for jid in participants_changes}
        if action.value == "add":
            info.Participants.extend(N.GroupParticipant(JID=jid) for jid in participants_changes
                                     if not jid.User.endswith("0000"))
        elif action.value == "remove":
            kept = [member for member in info.Participants if member.JID.User not in users]
            del info.Participants[:]
            info.Participants.extend(kept)
        return list(info.Participants)

    def leave_group(self, jid: N.JID) -> None:
        self.get_group_info(jid)
        del self.groups[jid.User]

    def get_pn_from_lid(self, jid: N.JID) -> N.JID:
        number = self.lid_store.get(jid.User)
        return _jid(number) if number else N.JID()

    def get_lid_from_pn(self, jid: N.JID) -> N.JID:
        lid = next((lid for lid, number in self.lid_store.items() if number == jid.User), None)
        return N.JID(User=lid, Server="lid") if lid else N.JID()

    def logout(self) -> None:
        self.me = None

    def disconnect(self) -> None:
        pass

    # --- the phone's side, for the harness ---
    def pair(self, phone: str) -> None:
        self._emit(ev.PairStatusEv, N.PairStatus(ID=N.JID(User=phone, Device=7,
                                                          Server="s.whatsapp.net")))
        self.me = phone
        self._emit(ev.ConnectedEv, N.Connected(status=True))

    def drop(self) -> None:
        self._emit(ev.DisconnectedEv, N.Disconnected(status=True))

    # WhatsApp's and the phone's decisions, as whatsmeow reports them.
    def end(self, reason: str) -> None:
        if reason == "logged_out":
            self._emit(ev.LoggedOutEv, N.LoggedOut(OnConnect=False, Reason=2))
        elif reason == "stream_replaced":
            self._emit(ev.StreamReplacedEv, N.StreamReplaced())
        elif reason == "banned":
            self._emit(ev.TemporaryBanEv, N.TemporaryBan(Code=1, Expire=3600))
        else:
            raise ValueError(reason)

    def keepalive(self, restored: bool) -> None:
        if restored:
            self._emit(ev.KeepAliveRestoredEv, N.KeepAliveRestored())
        else:
            self._emit(ev.KeepAliveTimeoutEv, N.KeepAliveTimeout(ErrorCount=1))

    def connect_failure(self, reason: int) -> None:
        self._emit(ev.ConnectFailureEv, N.ConnectFailure(Reason=reason, Message="refused"))

    def receive(self, sender: str, text: str) -> None:
        info = N.MessageInfo(ID=f"3EB0IN{next(_ids):08d}", Pushname="Contact",
                             MessageSource=N.MessageSource(Chat=_jid(sender),
                                                           Sender=_jid(sender), IsFromMe=False))
        self._emit(ev.MessageEv, N.Message(Info=info, Message=E2E.Message(conversation=text)))

    def receive_message(self, sender: str, message: E2E.Message) -> None:
        """Any message a contact sends, as WhatsApp's protobuf."""
        info = N.MessageInfo(ID=f"3EB0MSG{next(_ids):08d}", Pushname="Contact",
                             MessageSource=N.MessageSource(Chat=_jid(sender),
                                                           Sender=_jid(sender), IsFromMe=False))
        self.emit_message(info, message)

    def emit_message(self, info: N.MessageInfo, message: E2E.Message) -> None:
        """A message with the MessageInfo given as it is (a test's own source, sender...)."""
        self._emit(ev.MessageEv, N.Message(Info=info, Message=message))

    def group_changed(self, group_user: str, **changes: list[str]) -> None:
        """whatsmeow's GroupInfo event: `Join`, `Leave`, `Promote`, `Demote` each a list of
        numbers."""
        self._emit(ev.GroupInfoEv, N.GroupInfoEvent(
            JID=N.JID(User=group_user, Server="g.us"),
            **{field: [_jid(number) for number in numbers]
               for field, numbers in changes.items()}))

    def receive_image(self, sender: str, data: bytes, caption: str = "") -> None:
        info = N.MessageInfo(ID=f"3EB0IMG{next(_ids):08d}",
                             MessageSource=N.MessageSource(Chat=_jid(sender),
                                                           Sender=_jid(sender), IsFromMe=False))
        image = E2E.ImageMessage(caption=caption, mimetype="image/png")
        self.media[info.ID] = data
        self._emit(ev.MessageEv, N.Message(Info=info, Message=E2E.Message(imageMessage=image)))

    def download_any(self, message) -> bytes:
        # The fake keeps one file per message id; the real client fetches it from WhatsApp.
        return self.media.popitem()[1]

    def deliver_receipts(self) -> None:
        receipts, self.pending_receipts = self.pending_receipts, []
        for receipt in receipts:
            self._emit(ev.ReceiptEv, receipt)
