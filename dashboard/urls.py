from django.urls import path

from dashboard.views import auth, keys, messages, overview, plan, sessions, webhooks

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("login/", auth.SignInView.as_view(), name="login"),
    path("logout/", auth.SignOutView.as_view(), name="logout"),
    path("password-reset/", auth.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth.PasswordResetDoneView.as_view(),
         name="password_reset_done"),
    path("password-reset/<uidb64>/<token>/", auth.PasswordResetConfirmView.as_view(),
         name="password_reset_confirm"),
    path("password-reset/done/", auth.PasswordResetCompleteView.as_view(),
         name="password_reset_complete"),
    path("invitation/<str:token>/", auth.invitation_accept_view, name="invitation"),
    path("keys/", keys.key_list, name="keys"),
    path("keys/<str:key_id>/revoke/", keys.key_revoke, name="key_revoke"),
    path("keys/<str:key_id>/roll/", keys.key_roll, name="key_roll"),
    path("sessions/", sessions.session_list, name="sessions"),
    path("sessions/<str:session_id>/", sessions.session_detail, name="session"),
    path("sessions/<str:session_id>/state/", sessions.session_state_json,
         name="session_state"),
    path("sessions/<str:session_id>/restart/", sessions.session_restart_view,
         name="session_restart"),
    path("sessions/<str:session_id>/delete/", sessions.session_delete_view,
         name="session_delete"),
    path("messages/", messages.message_list, name="messages"),
    path("messages/<str:message_id>/", messages.message_detail, name="message"),
    path("webhooks/", webhooks.webhook_list, name="webhooks"),
    path("webhooks/<str:webhook_id>/", webhooks.webhook_detail, name="webhook"),
    path("webhooks/<str:webhook_id>/test/", webhooks.webhook_test_view, name="webhook_test"),
    path("webhooks/<str:webhook_id>/enable/", webhooks.webhook_enable_view,
         name="webhook_enable"),
    path("webhooks/<str:webhook_id>/delete/", webhooks.webhook_delete_view,
         name="webhook_delete"),
    path("webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/",
         webhooks.delivery_detail, name="delivery"),
    path("webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/redeliver/",
         webhooks.delivery_redeliver, name="delivery_redeliver"),
    path("plan/", plan.plan, name="plan"),
]
