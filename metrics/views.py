"""GET /metrics: the Prometheus exposition, behind a bearer token (FLOWS_METRICS_TOKEN); absent when no token is set."""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from metrics.collectors import DatabaseCollector, pool_metrics


class _Scrape:
    """What one scrape exposes: the request metrics of this process (or of every worker, in
    multi-process mode) and the figures read from the database now."""

    def __init__(self, *sources):
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source.collect()


class _PoolOnly:
    def collect(self):
        yield from pool_metrics()


def _process_metrics():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # gunicorn with several workers: each writes its request metrics to files in this directory,
        # and whichever worker answers the scrape sums them (docs/monitoring.md).
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _authorized(request) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    # Compared in constant time, as bytes (a str compare_digest refuses non-ASCII input).
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), settings.FLOWS_METRICS_TOKEN.encode()
    )


@never_cache
@require_GET
def metrics(request):
    """404 when FLOWS_METRICS_TOKEN is unset (the endpoint does not exist), 401 without the right bearer token."""
    if not settings.FLOWS_METRICS_TOKEN:
        raise Http404
    if not _authorized(request):
        response = HttpResponse(
            "A bearer token is needed (FLOWS_METRICS_TOKEN).\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # A tenant-only worker holds no console credentials: it reports its requests and pools only.
    database = _PoolOnly() if settings.FLOWS_TENANT_ONLY else DatabaseCollector()
    body = generate_latest(_Scrape(_process_metrics(), database))
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
