"""Who may see a dashboard page: a signed-in customer user, through their membership, and
only their own account's objects. Errors are rendered from the catalogue, like the API's."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Membership
from api.errors import CATALOGUE, ApiError, ErrorCode

# The console's own words where the API's speak to a program (of API keys, parameters and
# API documentation) rather than to a person at a form: (message, what to do).
_PERMISSION_WORDS = ("You do not have access to this",
                     "Ask an owner of the account to do it, or to make you an owner.")
_FORM_WORDS = {
    "missing_required_parameter": ("Something required was left empty",
                                   "Fill in what is marked below and send the form again."),
    "invalid_request": ("Some of what was entered cannot be used",
                        "Correct what is marked below and send the form again."),
}


def error_context(error: ErrorCode | ApiError, reason: str | None = None, *,
                  words: tuple[str, str] | None = None) -> dict:
    """What a page shows for an error: the catalogue's message and troubleshooting text, or
    the console's own `words` for them; the code is shown either way."""
    if isinstance(error, ApiError):
        reason = reason or error.details.get("reason")
        entry = error.error
        message = error.message
    else:
        entry = error
        message = error.message
    troubleshooting = entry.troubleshooting
    if words is not None:
        message, troubleshooting = words
    return {"code": entry.code, "status": entry.status, "message": message,
            "troubleshooting": troubleshooting, "reason": reason}


def permission_error_context(reason: str) -> dict:
    return error_context(CATALOGUE["insufficient_permissions"], reason=reason,
                         words=_PERMISSION_WORDS)


def form_error_context(form) -> dict:
    """A form's errors, in plain words: something required was left empty
    (`missing_required_parameter`) or cannot be used (`invalid_request`), the fields' own
    messages as the reason (each is also shown next to its field)."""
    problems, missing = [], False
    for name, errors in form.errors.as_data().items():
        missing |= any(error.code == "required" for error in errors)
        texts = " ".join(message for error in errors for message in error.messages)
        label = form.fields[name].label if name in form.fields else None
        problems.append(f"{label or name.replace('_', ' ').capitalize()}: {texts}"
                        if name != "__all__" else texts)
    code = "missing_required_parameter" if missing else "invalid_request"
    return error_context(CATALOGUE[code], reason=" ".join(problems), words=_FORM_WORDS[code])


def render_error(request: HttpRequest, error: ErrorCode | ApiError | dict, *,
                 reason: str | None = None, status: int | None = None) -> HttpResponse:
    context = error if isinstance(error, dict) else error_context(error, reason)
    return render(request, "dashboard/error.html", {"error": context},
                  status=status or context["status"])


def allow_methods(*methods: str) -> Callable:
    """Like Django's require_http_methods, with the catalogue's `method_not_allowed` page."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                response = render_error(request, CATALOGUE["method_not_allowed"],
                                        reason=f"Use {' or '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def member_view(*, owner_only: bool = False) -> Callable:
    """Decorate a dashboard view: sign-in required, a customer membership required (operators
    use the admin), an active account, and an owner for `owner_only` pages. The view sees
    `request.member` and `request.account`; an ApiError it raises (an unknown or another
    account's id) is rendered as the catalogue's error page."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            member = (Membership.objects.select_related("account__plan")
                      .filter(user=request.user).first())
            if member is None:
                return render_error(request, permission_error_context(
                    "This sign-in belongs to no customer account."))
            if not member.account.is_active:
                return render_error(request, permission_error_context(
                    "This account is disabled; contact support."))
            if owner_only and not member.is_owner:
                return render_error(request, permission_error_context(
                    "Only the account's owners can do this."))
            request.member, request.account = member, member.account
            try:
                return view(request, *args, **kwargs)
            except ApiError as error:
                return render_error(request, error)

        return wrapper

    return decorate
