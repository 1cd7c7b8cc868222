"""Invitation fixtures: a client with an application and a published signing key."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

import pytest
from psycopg import sql

from clients import services as client_services
from invitations import services, tokens
from invitations.services import Invitee
from tests.conftest import connect_as_superuser
from vault import services as vault_services

ADA = Invitee("Ada Lovelace", "ada.lovelace@acme.example", "ada1815@home.example")
GRACE = Invitee("Grace Hopper", "grace.hopper@acme.example", "")


@pytest.fixture
def world(make_client):
    """acme (pro tier: multi-use links) with onboarding, globex beside it, and an active signing key."""
    vault_services.rotate_signing_key(actor=None)
    tokens.public_keys.clear()
    acme, globex = make_client("acme", tier="pro"), make_client("globex", tier="pro")
    apps = {
        client.code: client_services.configure_application(actor=None, client=client, app_code="onboarding")
        for client in (acme, globex)
    }
    return acme, globex, apps


@pytest.fixture
def issue(world):
    acme, _, apps = world

    def issue(invitee=ADA, *, client=None, **options):
        client = client or acme
        options.setdefault("expires_in", timedelta(days=7))
        return services.issue_invitation(
            actor=None, client=client, application=apps[client.code], invitee=invitee, **options
        )

    return issue


# --- A real SMTP server --------------------------------------------------------------------------


class SmtpRecorder:
    """aiosmtpd handler: keeps what arrives; refuses every recipient with 550 while `refuse` is set."""

    def __init__(self):
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"  # quotes the address, as real servers do
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a free port, and Django's SMTP backend pointed at it (as EMAIL_URL would)."""
    from aiosmtpd.controller import Controller

    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    # The server's own log lines (aiosmtpd's `mail.log`) are the remote side's, not the console's.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    try:
        yield recorder
    finally:
        controller.stop()


@pytest.fixture
def smtp_down(settings):
    """Django's SMTP backend pointed at a port where nothing listens."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    return settings


def text_found_in_database(needles: list[str]) -> list[tuple[str, str]]:
    """(table, needle) for every needle found in any row of any table, read as the superuser (no RLS applies)."""
    found = []
    with connect_as_superuser() as superuser:
        tables = [row[0] for row in superuser.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for (row,) in superuser.execute(sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))):
                found += [(table, needle) for needle in needles if needle.lower() in row.lower()]
    assert len(tables) > 15, "the scan must see the whole schema"
    return found
