"""API keys: create (the key is shown once), revoke, roll."""

from datetime import UTC, datetime, time

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke, api_key_roll
from api.errors import ApiError, E
from dashboard.access import allow_methods, form_error_context, member_view, render_error
from dashboard.forms import OLD_KEY_GRACE, ApiKeyCreateForm, ApiKeyRollForm
from dashboard.results import result_keep, result_read


def _key(request: HttpRequest, key_id: str) -> ApiKey:
    key = ApiKey.objects.filter(account=request.account, pk=key_id).first()
    if key is None:  # another account's key looks exactly like a missing one
        raise ApiError(E.resource_not_found, reason="No such API key.")
    return key


def _show_once(request: HttpRequest, key: ApiKey, raw: str, *, rolled: ApiKey | None = None
               ) -> HttpResponse:
    """Redirect to the page that shows the new key, once (`dashboard.results`)."""
    token = result_keep(request, {"key_id": key.pk, "raw": raw,
                                  "rolled_id": rolled.pk if rolled else None})
    return redirect("dashboard:key_created", token=token)


@never_cache
@allow_methods("GET")
@member_view(owner_only=True)
def key_created(request: HttpRequest, token: str) -> HttpResponse:
    """The new key, shown once: a reload finds it gone (only its hash is kept)."""
    shown = result_read(request, token, once=True)
    keys = ApiKey.objects.filter(account=request.account)
    if shown is None or not keys.filter(pk=shown["key_id"]).exists():
        return render(request, "dashboard/key_created.html", {"nav": "keys", "gone": True},
                      status=410)
    return render(request, "dashboard/key_created.html", {
        "nav": "keys", "key": keys.get(pk=shown["key_id"]), "raw_key": shown["raw"],
        "rolled": keys.filter(pk=shown["rolled_id"]).first() if shown["rolled_id"] else None})


@never_cache
@member_view(owner_only=True)
def key_list(request: HttpRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        expires_on = form.cleaned_data["expires_on"]
        expires_at = (timezone.make_aware(datetime.combine(expires_on, time.min),
                                          UTC) if expires_on else None)
        key, raw = api_key_create(account=request.account, name=form.cleaned_data["name"],
                                  scopes=form.cleaned_data["scopes"], expires_at=expires_at)
        return _show_once(request, key, raw)
    keys = ApiKey.objects.filter(account=request.account).order_by("-created_at")
    return render(request, "dashboard/keys.html", {
        "nav": "keys", "form": form, "keys": keys, "roll_form": ApiKeyRollForm(),
        "error": form_error_context(form) if form.errors else None,
    }, status=400 if form.errors else 200)


@allow_methods("POST")
@member_view(owner_only=True)
def key_revoke(request: HttpRequest, key_id: str) -> HttpResponse:
    key = _key(request, key_id)
    api_key_revoke(api_key=key)
    return redirect("dashboard:keys")


@never_cache
@allow_methods("POST")
@member_view(owner_only=True)
def key_roll(request: HttpRequest, key_id: str) -> HttpResponse:
    key = _key(request, key_id)
    form = ApiKeyRollForm(request.POST)
    if not form.is_valid():
        return render_error(request, E.invalid_request, reason="Choose how long the old key "
                                                               "keeps working.")
    if key.is_revoked or key.is_expired:
        return render_error(request, E.invalid_request,
                            reason="A revoked or expired key cannot be rolled; create one.")
    new_key, raw = api_key_roll(
        api_key=key, old_key_valid_for=OLD_KEY_GRACE[form.cleaned_data["old_key_valid_for"]])
    key.refresh_from_db()
    return _show_once(request, new_key, raw, rolled=key)
