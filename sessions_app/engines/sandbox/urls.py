from django.urls import path

from sessions_app.engines.sandbox import views

urlpatterns = [
    path("sandbox/sessions/<str:session_id>/scan", views.SandboxScanApi.as_view(),
         name="sandbox-scan"),
    path("sandbox/sessions/<str:session_id>/disconnect", views.SandboxDisconnectApi.as_view(),
         name="sandbox-disconnect"),
    path("sandbox/sessions/<str:session_id>/inbound", views.SandboxInboundApi.as_view(),
         name="sandbox-inbound"),
]
