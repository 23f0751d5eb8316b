from django.urls import path

from sessions_app import views
from sessions_app.engines import engine_urlpatterns

urlpatterns = [
    path("sessions", views.SessionListCreateApi.as_view(), name="sessions"),
    path("sessions/<str:session_id>", views.SessionDetailApi.as_view(), name="session"),
    path("sessions/<str:session_id>/qr", views.SessionQrApi.as_view(), name="session-qr"),
    *engine_urlpatterns(),
]
