"""manage.py configure_application: create or update one of a client's applications."""

from clients.configuration import MAX_CONFIGURATION_BYTES
from clients.models import Application
from clients.selectors import get_client
from clients.services import configure_application
from config.commands import FlowsCommand, Result
from config.errors import InvalidInput, excerpt
from config.validation import parse_json

# Read no more than this: the stored configuration is at most MAX_CONFIGURATION_BYTES, the file may be indented.
MAX_CONFIGURATION_FILE_BYTES = 16 * MAX_CONFIGURATION_BYTES


class Command(FlowsCommand):
    help = "Create or update a client's application: name, configuration (a JSON file), features, status."
    example = "manage.py configure_application acme offboarding --config offboarding.json --features sso,webhooks"

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("app_code", help="e.g. onboarding or offboarding.")
        parser.add_argument("--name", help="Display name (default: from the app code).")
        parser.add_argument("--config", help="Path to a JSON file with the configuration (see docs/applications.md).")
        parser.add_argument("--features", help="Comma-separated features, a subset of the tier's.")
        parser.add_argument("--status", choices=[s.value for s in Application.Status])

    def run(self, **options):
        configuration = None
        if options["config"] is not None:
            path = excerpt(options["config"], limit=300)
            try:
                with open(options["config"], "rb") as file:
                    text = file.read(MAX_CONFIGURATION_FILE_BYTES + 1)
            except OSError as error:
                raise InvalidInput(f"cannot read {path}: {error.strerror}", code="unreadable") from None
            if len(text) > MAX_CONFIGURATION_FILE_BYTES:
                raise InvalidInput(f"{path} is larger than {MAX_CONFIGURATION_FILE_BYTES} bytes", code="too_large")
            configuration = parse_json(text, source=path)
        features = options["features"].split(",") if options["features"] is not None else None
        application = configure_application(
            actor=self.actor,
            client=get_client(options["client"]),
            app_code=options["app_code"],
            name=options["name"],
            configuration=configuration,
            features=features,
            status=options["status"],
        )
        data = {
            "application": {
                "id": str(application.pk),
                "client": application.client.code,
                "app_code": application.app_code,
                "name": application.name,
                "status": application.status,
                "features": application.features,
                "configuration": application.configuration,
            }
        }
        return Result(data, f"Application {application.client.code}/{application.app_code} is configured.")
