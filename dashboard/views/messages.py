"""Messages: search and filter, and one message's detail with its status timeline."""

from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from api.errors import CATALOGUE, E
from api.pagination import newest_first
from dashboard.access import form_error_context, member_view, render_error
from dashboard.forms import MessageFilterForm
from messaging.models import Message, MessageStatus
from sessions_app.selectors import sessions_visible

PAGE_SIZE = 50


def _search(queryset, q: str):
    digits = "".join(ch for ch in q if ch.isdigit())
    condition = Q(pk=q) | Q(text__icontains=q) | Q(caption__icontains=q)
    if digits and len(digits) >= 3:
        condition |= Q(to_number__contains=digits) | Q(from_number__contains=digits)
    return queryset.filter(condition)


@member_view()
def message_list(request: HttpRequest) -> HttpResponse:
    form = MessageFilterForm(request.GET or None)
    messages = Message.objects.filter(account=request.account).select_related("session")
    if form.is_valid():
        data = form.cleaned_data
        if data["q"].strip():
            messages = _search(messages, data["q"].strip())
        if data["status"] == MessageStatus.QUEUED:  # "sending" is internal: shown as queued
            messages = messages.filter(status__in=[MessageStatus.QUEUED, MessageStatus.SENDING])
        elif data["status"]:
            messages = messages.filter(status=data["status"])
        if data["direction"]:
            messages = messages.filter(direction=data["direction"])
        if data["session"]:
            messages = messages.filter(session_id=data["session"])
        if data["chat"]:
            messages = messages.filter(chat_id=data["chat"])
    page = Paginator(newest_first(messages), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "dashboard/messages.html", {
        "nav": "messages", "form": form, "page": page, "query": query.urlencode(),
        "sessions": sessions_visible(account_id=request.account.id),
        "error": form_error_context(form) if form.errors else None,
    }, status=400 if form.errors else 200)


@member_view()
def message_detail(request: HttpRequest, message_id: str) -> HttpResponse:
    message = (Message.objects.filter(account=request.account, pk=message_id)
               .select_related("session").first())
    if message is None:
        return render_error(request, E.message_not_found)
    return render(request, "dashboard/message.html", {
        "nav": "messages", "message": message,
        "history": message.history.all(),
        "error_entry": CATALOGUE.get(message.error_code),
    })
