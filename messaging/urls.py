from django.urls import path

from messaging import views
from sessions_app.engines import get_simulator

urlpatterns = [
    path("messages", views.MessageListApi.as_view(), name="messages"),
    path("messages/text", views.MessageTextSendApi.as_view(), name="messages-text"),
    path("messages/location", views.MessageLocationSendApi.as_view(), name="messages-location"),
    path("messages/contact", views.MessageContactSendApi.as_view(), name="messages-contact"),
    path("messages/reaction", views.MessageReactionSendApi.as_view(), name="messages-reaction"),
    *[path(f"messages/{kind}", view.as_view(), name=f"messages-{kind}")
      for kind, view in views.MEDIA_VIEWS.items()],
    path("messages/<str:message_id>", views.MessageDetailApi.as_view(), name="message"),
    path("messages/<str:message_id>/cancel", views.MessageCancelApi.as_view(),
         name="message-cancel"),
    path("messages/<str:message_id>/read", views.MessageReadApi.as_view(), name="message-read"),
    path("messages/<str:message_id>/media", views.MessageMediaDownloadApi.as_view(),
         name="message-media"),
]

urlpatterns += [
    path("sessions/<str:session_id>/queue", views.SessionQueueApi.as_view(),
         name="session-queue"),
    path("sessions/<str:session_id>/contacts/<str:phone_or_id>",
         views.SessionContactApi.as_view(), name="session-contact"),
    path("chats", views.ChatListApi.as_view(), name="chats"),
]

if get_simulator() is not None:  # the sandbox's controls exist only while it runs
    urlpatterns.append(path("sandbox/sessions/<str:session_id>/inbound",
                            views.SandboxInboundApi.as_view(), name="sandbox-inbound"))
