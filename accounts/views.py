from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from accounts.models import Account
from accounts.scopes import ACCOUNT_READ
from accounts.selectors import account_usage
from api.schema import envelope
from api.views import ApiView, ok


class PlanOutput(serializers.Serializer):
    name = serializers.CharField()
    maxSessions = serializers.IntegerField(source="max_sessions")
    dailyMessageLimit = serializers.IntegerField(source="daily_message_limit")
    rateLimitPerMinute = serializers.IntegerField(source="rate_limit_per_minute")
    maxConcurrentRequests = serializers.IntegerField(source="max_concurrent_requests")


class UsageOutput(serializers.Serializer):
    messagesToday = serializers.IntegerField()
    sessions = serializers.IntegerField(help_text="live sessions, counted against maxSessions")


class AccountOutput(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    plan = PlanOutput()
    usage = UsageOutput()
    createdAt = serializers.DateTimeField(source="created_at")


class AccountDetailApi(ApiView):
    required_scopes = {"GET": ACCOUNT_READ}

    @extend_schema(operation_id="account_get", summary="Your account: plan and today's usage",
                   responses=envelope(AccountOutput))
    def get(self, request):
        account = Account.objects.select_related("plan").get(pk=request.auth.account_id)
        account.usage = account_usage(account=account)
        return ok(AccountOutput(account).data)
