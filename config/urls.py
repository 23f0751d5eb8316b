from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.negotiation import DefaultContentNegotiation

from config import views
from config.metrics import metrics_view

# Django tries patterns in order: the busiest routes (sending and reading messages) come first.
v1 = [
    path("", include("messaging.urls")),
    path("health", views.HealthApi.as_view(), name="health"),
    # The schema and its docs page are open (no key), JSON unless ?format=yaml.
    path(
        "schema",
        SpectacularAPIView.as_view(
            authentication_classes=[],
            permission_classes=[],
            renderer_classes=[OpenApiJsonRenderer, OpenApiYamlRenderer],
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
    re_path(r"^.*$", views.api_route_not_found),
]

urlpatterns = [
    path("v1/", include(v1)),
    # A person opening the service's address lands on the customer dashboard.
    path("", RedirectView.as_view(pattern_name="dashboard:overview"), name="home"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    re_path(r"^v1$", views.api_route_not_found),
]

handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
