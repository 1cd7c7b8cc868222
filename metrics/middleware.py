"""Request rate, latency and errors per door (admin, API, other): one histogram, kept by the outermost middleware."""

from __future__ import annotations

import time

from prometheus_client import Histogram

# Labels with a bounded set of values only: never the path (one series per URL would grow without
# bound), never the client (the business collector reports clients, with its own cardinality rule).
REQUEST_DURATION = Histogram(
    "flows_http_request_duration_seconds",
    "Time to answer an HTTP request, by door (admin, api, other), method and status class.",
    ["door", "method", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def door(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "other"


class RequestMetricsMiddleware:
    """First in MIDDLEWARE, so it times every other layer too; an exception that escapes them counts as a 5xx."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            REQUEST_DURATION.labels(
                door=door(request.path),
                method=request.method if request.method in METHODS else "other",
                status_class=f"{min(max(status // 100, 1), 5)}xx",
            ).observe(time.perf_counter() - started)
