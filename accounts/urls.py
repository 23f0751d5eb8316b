from django.urls import path

from accounts import views

urlpatterns = [
    path("account", views.AccountDetailApi.as_view(), name="account"),
]
