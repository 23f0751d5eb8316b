"""Output shapes of sessions, shared by the session views and the sandbox routes."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sessions_app.engines.base import SESSION_ERROR_CODES
from sessions_app.models import Session, SessionStatus
from sessions_app.qr import qr_data_url


class QrOutput(serializers.Serializer):
    code = serializers.CharField()
    image = serializers.CharField(help_text="data:image/png;base64,... of `code`")
    expiresAt = serializers.DateTimeField()


def qr_payload(session: Session) -> dict | None:
    if session.status != SessionStatus.QR_PENDING or not session.qr_code:
        return None
    return {
        "code": session.qr_code,
        "image": qr_data_url(session.qr_code),
        "expiresAt": QrOutput().fields["expiresAt"].to_representation(session.qr_expires_at),
    }


class SendPolicyOutput(serializers.Serializer):
    minIntervalSeconds = serializers.FloatField()
    maxIntervalSeconds = serializers.FloatField()
    dailyLimit = serializers.IntegerField(allow_null=True)


class SessionOutput(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=SessionStatus.choices)
    phoneNumber = serializers.CharField(source="phone_number", allow_null=True)
    # (the engine's own name of the session's device is not part of the API)
    qr = serializers.SerializerMethodField()
    pairingCode = serializers.SerializerMethodField()
    lastError = serializers.CharField(source="last_error", allow_null=True)
    lastErrorCode = serializers.ChoiceField(
        source="last_error_code", choices=SESSION_ERROR_CODES, allow_null=True,
        help_text="why the session is not connected (null when nothing went wrong)")
    reconnectAt = serializers.DateTimeField(
        source="reconnect_at", allow_null=True,
        help_text="when the service next tries to reconnect by itself, if it will")
    sendPolicy = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    connectedAt = serializers.DateTimeField(source="connected_at", allow_null=True)
    disconnectedAt = serializers.DateTimeField(source="disconnected_at", allow_null=True)

    @extend_schema_field(QrOutput(allow_null=True))
    def get_qr(self, session: Session) -> dict | None:
        return qr_payload(session)

    @extend_schema_field(SendPolicyOutput)
    def get_sendPolicy(self, session: Session) -> dict:
        return session.send_policy()

    @extend_schema_field({"type": "string", "nullable": True})
    def get_pairingCode(self, session: Session) -> str | None:
        if session.status == SessionStatus.QR_PENDING and session.pairing_code:
            return session.pairing_code
        return None

    def to_representation(self, session: Session) -> dict:
        data = super().to_representation(session)
        data["phoneNumber"] = data["phoneNumber"] or None
        data["lastError"] = data["lastError"] or None
        data["lastErrorCode"] = data["lastErrorCode"] or None
        return data
