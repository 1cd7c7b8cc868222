"""manage.py create_staff_user: a staff user with a role and clients, who sets their own password through a link."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from clients.selectors import get_client
from config.commands import FlowsCommand, Result
from config.validation import invalid_input
from staff import services
from staff.roles import ROLE_NAMES
from staff.selectors import user_access


def password_set_link(user) -> str:
    """A one-time link: Django's reset token is bound to the password hash, so it stops working once used."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    path = reverse("staff_password_set", args=[uid, default_token_generator.make_token(user)])
    return f"{settings.FLOWS_CONSOLE_URL.rstrip('/')}{path}"


class Command(FlowsCommand):
    help = (
        "Create a staff user with a role (and the clients they work on) and print a one-time link to set their "
        "password. No password is ever given on the command line."
    )
    example = "manage.py create_staff_user sam --email sam@thepia.net --role Support --client acme --client globex"

    def add_arguments(self, parser):
        parser.add_argument("username", help="Letters, digits and @ . + - _.")
        parser.add_argument("--email", required=True, help="Their work e-mail address.")
        parser.add_argument("--role", required=True, help=f"One of: {', '.join(ROLE_NAMES)}.")
        parser.add_argument("--client", action="append", default=[], help="A client they work on (repeatable).")

    def run(self, **options):
        user_model = get_user_model()
        try:
            username = user_model._meta.get_field(user_model.USERNAME_FIELD).clean(options["username"], None)
            validate_email(options["email"])
        except ValidationError as error:
            raise invalid_input(ValidationError({"username or email": error.messages})) from None
        clients = [get_client(reference) for reference in options["client"]]
        user = services.create_staff_user(
            actor=self.actor, username=username, email=options["email"], role=options["role"], clients=clients
        )
        link = password_set_link(user)
        text = f"Created {user.username}. Send them this one-time link to set their password:\n  {link}"
        return Result({**user_access(user), "password_set_link": link}, text)
