"""The admin site: Django's, with the operators' dashboard on its index page."""

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.urls import path

from accounts.sign_in import sign_in_attempts_exceeded
from console.customer import customer_view
from console.dashboard import dashboard_context


class ServiceAdminSite(admin.AdminSite):
    site_header = "WhatsApp API service"
    site_title = "WhatsApp API service admin"
    index_title = "Dashboard"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        # Bulk delete skips the services (a session deleted so is never logged out, a message
        # never counted back) and one click takes thousands of rows: rows go through actions.
        self.disable_action("delete_selected")

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """Django's sign-in, with the dashboard's limits on guessing (staff see every
        tenant: their passwords are the ones most worth guessing)."""
        if request.method == "POST" and sign_in_attempts_exceeded(
                request, "admin-login", email_field="username"):
            messages.error(request, "Too many sign-in attempts from here or for this name; "
                                    "wait a minute.")
            request.method = "GET"  # show the form again, with the refusal, checking nothing
            response = super().login(request, extra_context=extra_context)
            response.status_code = 429
            response["Retry-After"] = "60"
            return response
        return super().login(request, extra_context=extra_context)

    def get_urls(self):
        return [path("customer/<str:account_id>/", self.admin_view(customer_view(self)),
                     name="customer"), *super().get_urls()]

    def index(self, request, extra_context=None):
        context = {**(extra_context or {}), "dashboard": dashboard_context()}
        return super().index(request, extra_context=context)

