
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from accounts.scopes import MESSAGES_READ, MESSAGES_SEND, SESSIONS_READ, SESSIONS_WRITE
from api.errors import ApiError, E
from api.pagination import paginate
from api.phones import (
    is_group_id,
    normalize_chat_id,
    normalize_group_id,
    normalize_lid,
    normalize_phone_number,
)
from api.schema import envelope, list_parameters
from api.serializers import InputSerializer, StrictCharField, StrictNumberField, iso
from api.views import ApiView, ok
from infra.logging import current_request_id
from messaging.media import KINDS, MediaError, filename_from_url, media_probe
from messaging.models import Message
from messaging.selectors import chats_data, chats_of_session
from messaging.sender import session_next_send_at
from messaging.serializers import MessageOutput, message_data
from messaging.services import (
    CAPTION_MAX_CHARACTERS,
    TEXT_MAX_CHARACTERS,
    MediaSpec,
    contact_lookup,
    message_cancel,
    message_edit,
    message_mark_read,
    message_react,
    message_revoke,
    message_send,
)
from messaging.vcard import vcard
from sessions_app.engines import get_simulator
from sessions_app.groups import group_get
from sessions_app.selectors import session_get
from sessions_app.services import session_after_engine_command, session_require_sendable

CONTACTS_MAX = 10
SEND_ERRORS = ("session_not_found", "session_not_connected", "session_disconnected",
               "invalid_phone_number", "invalid_parameter_value", "recipient_not_on_whatsapp",
               "group_not_found",
               "daily_message_limit_reached", "idempotency_key_reused",
               "idempotency_key_in_use")


class _SendInput(InputSerializer):
    sessionId = StrictCharField()
    to = StrictCharField(help_text=(
        "the chat: a number (international format, digits, optional leading +), a group id "
        "(…@g.us) or a hidden id (…@lid)"))
    replyTo = StrictCharField(required=False,
                              help_text="the id of a message of this session and chat to quote")

    def validate_to(self, value: str) -> str:
        return normalize_chat_id(value, field="to")


class TextSendInput(_SendInput):
    text = StrictCharField(trim_whitespace=False,
                           help_text=f"1 to {TEXT_MAX_CHARACTERS} characters")

    def validate_text(self, value: str) -> str:
        if len(value) > TEXT_MAX_CHARACTERS:
            raise ApiError(E.message_too_long, field="text",
                           reason=f"{len(value)} characters; the limit is {TEXT_MAX_CHARACTERS}.")
        return value


class MediaSendInput(_SendInput):
    url = StrictCharField(max_length=2048)
    caption = StrictCharField(required=False, allow_blank=True, trim_whitespace=False,
                              help_text=f"up to {CAPTION_MAX_CHARACTERS} characters")
    filename = StrictCharField(required=False, allow_blank=True, max_length=255)

    def validate_caption(self, value: str) -> str:
        if len(value) > CAPTION_MAX_CHARACTERS:
            raise ApiError(
                E.message_too_long, field="caption",
                reason=f"{len(value)} characters; the limit is {CAPTION_MAX_CHARACTERS}.",
            )
        return value


def _within(value: float, limit: int, field: str) -> float:
    if not -limit <= value <= limit:
        raise ApiError(E.invalid_parameter_value, field=field,
                       reason=f"{value} is outside -{limit}..{limit}.")
    return value


class LocationFields(serializers.Serializer):
    """A location's fields (a send, or the sandbox's contact writing one)."""

    latitude = StrictNumberField(help_text="-90 to 90")
    longitude = StrictNumberField(help_text="-180 to 180")
    name = StrictCharField(required=False, allow_blank=True, max_length=256)
    address = StrictCharField(required=False, allow_blank=True, max_length=512)

    def validate_latitude(self, value: float) -> float:
        return _within(value, 90, "latitude")

    def validate_longitude(self, value: float) -> float:
        return _within(value, 180, "longitude")


def location_content(data: dict) -> dict:
    return {"latitude": data["latitude"], "longitude": data["longitude"],
            "name": data.get("name") or None, "address": data.get("address") or None}


class LocationSendInput(_SendInput, LocationFields):
    pass


class ContactInput(InputSerializer):
    name = StrictCharField(max_length=256)
    phoneNumber = StrictCharField()

    def validate_phoneNumber(self, value: str) -> str:
        return normalize_phone_number(value, field="contacts.phoneNumber")


class ContactFields(serializers.Serializer):
    contacts = serializers.ListField(child=ContactInput(), allow_empty=True,
                                     help_text=f"1 to {CONTACTS_MAX} contact cards")

    def validate_contacts(self, value: list[dict]) -> list[dict]:
        if not 1 <= len(value) <= CONTACTS_MAX:
            raise ApiError(E.invalid_parameter_value, field="contacts",
                           reason=f"{len(value)} contacts; between 1 and {CONTACTS_MAX}.")
        return value


def contacts_content(data: dict) -> list[dict]:
    return [{"name": card["name"], "phoneNumber": card["phoneNumber"],
             "vcard": vcard(card["name"], card["phoneNumber"])} for card in data["contacts"]]


class ContactSendInput(_SendInput, ContactFields):
    pass


class ReactionSendInput(InputSerializer):
    sessionId = StrictCharField()
    messageId = StrictCharField(help_text="the message reacted to, of this session")
    emoji = StrictCharField(allow_blank=True, trim_whitespace=False,
                            help_text='one emoji; "" takes the reaction back')

    def validate_emoji(self, value: str) -> str:
        return emoji_checked(value)


def emoji_checked(value: str) -> str:
    """An emoji (a few code points: skin tones and joiners make one of several), or `""`.
    Letters, digits, spaces and punctuation are not reactions."""
    if value and (len(value) > 16 or any(char.isascii() or char.isspace() for char in value)):
        raise ApiError(E.invalid_parameter_value, field="emoji",
                       reason="Must be one emoji, or empty to take the reaction back.")
    return value


class EditInput(InputSerializer):
    text = StrictCharField(trim_whitespace=False,
                           help_text=f"the new text, 1 to {TEXT_MAX_CHARACTERS} characters")

    validate_text = TextSendInput.validate_text


def _send_kwargs(request, data: dict) -> dict:
    return {"key": request.auth, "reply_to": data.get("replyTo"),
            "idempotency_key": request.headers.get("Idempotency-Key"),
            "request_id": current_request_id.get() or ""}


class MessageTextSendApi(ApiView):
    required_scopes = {"POST": MESSAGES_SEND}
    error_codes = (*SEND_ERRORS, "message_too_long")

    @extend_schema(operation_id="messages_send_text", summary="Send a text message",
                   request=TextSendInput, responses={201: envelope(MessageOutput)})
    def post(self, request):
        data = self.validated(TextSendInput, request.data)
        message = message_send(session_id=data["sessionId"], to=data["to"], type="text",
                               text=data["text"], **_send_kwargs(request, data))
        return ok(message_data(message), status=201)


class MessageMediaSendApi(ApiView):
    """POST /v1/messages/{image|video|document|audio}."""

    kind = ""
    required_scopes = {"POST": MESSAGES_SEND}
    error_codes = (*SEND_ERRORS, "message_too_long", "media_url_inaccessible",
                   "invalid_media_type", "media_size_exceeded")

    @extend_schema(request=MediaSendInput, responses={201: envelope(MessageOutput)})
    def post(self, request):
        data = self.validated(MediaSendInput, request.data)
        try:
            mime_type, size = media_probe(self.kind, data["url"])
        except MediaError as error:
            raise error.as_api_error() from error
        default_name = filename_from_url(data["url"]) if self.kind == "document" else ""
        media = MediaSpec(url=data["url"], mime_type=mime_type, size=size,
                          filename=data.get("filename") or default_name,
                          caption=data.get("caption", ""))
        message = message_send(session_id=data["sessionId"], to=data["to"], type=self.kind,
                               media=media, **_send_kwargs(request, data))
        return ok(message_data(message), status=201)


class MessageReactionSendApi(ApiView):
    required_scopes = {"POST": MESSAGES_SEND}
    error_codes = ("session_not_found", "session_not_connected", "session_disconnected",
                   "message_not_found", "invalid_parameter_value",
                   "daily_message_limit_reached", "idempotency_key_reused",
                   "idempotency_key_in_use")

    @extend_schema(operation_id="messages_send_reaction", summary="React to a message",
                   request=ReactionSendInput, responses={201: envelope(MessageOutput)})
    def post(self, request):
        data = self.validated(ReactionSendInput, request.data)
        message = message_react(key=request.auth, session_id=data["sessionId"],
                                message_id=data["messageId"], emoji=data["emoji"],
                                idempotency_key=request.headers.get("Idempotency-Key"),
                                request_id=current_request_id.get() or "")
        return ok(message_data(message), status=201)


class MessageLocationSendApi(ApiView):
    required_scopes = {"POST": MESSAGES_SEND}
    error_codes = (*SEND_ERRORS, "invalid_parameter_value")

    @extend_schema(operation_id="messages_send_location", summary="Send a location",
                   request=LocationSendInput, responses={201: envelope(MessageOutput)})
    def post(self, request):
        data = self.validated(LocationSendInput, request.data)
        message = message_send(session_id=data["sessionId"], to=data["to"], type="location",
                               content=location_content(data), **_send_kwargs(request, data))
        return ok(message_data(message), status=201)


class MessageContactSendApi(ApiView):
    required_scopes = {"POST": MESSAGES_SEND}
    error_codes = (*SEND_ERRORS, "invalid_parameter_value")

    @extend_schema(operation_id="messages_send_contact", summary="Send contact cards",
                   request=ContactSendInput, responses={201: envelope(MessageOutput)})
    def post(self, request):
        data = self.validated(ContactSendInput, request.data)
        message = message_send(session_id=data["sessionId"], to=data["to"], type="contact",
                               content=contacts_content(data), **_send_kwargs(request, data))
        return ok(message_data(message), status=201)


def _media_view(kind: str) -> type[MessageMediaSendApi]:
    """The endpoint of one kind, with an operation of its own in the schema."""
    view = type(f"Message{kind.title()}SendApi", (MessageMediaSendApi,), {"kind": kind})
    article = "an" if kind[0] in "aeiou" else "a"
    return extend_schema_view(post=extend_schema(
        operation_id=f"messages_send_{kind}", summary=f"Send {article} {kind} file by URL"))(view)


MEDIA_VIEWS = {kind: _media_view(kind) for kind in KINDS}

_STATUS_FILTER = {"queued": ["queued", "sending"], "sent": ["sent"], "delivered": ["delivered"],
                  "read": ["read"], "failed": ["failed"], "received": ["received"]}


def _status_filter(value: str) -> dict:
    if value not in _STATUS_FILTER:
        raise ApiError(E.invalid_request, field="status",
                       reason=f"Must be one of: {', '.join(_STATUS_FILTER)}.")
    return {"status__in": _STATUS_FILTER[value]}


def _direction_filter(value: str) -> dict:
    if value not in ("outbound", "inbound"):
        raise ApiError(E.invalid_request, field="direction",
                       reason="Must be outbound or inbound.")
    return {"direction": value}


class MessageListApi(ApiView):
    required_scopes = {"GET": MESSAGES_READ}
    error_codes = ("invalid_request",)

    @extend_schema(
        operation_id="messages_list", summary="List messages (newest first)",
        parameters=list_parameters(OpenApiParameter("sessionId", str),
                                   OpenApiParameter("chatId", str),
                                   OpenApiParameter("status", enum=list(_STATUS_FILTER)),
                                   OpenApiParameter("direction", enum=["outbound", "inbound"])),
        responses=envelope(MessageOutput, many=True),
    )
    def get(self, request):
        page, next_cursor = paginate(
            request.query_params,
            Message.objects.filter(account_id=request.auth.account_id),
            filters={"sessionId": lambda value: {"session_id": value},
                     "chatId": lambda value: {"chat_id": value},
                     "status": _status_filter, "direction": _direction_filter},
        )
        return ok(MessageOutput(page, many=True).data, pagination={"nextCursor": next_cursor})


class MessageDetailApi(ApiView):
    """A message: read it, edit it (PATCH) or delete it for everyone (DELETE). An edit or a
    deletion goes through the session's queue like a send: the answer is the queued action
    (202), and the message changes, with its event, once WhatsApp has taken it."""

    required_scopes = {"GET": MESSAGES_READ, "PATCH": MESSAGES_SEND, "DELETE": MESSAGES_SEND}
    error_codes = ("message_not_found", "message_not_editable", "message_not_revocable",
                   "message_too_long", "session_not_connected", "session_disconnected",
                   "daily_message_limit_reached")

    @extend_schema(operation_id="messages_edit", summary="Edit a sent text (within 15 min)",
                   request=EditInput, responses={202: envelope(MessageOutput)})
    def patch(self, request, message_id: str):
        data = self.validated(EditInput, request.data)
        action = message_edit(key=request.auth, message_id=message_id, text=data["text"],
                              request_id=current_request_id.get() or "")
        return ok(message_data(action), status=202)

    @extend_schema(operation_id="messages_revoke", summary="Delete a sent message for everyone",
                   request=None, responses={202: envelope(MessageOutput)})
    def delete(self, request, message_id: str):
        action = message_revoke(key=request.auth, message_id=message_id,
                                request_id=current_request_id.get() or "")
        return ok(message_data(action), status=202)

    @extend_schema(operation_id="messages_get", summary="Get a message",
                   responses=envelope(MessageOutput))
    def get(self, request, message_id: str):
        message = Message.objects.filter(account_id=request.auth.account_id,
                                         pk=message_id).first()
        if message is None:
            raise ApiError(E.message_not_found)
        return ok(message_data(message))


class MessageCancelApi(ApiView):
    required_scopes = {"POST": MESSAGES_SEND}
    error_codes = ("message_not_found", "message_not_cancelable")

    @extend_schema(operation_id="messages_cancel", summary="Cancel a message still queued",
                   request=None, responses=envelope(MessageOutput))
    def post(self, request, message_id: str):
        message = message_cancel(account_id=request.auth.account_id, message_id=message_id)
        return ok(message_data(message))


class SessionQueueApi(ApiView):
    """The session's outbound messages still to go, in the order they will go out."""

    required_scopes = {"GET": MESSAGES_READ}
    error_codes = ("session_not_found", "invalid_request")

    @extend_schema(operation_id="sessions_queue",
                   summary="A session's queue, in the order it goes out",
                   parameters=list_parameters(), responses=envelope(MessageOutput, many=True))
    def get(self, request, session_id: str):
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        page, next_cursor = paginate(
            request.query_params,
            Message.objects.filter(session=session, direction="outbound",
                                   status__in=("queued", "sending")),
            oldest_first=True)
        return ok(MessageOutput(page, many=True).data, pagination={"nextCursor": next_cursor},
                  nextSendAt=iso(session_next_send_at(session)))


class ContactLookupOutput(serializers.Serializer):
    id = serializers.CharField(allow_null=True, help_text="WhatsApp's id, when on WhatsApp")
    lid = serializers.CharField(allow_null=True, help_text="the hidden @lid id, when known")
    phoneNumber = serializers.CharField(allow_null=True,
                                        help_text="null for a hidden id whose number is unknown")
    onWhatsApp = serializers.BooleanField()
    name = serializers.CharField(allow_null=True, help_text="their push name, when known")


class SessionContactApi(ApiView):
    """Whether a number is on WhatsApp, asked of WhatsApp through the session; and the mapping
    between a person's hidden id (`…@lid`) and their number, when WhatsApp disclosed it."""

    required_scopes = {"GET": SESSIONS_READ}
    error_codes = ("session_not_found", "session_not_connected", "session_disconnected",
                   "invalid_phone_number", "invalid_parameter_value", "service_unavailable")

    @extend_schema(operation_id="sessions_contact",
                   summary="Is this number on WhatsApp? Whose is this hidden id?",
                   responses=envelope(ContactLookupOutput))
    def get(self, request, session_id: str, phone_or_id: str):
        address = normalize_chat_id(phone_or_id, field="phoneOrId")
        if is_group_id(address):
            raise ApiError(E.invalid_parameter_value, field="phoneOrId",
                           reason="A person's number or hidden id (…@lid), not a group's id.")
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        return ok(contact_lookup(session=session, address=address))


class ChatOutput(serializers.Serializer):
    chatId = serializers.CharField()
    isGroup = serializers.BooleanField()
    name = serializers.CharField(allow_null=True,
                                 help_text="the group's subject, or the contact's push name")
    lastMessage = MessageOutput(allow_null=True)
    unreadCount = serializers.IntegerField()


class ChatListApi(ApiView):
    """A session's chats, newest activity first."""

    required_scopes = {"GET": MESSAGES_READ}
    error_codes = ("session_not_found", "missing_required_parameter", "invalid_request")

    @extend_schema(operation_id="chats_list", summary="A session's chats, newest activity first",
                   parameters=list_parameters(OpenApiParameter("sessionId", str, required=True)),
                   responses=envelope(ChatOutput, many=True))
    def get(self, request):
        params = request.query_params.copy()
        session_id = params.pop("sessionId", [None])[-1]
        if not session_id:
            raise ApiError(E.missing_required_parameter, field="sessionId")
        session = session_get(account_id=request.auth.account_id, session_id=session_id,
                              field="sessionId")
        page, next_cursor = paginate(params, chats_of_session(session=session),
                                     key_field="last_message_id", newest_key_first=True)
        return ok(chats_data(page), pagination={"nextCursor": next_cursor})


class MessageReadApi(ApiView):
    required_scopes = {"POST": MESSAGES_SEND}
    error_codes = ("message_not_found", "invalid_request", "session_not_connected",
                   "session_disconnected", "service_unavailable")

    @extend_schema(operation_id="messages_read",
                   summary="Mark a received message (and the chat before it) read",
                   request=None, responses=envelope(MessageOutput))
    def post(self, request, message_id: str):
        self.validated(InputSerializer, request.data or {})
        message = message_mark_read(account_id=request.auth.account_id, message_id=message_id)
        return ok(message_data(message))


class MessageMediaDownloadApi(ApiView):
    """The file of an incoming media message, kept until MEDIA_RETENTION_DAYS."""

    required_scopes = {"GET": MESSAGES_READ}
    error_codes = ("message_not_found", "resource_not_found")

    @extend_schema(operation_id="messages_media", summary="Download an incoming media file",
                   responses={200: OpenApiResponse(description="the file itself")})
    def get(self, request, message_id: str):
        message = Message.objects.filter(account_id=request.auth.account_id,
                                         pk=message_id).first()
        if message is None:
            raise ApiError(E.message_not_found)
        if not message.media_file or not default_storage.exists(message.media_file):
            raise ApiError(E.resource_not_found,
                           reason="This message has no stored file (none, or past retention).")
        response = FileResponse(default_storage.open(message.media_file, "rb"),
                                content_type=message.media_mime_type or "application/octet-stream")
        response["Cache-Control"] = "private, no-store"
        return response


# --- the sandbox's controls: a contact writes (only while the sandbox engine runs) ----------


class InboundReactionInput(InputSerializer):
    messageId = StrictCharField()
    emoji = StrictCharField(allow_blank=True, trim_whitespace=False)

    def validate_emoji(self, value: str) -> str:
        return emoji_checked(value)


class InboundEditInput(InputSerializer):
    messageId = StrictCharField()
    text = StrictCharField(trim_whitespace=False)

    validate_text = TextSendInput.validate_text


class InboundRevokeInput(InputSerializer):
    messageId = StrictCharField()


INBOUND_ACTIONS = ("reaction", "edit", "revoke")
INBOUND_TYPES = {"text": ("text",), "location": ("latitude", "longitude", "name", "address"),
                 "contact": ("contacts",)}


class InboundInput(InputSerializer):
    """What the sandbox's contact writes: `type` and that type's fields."""

    replyTo = StrictCharField(required=False, help_text="the id of a message it quotes")
    whatsappId = StrictCharField(required=False, max_length=64, help_text=(
        "WhatsApp's id of the message: the same id again replays the same message"))
    reaction = InboundReactionInput(required=False, help_text="instead of a message")
    edit = InboundEditInput(required=False, help_text="instead of a message: its own")
    revoke = InboundRevokeInput(required=False, help_text="instead of a message: its own")
    type = StrictCharField(required=False,
                           help_text=f"one of {', '.join(INBOUND_TYPES)} (default text)")
    text = StrictCharField(trim_whitespace=False, required=False)
    chatId = StrictCharField(required=False, help_text=(
        "a group of the session (…@g.us) the contact is in: the message arrives there"))
    senderLid = StrictCharField(required=False, help_text=(
        "the contact writes under this hidden id (…@lid), its number withheld until it "
        "writes again without one"))

    def validate_chatId(self, value: str) -> str:
        return normalize_group_id(value, field="chatId")

    def validate_senderLid(self, value: str) -> str:
        return normalize_lid(value, field="senderLid")

    def get_fields(self) -> dict:
        fields = super().get_fields()
        fields["from"] = StrictCharField(help_text="the contact writing")  # a Python keyword
        # Each type's fields, required by `validate` for that type only.
        for name, field in {**LocationFields().get_fields(),
                            **ContactFields().get_fields()}.items():
            field.required = False
            fields[name] = field
        return fields

    def validate_text(self, value: str) -> str:
        if len(value) > TEXT_MAX_CHARACTERS:
            raise ApiError(E.message_too_long, field="text")
        return value

    def validate_type(self, value: str) -> str:
        if value not in INBOUND_TYPES:
            raise ApiError(E.invalid_request, field="type",
                           reason=f"Must be one of: {', '.join(INBOUND_TYPES)}.")
        return value

    validate_latitude = LocationFields.validate_latitude
    validate_longitude = LocationFields.validate_longitude
    validate_contacts = ContactFields.validate_contacts

    def validate(self, data: dict) -> dict:
        actions = [name for name in INBOUND_ACTIONS if name in data]
        if actions:
            others = [name for name in data if name not in ("from", *INBOUND_ACTIONS)]
            if len(actions) > 1 or others:
                raise ApiError(E.invalid_request, field=(actions[1:] or others)[0],
                               reason="A reaction, an edit or a deletion comes alone.")
            return data
        kind = data.setdefault("type", "text")
        for field in INBOUND_TYPES[kind]:
            if field not in data and field not in ("name", "address"):
                raise ApiError(E.missing_required_parameter, field=field,
                               reason=f"Required for a {kind} message.")
        for other, fields in INBOUND_TYPES.items():
            for field in fields:
                if other != kind and field in data:
                    raise ApiError(E.invalid_request, field=field,
                                   reason=f"Not a field of a {kind} message.")
        return data


class SandboxInboundApi(ApiView):
    """Answers with the message once it is stored, so that a test can go on at once."""

    required_scopes = {"POST": SESSIONS_WRITE}
    error_codes = ("session_not_found", "session_not_connected", "session_disconnected",
                   "invalid_phone_number", "message_too_long", "invalid_parameter_value",
                   "message_not_found", "group_not_found")

    @extend_schema(operation_id="sandbox_inbound",
                   summary="Sandbox: a contact sends the session a message",
                   request=InboundInput, responses={201: envelope(MessageOutput)})
    def post(self, request, session_id: str):
        data = self.validated(InboundInput, request.data)
        sender = normalize_phone_number(data["from"], field="from")
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session_require_sendable(session=session, field=None)
        action = next((name for name in INBOUND_ACTIONS if name in data), None)
        if action is not None:
            target = _inbound_action(session, sender, action, data[action])
            return ok(message_data(target))
        kind = data["type"]
        chat_id = data.get("chatId", "")
        if chat_id:
            group = group_get(session=session, group_id=chat_id)
            if sender not in {member["phoneNumber"] for member in group.participants}:
                raise ApiError(E.invalid_parameter_value, field="from",
                               reason="The contact is not a member of this group.")
        content = {"location": location_content, "contact": contacts_content,
                   "text": lambda data: None}[kind](data)
        quoted = ""
        if "replyTo" in data:
            quoted = (Message.objects.filter(session=session, pk=data["replyTo"])
                      .exclude(whatsapp_id="").values_list("whatsapp_id", flat=True).first())
            if quoted is None:
                raise ApiError(E.message_not_found, field="replyTo",
                               reason="No message of this session that WhatsApp knows has "
                                      "this id.")
        whatsapp_id = get_simulator().inbound(session.id, from_number=sender,
                                              text=data.get("text", ""), type=kind,
                                              content=content, reply_to_whatsapp_id=quoted,
                                              whatsapp_id=data.get("whatsappId", ""),
                                              chat_id=chat_id,
                                              sender_lid=data.get("senderLid", ""))
        stored = Message.objects.filter(session=session, direction="inbound",
                                        whatsapp_id=whatsapp_id)
        session_after_engine_command(session, until=lambda s: stored.exists())
        message = stored.first()
        if message is None:
            raise ApiError(E.service_unavailable, reason="The message was not stored in time.",
                           headers={"Retry-After": "1"})
        return ok(message_data(message), status=201)


def _inbound_action(session, sender: str, kind: str, fields: dict) -> Message:
    """The sandbox's contact acts on a message; answers it once the change shows."""
    target = (Message.objects.filter(session=session, pk=fields["messageId"])
              .exclude(whatsapp_id="").first())
    if target is None:
        raise ApiError(E.message_not_found, field=f"{kind}.messageId",
                       reason="No message of this session that WhatsApp knows has this id.")
    if kind != "reaction" and (target.direction != "inbound" or target.from_number != sender):
        raise ApiError(E.invalid_parameter_value, field=f"{kind}.messageId",
                       reason="A contact edits or deletes only its own messages.")
    emoji, text = fields.get("emoji", ""), fields.get("text", "")
    get_simulator().inbound_action(session.id, from_number=sender, kind=kind,
                                   whatsapp_id=target.whatsapp_id, emoji=emoji, text=text)

    def applied(_session) -> bool:
        now = Message.objects.get(pk=target.pk)
        if kind == "reaction":
            mine = [r["emoji"] for r in now.reactions or [] if r["senderId"] == sender]
            return mine == ([emoji] if emoji else [])
        return now.text == text if kind == "edit" else now.revoked_at is not None

    session_after_engine_command(session, until=applied)
    return Message.objects.get(pk=target.pk)
