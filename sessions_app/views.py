from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from accounts.scopes import MESSAGES_SEND, SESSIONS_READ, SESSIONS_WRITE
from api.errors import ApiError, E
from api.pagination import choice_filter, paginate
from api.phones import normalize_chat_id, normalize_group_id, normalize_phone_number
from api.schema import envelope, list_parameters
from api.serializers import (
    InputSerializer,
    StrictCharField,
    StrictIntegerField,
    StrictNumberField,
)
from api.views import ApiView, ok
from sessions_app.engines import get_simulator
from sessions_app.engines.base import CHAT_STATES, DISCONNECT_REASONS
from sessions_app.groups import (
    PARTICIPANTS_MAX,
    SUBJECT_MAX_CHARACTERS,
    group_create,
    group_data,
    group_get,
    group_leave,
    group_participants_change,
    group_summary,
    groups_list,
)
from sessions_app.models import SessionStatus
from sessions_app.qr import qr_png
from sessions_app.selectors import session_get, sessions_visible
from sessions_app.serializers import QrOutput, SessionOutput, qr_payload
from sessions_app.services import (
    session_after_engine_command,
    session_chat_state_send,
    session_create,
    session_delete,
    session_require_sendable,
    session_restart,
    session_scannable_qr,
    session_update,
    sessions_expire_overdue,
)


class SessionCreateInput(InputSerializer):
    name = StrictCharField(required=False, allow_blank=True, max_length=100, default="")
    phoneNumber = StrictCharField(required=False, help_text="log in by pairing code instead")

    def validate_phoneNumber(self, value: str) -> str:
        return normalize_phone_number(value, field="phoneNumber")


class SessionListCreateApi(ApiView):
    required_scopes = {"GET": SESSIONS_READ, "POST": SESSIONS_WRITE}
    error_codes = ("session_limit_reached", "invalid_phone_number")

    @extend_schema(
        operation_id="sessions_list", summary="List sessions (newest first)",
        parameters=list_parameters(OpenApiParameter("status", enum=SessionStatus.values)),
        responses=envelope(SessionOutput, many=True),
    )
    def get(self, request):
        sessions_expire_overdue(account_id=request.auth.account_id)
        page, next_cursor = paginate(
            request.query_params,
            sessions_visible(account_id=request.auth.account_id),
            filters={"status": choice_filter("status", "status", SessionStatus.values)},
        )
        return ok(SessionOutput(page, many=True).data, pagination={"nextCursor": next_cursor})

    @extend_schema(operation_id="sessions_create", summary="Create a session and get its QR code",
                   request=SessionCreateInput, responses={201: envelope(SessionOutput)})
    def post(self, request):
        data = self.validated(SessionCreateInput, request.data)
        session = session_create(
            account_id=request.auth.account_id,
            name=data["name"],
            phone_number=data.get("phoneNumber"),
        )
        return ok(SessionOutput(session).data, status=201)


# The longest pause a send policy may ask for between two sends.
MAX_INTERVAL_SECONDS = 3600


class SendPolicyInput(InputSerializer):
    minIntervalSeconds = StrictNumberField(required=False, allow_null=True,
                                           help_text=f"0 to {MAX_INTERVAL_SECONDS}")
    maxIntervalSeconds = StrictNumberField(required=False, allow_null=True,
                                           help_text=f"0 to {MAX_INTERVAL_SECONDS}")
    dailyLimit = StrictIntegerField(required=False, allow_null=True,
                                    help_text="sends per UTC day; null: no limit")

    def _interval(self, value: float | None, field: str) -> float | None:
        if value is not None and not 0 <= value <= MAX_INTERVAL_SECONDS:
            raise ApiError(E.invalid_parameter_value, field=f"sendPolicy.{field}",
                           reason=f"Must be from 0 to {MAX_INTERVAL_SECONDS} seconds.")
        return value

    def validate_minIntervalSeconds(self, value: float | None) -> float | None:
        return self._interval(value, "minIntervalSeconds")

    def validate_maxIntervalSeconds(self, value: float | None) -> float | None:
        return self._interval(value, "maxIntervalSeconds")

    def validate_dailyLimit(self, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ApiError(E.invalid_parameter_value, field="sendPolicy.dailyLimit",
                           reason="Must be at least 1, or null for no limit.")
        return value


class SessionUpdateInput(InputSerializer):
    name = StrictCharField(required=False, allow_blank=True, max_length=100)
    sendPolicy = SendPolicyInput(required=False)


class SessionDetailApi(ApiView):
    required_scopes = {"GET": SESSIONS_READ, "PATCH": SESSIONS_WRITE, "DELETE": SESSIONS_WRITE}
    error_codes = ("session_not_found", "invalid_parameter_value")

    @extend_schema(operation_id="sessions_update",
                   summary="Rename a session or change its send policy",
                   request=SessionUpdateInput, responses=envelope(SessionOutput))
    def patch(self, request, session_id: str):
        data = self.validated(SessionUpdateInput, request.data)
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session = session_update(session=session, name=data.get("name"),
                                 send_policy=data.get("sendPolicy"))
        return ok(SessionOutput(session).data)

    @extend_schema(operation_id="sessions_get", summary="Get a session",
                   responses=envelope(SessionOutput))
    def get(self, request, session_id: str):
        sessions_expire_overdue(account_id=request.auth.account_id)
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        return ok(SessionOutput(session).data)

    @extend_schema(operation_id="sessions_delete", summary="Log a session out and remove it",
                   responses={200: envelope(SessionOutput)})
    def delete(self, request, session_id: str):
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session_delete(session=session)
        session.refresh_from_db()
        return ok(SessionOutput(session).data)


class TypingInput(InputSerializer):
    to = StrictCharField(help_text="the chat: a number in international format, or a group id")
    state = StrictCharField(help_text="typing, recording or paused")

    def validate_to(self, value: str) -> str:
        return normalize_chat_id(value, field="to")

    def validate_state(self, value: str) -> str:
        if value not in CHAT_STATES:
            raise ApiError(E.invalid_parameter_value, field="state",
                           reason=f"Must be one of: {', '.join(CHAT_STATES)}.")
        return value


class TypingOutput(serializers.Serializer):
    sessionId = serializers.CharField()
    to = serializers.CharField()
    state = serializers.ChoiceField(choices=list(CHAT_STATES))


class SessionTypingApi(ApiView):
    """Shown at once on the contact's phone, until a message is sent or `paused`."""

    required_scopes = {"POST": MESSAGES_SEND}
    error_codes = ("session_not_found", "session_not_connected", "session_disconnected",
                   "invalid_phone_number", "invalid_parameter_value", "service_unavailable")

    @extend_schema(operation_id="sessions_typing", summary="Show typing or recording in a chat",
                   request=TypingInput, responses=envelope(TypingOutput))
    def post(self, request, session_id: str):
        data = self.validated(TypingInput, request.data)
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session_chat_state_send(session=session, to=data["to"], state=data["state"])
        return ok({"sessionId": session.id, "to": data["to"], "state": data["state"]})


class SessionRestartApi(ApiView):
    """Reconnect now: a stored login is resumed (no QR code), otherwise a new QR code comes."""

    required_scopes = {"POST": SESSIONS_WRITE}
    error_codes = ("session_not_found", "session_logged_out", "service_unavailable")

    @extend_schema(operation_id="sessions_restart", summary="Reconnect a session now",
                   request=None, responses=envelope(SessionOutput))
    def post(self, request, session_id: str):
        self.validated(InputSerializer, request.data or {})
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session = session_restart(session=session, reason="restarted through the API")
        return ok(SessionOutput(session).data)


class SessionQrApi(ApiView):
    required_scopes = {"GET": SESSIONS_READ}
    error_codes = ("session_not_found", "qr_code_expired", "session_starting",
                   "qr_code_unavailable", "invalid_request")

    @extend_schema(
        operation_id="sessions_qr", summary="The session's QR code (JSON, or ?format=png)",
        parameters=[OpenApiParameter("format", enum=["json", "png"])],
        responses={(200, "application/json"): envelope(QrOutput),
                   (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY,
                                                       description="with ?format=png")},
    )
    def get(self, request, session_id: str):
        fmt = request.query_params.get("format", "json")
        unknown = set(request.query_params) - {"format"}
        if unknown:
            raise ApiError(E.invalid_request, field=sorted(unknown)[0],
                           reason="Unknown query parameter.")
        if fmt not in ("json", "png"):
            raise ApiError(E.invalid_request, field="format", reason="Must be json or png.")
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session = session_scannable_qr(session=session)
        if fmt == "png":
            response = HttpResponse(qr_png(session.qr_code), content_type="image/png")
            response["Cache-Control"] = "no-store"
            return response
        return ok(qr_payload(session))


# --- the sandbox's controls: the simulated phone (only while the sandbox engine runs) -------


class ScanInput(InputSerializer):
    phoneNumber = StrictCharField(help_text="the number of the simulated phone that scans")

    def validate_phoneNumber(self, value: str) -> str:
        return normalize_phone_number(value, field="phoneNumber")


class SandboxScanApi(ApiView):
    """Answers once the effect is applied, so that a test can go on at once."""

    required_scopes = {"POST": SESSIONS_WRITE}
    error_codes = ("session_not_found", "qr_code_expired", "session_starting",
                   "qr_code_unavailable", "invalid_phone_number")

    @extend_schema(operation_id="sandbox_scan", summary="Sandbox: scan the session's QR code",
                   request=ScanInput, responses=envelope(SessionOutput))
    def post(self, request, session_id: str):
        data = self.validated(ScanInput, request.data)
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session_scannable_qr(session=session)
        get_simulator().scan(session.id, phone_number=data["phoneNumber"])
        applied = session_after_engine_command(
            session, until=lambda s: s.status == SessionStatus.CONNECTED)
        return ok(SessionOutput(applied).data)


class DisconnectInput(InputSerializer):
    reason = StrictCharField(
        default="network", required=False,
        help_text="network (reconnects by itself after SANDBOX_RECONNECT_SECONDS), or one "
                  "that ends the session: logged_out, stream_replaced, banned")

    def validate_reason(self, value: str) -> str:
        if value not in DISCONNECT_REASONS:
            raise serializers.ValidationError(
                f"Must be one of: {', '.join(DISCONNECT_REASONS)}.")
        return value


class SandboxDisconnectApi(ApiView):
    required_scopes = {"POST": SESSIONS_WRITE}
    error_codes = ("session_not_found", "session_not_connected", "session_disconnected",
                   "invalid_request")

    @extend_schema(operation_id="sandbox_disconnect",
                   summary="Sandbox: the connection drops, for a reason",
                   request=DisconnectInput, responses=envelope(SessionOutput))
    def post(self, request, session_id: str):
        data = self.validated(DisconnectInput, request.data or {})
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session_require_sendable(session=session, field=None)
        connected_at = session.status_changed_at
        get_simulator().disconnect(session.id, reason=data["reason"])
        applied = session_after_engine_command(
            session, until=lambda s: s.status_changed_at > connected_at)
        return ok(SessionOutput(applied).data)


# --- groups ------------------------------------------------------------------------------------


class GroupParticipantOutput(serializers.Serializer):
    id = serializers.CharField(help_text="WhatsApp's id of the member (may end in @lid)")
    phoneNumber = serializers.CharField(allow_null=True,
                                        help_text="null while WhatsApp withholds it")
    isAdmin = serializers.BooleanField()


class GroupOutput(serializers.Serializer):
    id = serializers.CharField(help_text="the group's id, ending in @g.us: a chatId")
    subject = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    participants = GroupParticipantOutput(many=True)

    def to_representation(self, group) -> dict:
        return group_data(group)


class GroupSummaryOutput(serializers.Serializer):
    id = serializers.CharField()
    subject = serializers.CharField()
    participantsCount = serializers.IntegerField()

    def to_representation(self, group) -> dict:
        return group_summary(group)


def _numbers(values: list[str], *, field: str) -> list[str]:
    """Numbers, each once, in the order given."""
    if len(values) > PARTICIPANTS_MAX:
        raise ApiError(E.invalid_parameter_value, field=field,
                       reason=f"{len(values)} numbers; at most {PARTICIPANTS_MAX}.")
    numbers = [normalize_phone_number(value, field=field) for value in values]
    return list(dict.fromkeys(numbers))


class GroupCreateInput(InputSerializer):
    subject = StrictCharField(max_length=SUBJECT_MAX_CHARACTERS,
                              help_text=f"1 to {SUBJECT_MAX_CHARACTERS} characters")
    participants = serializers.ListField(child=StrictCharField(), allow_empty=False,
                                         help_text="numbers, international format")

    def validate_participants(self, value: list[str]) -> list[str]:
        return _numbers(value, field="participants")


class GroupParticipantsInput(InputSerializer):
    add = serializers.ListField(child=StrictCharField(), required=False, default=list,
                                help_text="numbers to add")
    remove = serializers.ListField(child=StrictCharField(), required=False, default=list,
                                   help_text="numbers to remove")

    def validate_add(self, value: list[str]) -> list[str]:
        return _numbers(value, field="add")

    def validate_remove(self, value: list[str]) -> list[str]:
        return _numbers(value, field="remove")

    def validate(self, data: dict) -> dict:
        if not data["add"] and not data["remove"]:
            raise ApiError(E.missing_required_parameter, field="add",
                           reason="Give numbers to add, to remove, or both.")
        return data


GROUP_ERRORS = ("session_not_found", "session_not_connected", "session_disconnected",
                "service_unavailable")


class SessionGroupListCreateApi(ApiView):
    """Read from WhatsApp while the session is connected; otherwise as last known."""

    required_scopes = {"GET": SESSIONS_READ, "POST": SESSIONS_WRITE}
    error_codes = (*GROUP_ERRORS, "invalid_phone_number", "invalid_parameter_value")

    @extend_schema(operation_id="groups_list", summary="The session's groups",
                   parameters=list_parameters(),
                   responses=envelope(GroupSummaryOutput, many=True))
    def get(self, request, session_id: str):
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        page, next_cursor = paginate(request.query_params, groups_list(session=session),
                                     key_field="group_id")
        return ok(GroupSummaryOutput(page, many=True).data,
                  pagination={"nextCursor": next_cursor})

    @extend_schema(operation_id="groups_create", summary="Create a group",
                   request=GroupCreateInput, responses={201: envelope(GroupOutput)})
    def post(self, request, session_id: str):
        data = self.validated(GroupCreateInput, request.data)
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        group = group_create(session=session, subject=data["subject"],
                             participants=data["participants"])
        return ok(GroupOutput(group).data, status=201)


class SessionGroupDetailApi(ApiView):
    required_scopes = {"GET": SESSIONS_READ, "DELETE": SESSIONS_WRITE}
    error_codes = (*GROUP_ERRORS, "group_not_found", "invalid_parameter_value")

    @extend_schema(operation_id="groups_get", summary="A group and its members",
                   responses=envelope(GroupOutput))
    def get(self, request, session_id: str, group_id: str):
        group_id = normalize_group_id(group_id, field="groupId")
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        return ok(GroupOutput(group_get(session=session, group_id=group_id)).data)

    @extend_schema(operation_id="groups_leave", summary="Leave a group",
                   responses=envelope(GroupOutput))
    def delete(self, request, session_id: str, group_id: str):
        group_id = normalize_group_id(group_id, field="groupId")
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        return ok(GroupOutput(group_leave(session=session, group_id=group_id)).data)


class SessionGroupParticipantsApi(ApiView):
    """`group.participants` events follow for each change WhatsApp made."""

    required_scopes = {"POST": SESSIONS_WRITE}
    error_codes = (*GROUP_ERRORS, "group_not_found", "invalid_phone_number",
                   "invalid_parameter_value", "missing_required_parameter")

    @extend_schema(operation_id="groups_participants", summary="Add or remove members",
                   request=GroupParticipantsInput, responses=envelope(GroupOutput))
    def post(self, request, session_id: str, group_id: str):
        group_id = normalize_group_id(group_id, field="groupId")
        data = self.validated(GroupParticipantsInput, request.data)
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        group = group_participants_change(session=session, group_id=group_id,
                                          add=data["add"], remove=data["remove"])
        return ok(GroupOutput(group).data)
