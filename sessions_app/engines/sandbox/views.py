"""The sandbox's controls: act as the phone and as WhatsApp. They exist only while the sandbox
engine runs, need the session owner's key (`sessions:write`), and answer once their effect is
applied, so a test can go on at once."""

from drf_spectacular.utils import extend_schema

from accounts.scopes import SESSIONS_WRITE
from config.api import ApiView, InputSerializer, StrictCharField, ok
from config.errors import ApiError, E
from config.phones import normalize_phone_number
from config.schema import envelope
from messaging.serializers import MessageOutput, message_data
from sessions_app.engines import get_engine
from sessions_app.models import SessionStatus
from sessions_app.selectors import session_get
from sessions_app.serializers import SessionOutput
from sessions_app.services import (
    session_after_engine_command,
    session_require_sendable,
    session_scannable_qr,
)


class ScanInput(InputSerializer):
    phoneNumber = StrictCharField(help_text="the number of the simulated phone that scans")

    def validate_phoneNumber(self, value: str) -> str:
        return normalize_phone_number(value, field="phoneNumber")


class SandboxScanApi(ApiView):
    required_scopes = {"POST": SESSIONS_WRITE}
    error_codes = ("session_not_found", "qr_code_expired", "session_starting",
                   "qr_code_unavailable", "invalid_phone_number")

    @extend_schema(operation_id="sandbox_scan", summary="Sandbox: scan the session's QR code",
                   request=ScanInput, responses=envelope(SessionOutput))
    def post(self, request, session_id: str):
        data = self.validated(ScanInput, request.data)
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session_scannable_qr(session=session)
        get_engine().scan(session.id, phone_number=data["phoneNumber"])
        applied = session_after_engine_command(
            session, until=lambda s: s.status == SessionStatus.CONNECTED)
        return ok(SessionOutput(applied).data)


class SandboxDisconnectApi(ApiView):
    required_scopes = {"POST": SESSIONS_WRITE}
    error_codes = ("session_not_found", "session_not_connected", "session_disconnected")

    @extend_schema(operation_id="sandbox_disconnect",
                   summary="Sandbox: the phone loses its connection",
                   request=None, responses=envelope(SessionOutput))
    def post(self, request, session_id: str):
        self.validated(InputSerializer, request.data or {})
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session_require_sendable(session=session, field=None)
        get_engine().disconnect(session.id)
        applied = session_after_engine_command(
            session, until=lambda s: s.status == SessionStatus.DISCONNECTED)
        return ok(SessionOutput(applied).data)


class InboundInput(InputSerializer):
    text = StrictCharField(trim_whitespace=False)

    def validate_text(self, value: str) -> str:
        from messaging.services import TEXT_MAX_CHARACTERS

        if len(value) > TEXT_MAX_CHARACTERS:
            raise ApiError(E.message_too_long, field="text")
        return value


InboundInput._declared_fields["from"] = StrictCharField(help_text="the contact writing")


class SandboxInboundApi(ApiView):
    required_scopes = {"POST": SESSIONS_WRITE}
    error_codes = ("session_not_found", "session_not_connected", "session_disconnected",
                   "invalid_phone_number", "message_too_long")

    @extend_schema(operation_id="sandbox_inbound",
                   summary="Sandbox: a contact sends the session a text message",
                   request=InboundInput, responses={201: envelope(MessageOutput)})
    def post(self, request, session_id: str):
        from messaging.models import Message

        data = self.validated(InboundInput, request.data)
        sender = normalize_phone_number(data["from"], field="from")
        session = session_get(account_id=request.auth.account_id, session_id=session_id)
        session_require_sendable(session=session, field=None)
        whatsapp_id = get_engine().inbound(session.id, from_number=sender, text=data["text"])
        stored = Message.objects.filter(session=session, direction="inbound",
                                        whatsapp_id=whatsapp_id)
        session_after_engine_command(session, until=lambda s: stored.exists())
        message = stored.first()
        if message is None:
            raise ApiError(E.service_unavailable, reason="The message was not stored in time.",
                           headers={"Retry-After": "1"})
        return ok(message_data(message), status=201)
