"""URL configuration: the staff console (/admin/), the tenant API (/api/v1/), health, metrics and the JWKS."""

from django.conf import settings
from django.contrib import admin
from django.urls import path

from api.api import api
from config.views import favicon, healthz
from metrics.views import metrics
from staff import views as staff_views
from vault.views import jwks

admin.site.site_header = "Flows Console"
admin.site.site_title = "Flows Console"
admin.site.index_title = "Staff console"
admin.site.site_url = None  # there is no public site: no "View site" link
# Error pages in the console's look (the API answers problem details: api/middleware.py).
handler403 = "config.views.permission_denied"
handler404 = "config.views.page_not_found"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Prometheus, with a bearer token (FLOWS_METRICS_TOKEN); absent without one (docs/monitoring.md).
    path("metrics", metrics, name="metrics"),
    path("api/v1/", api.urls),
]
# A tenant-only worker (FLOWS_TENANT_ONLY) has no console database: it serves no staff pages.
if not settings.FLOWS_TENANT_ONLY:
    urlpatterns += [
        # The one-time link of create_staff_user: a new staff user sets their own password here.
        path(
            "admin/password-set/<uidb64>/<token>/",
            staff_views.PasswordSetView.as_view(),
            name="staff_password_set",
        ),
        # Sign-in hardening (staff/views.py): staff-only pages, wrapped like every admin view.
        path("admin/mfa/enrol/", admin.site.admin_view(staff_views.mfa_enrol), name="staff_mfa_enrol"),
        path("admin/mfa/verify/", admin.site.admin_view(staff_views.mfa_verify), name="staff_mfa_verify"),
        path("admin/elevate/", admin.site.admin_view(staff_views.elevate), name="staff_elevate"),
        path("admin/", admin.site.urls),
        path(".well-known/jwks.json", jwks, name="jwks"),
        path("favicon.ico", favicon, name="favicon"),
    ]
