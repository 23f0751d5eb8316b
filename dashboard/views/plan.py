"""The plan: limits, usage, and a request for another plan (decided by an operator)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.models import Plan, PlanChangeRequest
from accounts.selectors import account_usage
from accounts.services import MemberError, plan_change_request_create
from api.errors import CATALOGUE
from dashboard.access import (
    error_context,
    form_error_context,
    member_view,
    permission_error_context,
)
from dashboard.forms import PlanChangeForm


@member_view()
def plan(request: HttpRequest) -> HttpResponse:
    account = request.account
    form = PlanChangeForm(request.POST if request.method == "POST" else None, account=account)
    error = None
    if request.method == "POST":
        if not request.member.is_owner:
            error = permission_error_context(
                "Only the account's owners can request another plan.")
        elif not form.is_valid():
            error = form_error_context(form)
        else:
            try:
                plan_change_request_create(account=account, plan=form.cleaned_data["plan"],
                                           note=form.cleaned_data["note"], user=request.user)
            except MemberError as refused:
                error = error_context(CATALOGUE["invalid_request"], reason=str(refused))
            else:
                messages.success(request, "Your request was sent; an operator will answer it.")
                return redirect("dashboard:plan")
    return render(request, "dashboard/plan.html", {
        "error": error,
        "nav": "plan", "form": form, "usage": account_usage(account=account),
        "plans": Plan.objects.all(),
        "requests": PlanChangeRequest.objects.filter(account=account)
        .select_related("current_plan", "requested_plan")[:10],
    }, status=error["status"] if error else 200)
