"""manage.py configure_application: create or update one of a client's applications."""

import json
from pathlib import Path

from clients.models import Application
from clients.selectors import get_client
from clients.services import configure_application
from config.commands import FlowsCommand, Result
from config.errors import InvalidInput


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
        if options["config"]:
            try:
                configuration = json.loads(Path(options["config"]).read_text())
            except OSError as error:
                raise InvalidInput(f"cannot read {options['config']}: {error.strerror}") from None
            except json.JSONDecodeError as error:
                raise InvalidInput(
                    f"{options['config']} is not valid JSON: {error.msg} (line {error.lineno})"
                ) from None
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
