"""manage.py reset_second_factor: a staff user lost their phone and their recovery codes; they enrol again."""

from config.commands import FlowsCommand, Result
from staff import services
from staff.selectors import get_staff_user


class Command(FlowsCommand):
    help = "Remove a staff user's authenticator and recovery codes; at their next sign-in they set up a new one."
    example = "manage.py reset_second_factor sam"

    def add_arguments(self, parser):
        parser.add_argument("user", help="The staff user's username.")

    def run(self, **options):
        user = get_staff_user(options["user"])
        changed = services.reset_second_factor(actor=self.actor, user=user)
        text = f"{user.username} sets up a new second factor at the next sign-in." if changed else "Nothing to reset."
        return Result({"username": user.username, "changed": changed}, text)
