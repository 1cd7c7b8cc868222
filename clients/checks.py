"""System checks: the database's roles, grants and RLS policies match `clients.dbroles` (run with --database)."""

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.db import DatabaseError


@register(Tags.database)
def check_row_level_security(app_configs=None, databases=None, **kwargs):
    if not databases or settings.CONSOLE_DB_ALIAS not in databases:
        return []
    from clients import dbroles  # noqa: PLC0415 - needs the app registry

    try:
        problems = dbroles.verify()
    except DatabaseError as exc:
        return [Error(f"cannot verify row level security: {exc.__class__.__name__}", id="clients.E002")]
    return [Error(problem, id="clients.E001") for problem in problems]
