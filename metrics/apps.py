"""App configuration of the Prometheus endpoint (docs/monitoring.md)."""

import prometheus_client
from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics"

    def ready(self):
        # No `_created` series beside each counter and histogram: the text format Prometheus scrapes
        # turns each into one more series, and rate() needs none of them.
        prometheus_client.disable_created_metrics()
