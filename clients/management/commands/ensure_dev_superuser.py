"""manage.py ensure_dev_superuser: the development staff login that `make run` prints (DEBUG only)."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import record
from config.commands import FlowsCommand, Result, printable
from config.errors import Refused
from config.validation import invalid_input


class Command(FlowsCommand):
    help = "Create or reset the development superuser and print its login. Refused unless DEBUG is on."
    example = "manage.py ensure_dev_superuser --url http://127.0.0.1:8000/admin/"

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="Letters, digits and @ . + - _ (default admin).")
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/", help="The console's address, to print.")

    def run(self, **options):
        user_model = get_user_model()
        try:  # Django's own rules for a username: required, at most 150 characters, no spaces or control characters
            username = user_model._meta.get_field(user_model.USERNAME_FIELD).clean(options["username"], None)
        except ValidationError as error:
            raise invalid_input(ValidationError({"username": error.messages})) from None
        if not settings.DEBUG:
            raise Refused("ensure_dev_superuser runs only with DEBUG=true; use createsuperuser in production.")
        # The password lives in the git-ignored dev env file, so it stays the same across runs.
        password = os.environ.get("DEV_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
            user, created = user_model.objects.get_or_create(
                username=username, defaults={"is_staff": True, "is_superuser": True}
            )
            user.is_staff = user.is_superuser = user.is_active = True
            user.set_password(password)
            user.save()
            record(actor=self.actor, action="staff.user_created" if created else "staff.password_reset", target=user)
        text = f"\n  Flows Console: {printable(options['url'])}\n  Log in as: {user.username} / {password}\n"
        return Result({"username": user.username, "password": password, "url": options["url"]}, text)
