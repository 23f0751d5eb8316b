"""The operators' console: Django's admin site with the operators' dashboard on its index, and
the service's state for Prometheus (`/metrics`)."""
