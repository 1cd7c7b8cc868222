from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """The console's dashboard (admin index) and the per-client monthly analytics; its only tables are the
    invitation summary the database keeps for the dashboard (reports/models.py)."""

    name = "reports"
    verbose_name = "Reports"
