from django.urls import path

from webhooks import views

urlpatterns = [
    path("events", views.EventFeedApi.as_view(), name="events"),
    path("webhooks", views.WebhookListCreateApi.as_view(), name="webhooks"),
    path("webhooks/<str:webhook_id>", views.WebhookDetailApi.as_view(), name="webhook"),
    path("webhooks/<str:webhook_id>/test", views.WebhookTestApi.as_view(), name="webhook-test"),
    path("webhooks/<str:webhook_id>/deliveries", views.DeliveryListApi.as_view(),
         name="webhook-deliveries"),
    path("webhooks/<str:webhook_id>/deliveries/<str:delivery_id>",
         views.DeliveryDetailApi.as_view(), name="webhook-delivery"),
    path("webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/retry",
         views.DeliveryRetryApi.as_view(), name="webhook-delivery-retry"),
]
