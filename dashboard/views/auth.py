"""Signing in and out, password resets and invitation links."""

from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import SetPasswordForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from accounts.services import MemberError, invitation_accept, invitation_find
from accounts.sign_in import sign_in_attempts_exceeded
from api.errors import CATALOGUE
from dashboard.access import error_context, form_error_context
from dashboard.forms import SignInForm


def _too_many_attempts(request: HttpRequest, group: str, *, by_email: bool) -> bool:
    return sign_in_attempts_exceeded(request, group,
                                     email_field="username" if by_email else "email")


def _rate_limited_page(request: HttpRequest, template: str, form) -> HttpResponse:
    response = render(request, template, {
        "form": form, "error": error_context(
            CATALOGUE["rate_limit_exceeded"],
            reason="Too many attempts from here or for this email address; wait a minute."),
    }, status=429)
    response["Retry-After"] = "60"
    return response


class SignInView(auth_views.LoginView):
    template_name = "dashboard/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if _too_many_attempts(request, "dashboard-login", by_email=True):
            return _rate_limited_page(request, self.template_name,
                                      self.get_form_class()(request, data=request.POST))
        return super().post(request, *args, **kwargs)


class SignOutView(auth_views.LogoutView):
    next_page = reverse_lazy("dashboard:login")


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "dashboard/password_reset.html"
    email_template_name = "dashboard/email/password_reset.txt"
    subject_template_name = "dashboard/email/password_reset_subject.txt"
    success_url = reverse_lazy("dashboard:password_reset_done")

    def post(self, request, *args, **kwargs):
        if _too_many_attempts(request, "dashboard-reset", by_email=False):
            return _rate_limited_page(request, self.template_name,
                                      self.get_form_class()(data=request.POST))
        return super().post(request, *args, **kwargs)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "dashboard/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "dashboard/password_reset_confirm.html"
    success_url = reverse_lazy("dashboard:password_reset_complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "dashboard/password_reset_complete.html"


@never_cache
@csrf_protect
@sensitive_post_parameters("new_password1", "new_password2")
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_find(token=token)
    if invitation is None:
        return render(request, "dashboard/invitation.html", {
            "invalid": True,
            "error": error_context(CATALOGUE["resource_not_found"],
                                   reason="This invitation link is invalid, used or expired."),
        }, status=404)
    # SetPasswordForm validates against a user; the invited one does not exist yet.
    placeholder = get_user_model()(username=invitation.email, email=invitation.email)
    form = SetPasswordForm(placeholder,
                                request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            user = invitation_accept(token=token, password=form.cleaned_data["new_password1"])
        except MemberError as error:
            form.add_error(None, str(error))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("dashboard:overview")
    return render(request, "dashboard/invitation.html", {
        "form": form, "invitation": invitation,
        "error": form_error_context(form) if form.errors else None,
    }, status=400 if form.errors else 200)
