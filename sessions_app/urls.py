from django.urls import path

from sessions_app import views
from sessions_app.engines import get_simulator

urlpatterns = [
    path("sessions", views.SessionListCreateApi.as_view(), name="sessions"),
    path("sessions/<str:session_id>", views.SessionDetailApi.as_view(), name="session"),
    path("sessions/<str:session_id>/restart", views.SessionRestartApi.as_view(),
         name="session-restart"),
    path("sessions/<str:session_id>/qr", views.SessionQrApi.as_view(), name="session-qr"),
    path("sessions/<str:session_id>/typing", views.SessionTypingApi.as_view(),
         name="session-typing"),
    path("sessions/<str:session_id>/groups", views.SessionGroupListCreateApi.as_view(),
         name="session-groups"),
    path("sessions/<str:session_id>/groups/<str:group_id>", views.SessionGroupDetailApi.as_view(),
         name="session-group"),
    path("sessions/<str:session_id>/groups/<str:group_id>/participants",
         views.SessionGroupParticipantsApi.as_view(), name="session-group-participants"),
]

if get_simulator() is not None:  # the sandbox's controls exist only while it runs
    urlpatterns += [
        path("sandbox/sessions/<str:session_id>/scan", views.SandboxScanApi.as_view(),
             name="sandbox-scan"),
        path("sandbox/sessions/<str:session_id>/disconnect",
             views.SandboxDisconnectApi.as_view(), name="sandbox-disconnect"),
    ]
