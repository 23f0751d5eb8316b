from django.contrib.admin.apps import AdminConfig


class ServiceAdminConfig(AdminConfig):
    """Django's admin, with the service's admin site (console/admin_site.py)."""

    default_site = "console.admin_site.ServiceAdminSite"
