"""URL configuration: the staff console (/admin/), the tenant API (/api/v1/), the health endpoint and the JWKS."""

from django.conf import settings
from django.contrib import admin
from django.urls import path

from api.api import api
from config.views import healthz
from vault.views import jwks

admin.site.site_header = "Flows Console"
admin.site.site_title = "Flows Console"
admin.site.index_title = "Staff console"

urlpatterns = [path("healthz", healthz, name="healthz"), path("api/v1/", api.urls)]
# A tenant-only worker (FLOWS_TENANT_ONLY) has no console database: it serves no staff pages.
if not settings.FLOWS_TENANT_ONLY:
    urlpatterns += [
        path("admin/", admin.site.urls),
        path(".well-known/jwks.json", jwks, name="jwks"),
    ]
