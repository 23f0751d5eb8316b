"""The admin site: Django's, with the operators' dashboard on its index page."""

from django.contrib import admin

from console.dashboard import dashboard_context


class ServiceAdminSite(admin.AdminSite):
    site_header = "WhatsApp API service"
    site_title = "WhatsApp API service admin"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        context = {**(extra_context or {}), "dashboard": dashboard_context()}
        return super().index(request, extra_context=context)

