"""manage.py seed_demo: demo clients with applications, secrets and some audit history, through the services."""

import os
import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from clients.models import Client
from clients.selectors import get_application
from clients.services import configure_application, create_client, deactivate_client, update_client
from config.commands import FlowsCommand, Result
from invitations.services import Invitee, issue_invitation
from staff import services as staff_services
from staff.selectors import user_access
from vault.models import SigningKey
from vault.services import rotate_signing_key, set_secret

# (app code, invitee) per client: fictitious people; their tokens are not printed (resend to get one).
DEMO_INVITATIONS = {
    "acme": [
        ("onboarding", Invitee("Ada Lovelace", "ada.lovelace@acme-corp.example", "ada@home.example")),
        ("onboarding", Invitee("Charles Babbage", "charles.babbage@acme-corp.example")),
    ],
    "globex": [("onboarding", Invitee("Hank Scorpio", "hank@globex.example"))],
}

# (provider, type, description) per client; the values are random and never printed.
DEMO_SECRETS = {
    "acme": [("slack", "api_key", "Posts onboarding progress to #people-ops"), ("workday", "oauth_token", "HR sync")],
    "globex": [("stripe", "webhook_secret", "Billing events")],
}

# One staff user per role, so that the scoping can be seen at once (DEBUG only; docs/staff-access.md).
DEMO_STAFF = [
    ("platform-admin", "Platform admin", []),
    ("client-manager", "Client manager", ["acme", "globex"]),
    ("support", "Support", ["acme"]),
    ("auditor", "Auditor", []),
    ("security-officer", "Security officer", []),
]

DEMO_CLIENTS = [
    {"code": "acme", "legal_name": "Acme Corporation", "domain": "acme-corp.thepia.net", "region": "EU", "tier": "pro"},
    {
        "code": "globex",
        "legal_name": "Globex Inc.",
        "domain": "globex.thepia.net",
        "region": "US",
        "tier": "enterprise",
    },
    {"code": "initech", "legal_name": "Initech LLC", "domain": "initech.thepia.net", "region": "US", "tier": "free"},
    {
        "code": "umbrella",
        "legal_name": "Umbrella Pte Ltd",
        "domain": "umbrella.thepia.net",
        "region": "APAC",
        "tier": "pro",
    },
]
DEMO_APPLICATIONS = {
    "acme": [
        (
            "onboarding",
            {"locale": "en-GB", "branding": {"display_name": "Acme", "primary_color": "#D62828"}},
            ["custom_branding"],
        ),
        ("offboarding", {"notifications": {"email": True, "reminder_days": [7, 1]}}, ["webhooks"]),
    ],
    "globex": [
        (
            "onboarding",
            {"workflow": {"steps": ["contract", "equipment", "accounts"], "approval_required": True}},
            ["sso"],
        ),
        ("offboarding", {"locale": "en-US"}, ["audit_export"]),
    ],
    "initech": [("onboarding", {"locale": "en-US"}, [])],
    "umbrella": [("onboarding", {"locale": "en-SG", "timezone": "Asia/Singapore"}, ["sso"])],
}


class Command(FlowsCommand):
    help = (
        "Load demo clients, applications, secrets, invitations, a signing key and audit history. "
        "Safe to re-run: existing clients are left alone."
    )
    example = "manage.py seed_demo"

    def run(self, **options):
        created = []
        for spec in DEMO_CLIENTS:
            if Client.objects.filter(code=spec["code"]).exists():
                continue
            with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
                client = create_client(actor=self.actor, **{**spec, "tier": "free"})
                client = update_client(actor=self.actor, client=client, tier=spec["tier"])
                for app_code, configuration, features in DEMO_APPLICATIONS[spec["code"]]:
                    configure_application(
                        actor=self.actor,
                        client=client,
                        app_code=app_code,
                        configuration=configuration,
                        features=features,
                    )
                for provider, secret_type, description in DEMO_SECRETS.get(spec["code"], []):
                    set_secret(
                        actor=self.actor,
                        client=client,
                        provider=provider,
                        secret_type=secret_type,
                        value=f"demo-{secrets.token_urlsafe(24)}",
                        description=description,
                    )
                if spec["code"] == "umbrella":
                    deactivate_client(actor=self.actor, client=client, reason="demo: contract paused")
            created.append(spec["code"])
        if not SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).exists():
            rotate_signing_key(actor=self.actor)  # so that /.well-known/jwks.json has a key to show
        for code in created:
            client = Client.objects.select_related("tier").get(code=code)
            for app_code, invitee in DEMO_INVITATIONS.get(code, []):
                issue_invitation(actor=self.actor, client=client, application=get_application(client, app_code),
                                 invitee=invitee)  # fmt: skip
        text = f"Demo data: created {', '.join(created)}." if created else "Demo data already present."
        staff = self._demo_staff() if settings.DEBUG else []
        if staff:
            text += "\n  Demo staff (one per role; password as for the superuser below):"
            for access in staff:
                clients = "every client" if access["all_clients"] else ", ".join(access["clients"])
                text += f"\n    {access['username']:<17} {access['roles'][0]:<17} {clients}"
        return Result({"created": created, "staff": staff}, text)

    def _demo_staff(self) -> list[dict]:
        """Create the demo users once; their password is the development superuser's, reset on every run."""
        password = os.environ.get("DEV_ADMIN_PASSWORD")
        shown = []
        for username, role, codes in DEMO_STAFF:
            user = User.objects.filter(username=username).first()
            if user is None:
                clients = list(Client.objects.filter(code__in=codes))
                user = staff_services.create_staff_user(
                    actor=self.actor, username=username, email=f"{username}@thepia.example", role=role, clients=clients
                )
            if password and not user.check_password(password):
                staff_services.set_password(actor=self.actor, user=user, password=password)
            shown.append(user_access(user))
        return shown
