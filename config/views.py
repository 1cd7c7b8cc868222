"""Project-level views: the liveness/readiness probe."""

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    """200 when this worker's database role answers (the console role; the tenant role in a
    tenant-only worker); 503 otherwise. Says nothing about data."""
    alias = settings.TENANT_DB_ALIAS if settings.FLOWS_TENANT_ONLY else settings.CONSOLE_DB_ALIAS
    connection = connections[alias]
    try:
        connection.ensure_connection()
        # The driver's own cursor: the tenant alias's guard refuses statements outside a tenant
        # context, and this probe reads no data.
        with connection.wrap_database_errors:
            connection.connection.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
