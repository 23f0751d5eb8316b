from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as service_urlpatterns


class BareApi(APIView):
    """The ceiling: a DRF view that only parses a small JSON body and answers JSON."""

    authentication_classes: list = []
    permission_classes: list = []

    def post(self, request):
        return Response({"success": True, "data": {"echo": len(request.data)}}, status=201)


# Under /v1, so that it passes through the same middlewares as the API's requests.
urlpatterns = [path("v1/bench/bare", BareApi.as_view()), *service_urlpatterns]
