"""Project-level views: the liveness/readiness probe, the browser's tab icon and the console's error pages."""

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

# Browsers ask every site for /favicon.ico: without it each console page costs a 404 in the server log
# and an error in the browser's console. A small SVG (a rounded square with an "F"), drawn here.
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="6" fill="#417690"/>'
    '<path d="M11 8h11v3.5h-7v3.5h6v3.5h-6V24h-4z" fill="#fff"/></svg>'
)


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


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request):
    return HttpResponse(FAVICON_SVG, content_type="image/svg+xml")


def _console_error(request, status: int, template: str):
    """An error page in the console's own look, with the signed-in user's links (the admin's context)."""
    from django.contrib import admin  # noqa: PLC0415 - the admin site is set up by the URLconf

    if settings.FLOWS_TENANT_ONLY:  # no console here: no admin pages to link to, no console database
        return HttpResponse(status=status)
    context = admin.site.each_context(request) if hasattr(request, "user") else {}
    return HttpResponse(render_to_string(template, context, request=request), status=status)


def permission_denied(request, exception=None):
    """403: the page exists but this staff member may not see or do it (handler403)."""
    return _console_error(request, 403, "403.html")


def page_not_found(request, exception=None):
    """404: no such page, or a row of a client this staff member may not see (handler404)."""
    return _console_error(request, 404, "404.html")


def csrf_failure(request, reason=""):
    """403 for a form sent without its CSRF token (an expired page, cookies off): said in the console's look."""
    return _console_error(request, 403, "403_csrf.html")
