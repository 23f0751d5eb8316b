import uuid

from django.db import connection
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.pipeline_floor import floor_id
from config.urls import urlpatterns as service_urlpatterns
from infra.redis import redis_client


class BareApi(APIView):
    """The ceiling: a DRF view that only parses a small JSON body and answers JSON."""

    authentication_classes: list = []
    permission_classes: list = []

    def post(self, request):
        return Response({"success": True, "data": {"echo": len(request.data)}}, status=201)


class DurableFloorApi(BareApi):
    """The floor under any endpoint that keeps what it accepts and holds a per-key rate and
    concurrency limit: the bare view plus the I/O the send endpoint cannot do without, one
    committed INSERT of the body and two Redis round trips (take a slot; give it back). No
    authentication, validation, quota or rendering beyond the bare view's."""

    def post(self, request):
        client = redis_client()  # the Redis client the service uses
        client.incr("bench:floor:slots")
        data = self.keep(request)
        client.decr("bench:floor:slots")
        return Response({"success": True, "data": data}, status=201)

    def keep(self, request) -> dict:
        with connection.cursor() as cursor:  # autocommit: one statement, one commit
            cursor.execute("INSERT INTO bench_accepted (id, account, body) VALUES (%s, %s, %s)",
                           [uuid.uuid4().hex, "bench", request.body.decode()])
        return {"echo": len(request.data)}


class QueueFloorApi(DurableFloorApi):
    """The durable floor keeping the body in the end-to-end floor's queue
    (`bench/pipeline_floor.py`), and answering the new message's id as a send does."""

    def keep(self, request) -> dict:
        message_id = floor_id("m")
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO floor_message (id, body) VALUES (%s, %s)",
                           [message_id, request.body.decode()])
        return {"id": message_id}


# Under /v1, so that they pass through the same middlewares as the API's requests.
urlpatterns = [path("v1/bench/bare", BareApi.as_view()),
               path("v1/bench/floor", DurableFloorApi.as_view()),
               path("v1/bench/floor-queue", QueueFloorApi.as_view()), *service_urlpatterns]
