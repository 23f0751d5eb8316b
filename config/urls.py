from django.contrib import admin
from django.urls import include, path, re_path
from django.views import defaults
from django.views.generic import RedirectView
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.negotiation import DefaultContentNegotiation

from api.health import HealthApi
from api.middleware import is_api_path
from api.views import (
    api_bad_request,
    api_page_not_found,
    api_route_not_found,
    api_server_error,
)
from console.metrics import metrics_view
from dashboard.errors import dashboard_page_not_found, dashboard_server_error, is_dashboard_path

# Django tries patterns in order: the busiest routes (sending and reading messages) come first.
v1 = [
    path("", include("messaging.urls")),
    path("health", HealthApi.as_view(), name="health"),
    # The schema and its docs page are open (no key), JSON unless ?format=yaml.
    path(
        "schema",
        SpectacularAPIView.as_view(
            authentication_classes=[],
            permission_classes=[],
            # The OpenAPI media type, plain JSON (`Accept: application/json`), or YAML.
            renderer_classes=[OpenApiJsonRenderer, OpenApiJsonRenderer2, OpenApiYamlRenderer],
            content_negotiation_class=DefaultContentNegotiation,
        ),
        name="schema",
    ),
    path(
        "docs",
        SpectacularSwaggerView.as_view(
            url_name="schema",
            authentication_classes=[],
            permission_classes=[],
            content_negotiation_class=DefaultContentNegotiation,
        ),
        name="docs",
    ),
    path("", include("accounts.urls")),
    path("", include("sessions_app.urls")),
    path("", include("webhooks.urls")),
    # Anything else under /v1 is an unknown route, answered in the error envelope.
    re_path(r"^.*$", api_route_not_found),
]

urlpatterns = [
    path("v1/", include(v1)),
    # A person opening the service's address lands on the customer dashboard.
    path("", RedirectView.as_view(pattern_name="dashboard:overview"), name="home"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    re_path(r"^v1$", api_route_not_found),
]


# Django's own error pages, each part of the site in its own form: the API's envelope, the
# dashboard's page, Django's page for the rest (the admin).
def not_found(request, exception=None):
    if is_api_path(request.path):
        return api_page_not_found(request, exception)
    if is_dashboard_path(request.path):
        return dashboard_page_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    if is_api_path(request.path):
        return api_bad_request(request, exception)
    return defaults.bad_request(request, exception)


def server_error(request):
    if is_api_path(request.path):
        return api_server_error(request)
    if is_dashboard_path(request.path):
        return dashboard_server_error(request)
    return defaults.server_error(request)


handler400 = bad_request
handler404 = not_found
handler500 = server_error
