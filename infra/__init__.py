"""Infrastructure every part of the service stands on: ids, the database and Redis helpers,
Celery wake-ups, outbound HTTP behind the SSRF guard, logs and metrics. It knows nothing of
the API or of any app."""
