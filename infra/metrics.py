"""Prometheus counters, incremented where things happen (requests, message statuses, webhook
attempts). With several processes (gunicorn workers, Celery) set PROMETHEUS_MULTIPROC_DIR to
one shared empty folder and prometheus-client adds them up. `/metrics` serves them
(console/metrics.py) with the gauges read from the database."""

from prometheus_client import Counter, Histogram

API_REQUESTS = Counter("wa_api_requests_total", "API responses",
                       ["method", "status", "code"])
API_LATENCY = Histogram("wa_api_request_seconds", "API response time",
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
MESSAGE_STATUS = Counter("wa_message_status_total", "Messages reaching a status", ["status"])
WEBHOOK_ATTEMPTS = Counter("wa_webhook_attempts_total", "Webhook delivery attempts",
                           ["outcome"])
