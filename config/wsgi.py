"""WSGI entry point for gunicorn: `gunicorn config.wsgi`.

The vault's and the audit trail's checks run before the first request: a missing or malformed
master key ring or audit key stops the worker at boot with its precise message, instead of
failing on the first secret or the first write.
"""

import os

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

if errors := [message for message in checks.run_checks(tags=["vault", "audit"]) if message.is_serious()]:
    raise ImproperlyConfigured("; ".join(f"{error.id}: {error.msg}" for error in errors))
