"""manage.py unlock_staff_user: lift a sign-in lockout (django-axes) by username or IP address, audited."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_ipv46_address

from config.commands import FlowsCommand, Result, UsageError
from config.validation import invalid_input
from staff import services
from staff.selectors import get_staff_user


class Command(FlowsCommand):
    help = "Clear the failed sign-ins that lock out a staff user (or, with --ip, an address)."
    example = "manage.py unlock_staff_user sam    |    manage.py unlock_staff_user --ip 203.0.113.7"

    def add_arguments(self, parser):
        parser.add_argument("user", nargs="?", help="The staff user's username.")
        parser.add_argument("--ip", help="An IP address locked out for failures across usernames.")

    def run(self, **options):
        if bool(options["user"]) == bool(options["ip"]):
            raise UsageError("name a user or --ip, not both")
        if options["ip"]:
            try:
                validate_ipv46_address(options["ip"])
            except ValidationError as error:
                raise invalid_input(ValidationError({"ip": error.messages})) from None
        user = get_staff_user(options["user"]) if options["user"] else None
        cleared = services.unlock(actor=self.actor, user=user, ip=options["ip"])
        subject = user.username if user else options["ip"]
        return Result(
            {"cleared": cleared, "unlocked": subject}, f"Unlocked {subject} ({cleared} failure records cleared)."
        )
