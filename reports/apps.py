from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """The console's dashboard (admin index) and the per-client monthly analytics; read-only, no tables."""

    name = "reports"
    verbose_name = "Reports"
