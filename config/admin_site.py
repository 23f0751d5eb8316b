"""The admin site: Django's, with an operator dashboard on its index page."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class ServiceAdminSite(admin.AdminSite):
    site_header = "WhatsApp API service"
    site_title = "WhatsApp API service admin"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        from config.dashboard import dashboard_context

        context = {**(extra_context or {}), "dashboard": dashboard_context()}
        return super().index(request, extra_context=context)


class ServiceAdminConfig(AdminConfig):
    default_site = "config.admin_site.ServiceAdminSite"
