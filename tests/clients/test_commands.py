"""Commands behave like good Unix tools: --help with an example, --json, exit codes 0/1/2, one-line errors.

They run in-process through Django's real command-line entry point (argument parsing, exit codes,
stderr), so the tests use committed data: that entry point closes the connections when it is done.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.core.management import get_commands, load_command_class
from django.db import DEFAULT_DB_ALIAS, connections

from audit.models import AuditEvent
from clients.models import Application, Client
from config.commands import FlowsCommand
from tests.conftest import Run

pytestmark = pytest.mark.usefixtures("committed")


def flows_commands() -> list[str]:
    return sorted(
        name
        for name, app in get_commands().items()
        if not app.startswith("django.") and isinstance(load_command_class(app, name), FlowsCommand)
    )


def assert_one_line_error(run: Run, code: int) -> None:
    assert run.code == code, run
    assert "Traceback" not in run.err + run.out
    lines = [line for line in run.err.splitlines() if line.strip() and not line.startswith("usage:")]
    assert len(lines) == 1 or run.err.startswith("usage:"), run.err
    if code == 1:  # reads like argparse's usage errors, not like a Python exception
        assert lines[0].startswith("manage.py ") and ": error: " in lines[0] and "CommandError" not in lines[0], lines


def test_the_project_commands_are_all_flows_commands():
    assert {"create_client", "update_client", "deactivate_client", "reactivate_client", "client_status"} <= set(
        flows_commands()
    )
    assert {"configure_application", "health_check", "seed_demo", "ensure_dev_superuser"} <= set(flows_commands())


@pytest.mark.parametrize("name", flows_commands())
def test_every_command_has_help_with_an_example_and_json(manage, name):
    run = manage(name, "--help")
    assert run.code == 0
    assert "Example:\n  manage.py " + name in run.out
    assert "--json" in run.out


@pytest.mark.parametrize(
    "argv",
    [
        ["create_client", "--code", "acme"],  # missing required options
        ["create_client", "--code", "a", "--name", "A", "--domain", "a.example", "--region", "MARS"],
        ["update_client"],
        ["client_status", "acme", "--events", "many"],
        ["configure_application", "acme"],
        ["configure_application", "acme", "x", "--status", "maybe"],
    ],
)
def test_usage_errors_exit_2(manage, argv):
    run = manage(*argv)
    assert run.code == 2, run
    assert "Traceback" not in run.err
    assert "error:" in run.err


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["update_client", "nope", "--tier", "pro"], "No client with code or id 'nope'."),
        (["client_status", "nope"], "No client with code or id 'nope'."),
        (["deactivate_client", "nope"], "No client with code or id 'nope'."),
        (["reactivate_client", "nope"], "No client with code or id 'nope'."),
        (["configure_application", "nope", "onboarding"], "No client with code or id 'nope'."),
        (
            ["create_client", "--code", "Bad Code", "--name", "X", "--domain", "x.example", "--region", "EU"],
            "code",
        ),
        (
            [
                "create_client",
                "--code",
                "acme",
                "--name",
                "X",
                "--domain",
                "x.example",
                "--region",
                "EU",
                "--tier",
                "x",
            ],
            "Unknown tier 'x'",
        ),
    ],
)
def test_refused_or_invalid_input_exits_1_with_one_line_and_changes_nothing(manage, argv, reason):
    run = manage(*argv)
    assert_one_line_error(run, 1)
    assert reason in run.err
    assert not Client.objects.exists()
    as_json = manage(*argv, "--json")
    assert as_json.code == 1
    assert as_json.json["ok"] is False and as_json.json["error"]
    assert reason in as_json.json["error"]["message"]


def test_a_clients_life_through_the_commands(manage, tmp_path):
    run = manage(
        "create_client", "--code", "acme", "--name", "Acme Corporation", "--domain", "acme-corp.thepia.net",
        "--region", "eu", "--tier", "pro", "--json",
    )  # fmt: skip
    assert run.code == 0, run
    assert run.json["ok"] is True and run.json["client"]["code"] == "acme" and run.json["client"]["region"] == "EU"

    again = manage(
        "create_client", "--code", "acme", "--name", "A", "--domain", "acme-corp.thepia.net", "--region", "EU"
    )
    assert_one_line_error(again, 1)
    assert "already exists" in again.err

    config = tmp_path / "offboarding.json"
    config.write_text(json.dumps({"locale": "en-GB", "notifications": {"email": True, "reminder_days": [3, 7]}}))
    run = manage("configure_application", "acme", "offboarding", "--config", str(config), "--features", "sso,webhooks")
    assert run.code == 0, run
    assert Application.objects.get(app_code="offboarding").features == ["sso", "webhooks"]

    config.write_text("{not json")
    bad = manage("configure_application", "acme", "offboarding", "--config", str(config))
    assert_one_line_error(bad, 1)
    assert "offboarding.json" in bad.err and "JSON" in bad.err
    missing = manage("configure_application", "acme", "offboarding", "--config", str(tmp_path / "absent.json"))
    assert_one_line_error(missing, 1)

    downgrade = manage("update_client", "acme", "--tier", "free")
    assert_one_line_error(downgrade, 1)
    assert "does not fit tier free" in downgrade.err and "sso" in downgrade.err

    status = manage("client_status", "acme", "--json")
    assert status.code == 0
    assert status.json["usage"] == {"applications": 1, "seats": 0}
    assert [e["action"] for e in status.json["recent_events"]] == [
        "application.created",
        "client.created",
    ]
    assert "offboarding" in manage("client_status", "acme").out

    assert manage("deactivate_client", "acme", "--reason", "contract ended").code == 0
    assert manage("deactivate_client", "acme").code == 0  # safe to re-run
    assert manage("reactivate_client", "acme", "--json").json["client"]["status"] == "active"

    actions = list(AuditEvent.objects.filter(client_code="acme").order_by("seq").values_list("action", "actor_label"))
    assert [action for action, _ in actions] == [
        "client.created",
        "application.created",
        "client.deactivated",
        "client.reactivated",
    ]
    assert all(label.startswith("manage.py ") for _, label in actions)


def test_seed_demo_is_safe_to_re_run(manage):
    assert manage("seed_demo").code == 0
    counts = (Client.objects.count(), Application.objects.count(), AuditEvent.objects.count())
    assert counts[0] >= 3 and counts[1] >= 3 and counts[2] >= counts[1]
    assert manage("seed_demo").code == 0
    assert (Client.objects.count(), Application.objects.count(), AuditEvent.objects.count()) == counts


def test_health_check_passes_on_a_healthy_database(manage):
    run = manage("health_check", "--json")
    assert run.code == 0, run
    assert any("reachable as flows_app" in check for check in run.json["checks"])
    assert "migrations: all applied" in run.json["checks"]


def test_health_check_fails_with_a_precise_line_per_problem(manage):
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("ALTER TABLE clients_application NO FORCE ROW LEVEL SECURITY")
        cursor.execute("GRANT TRUNCATE ON clients_client TO flows_app")
    try:
        run = manage("health_check")
        assert run.code == 1
        assert "FAIL table clients_application: row level security is not forced" in run.err
        assert "FAIL role flows_app has TRUNCATE on clients_client" in run.err
        assert "Traceback" not in run.err
        as_json = manage("health_check", "--json")
        assert as_json.code == 1 and len(as_json.json["error"]["fields"]["problems"]) == 2
    finally:
        from clients import dbroles

        dbroles.apply()


@pytest.mark.parametrize("username", ["", " ", "ad\nmin", "ad min", "x" * 151])
def test_ensure_dev_superuser_takes_only_a_valid_username(manage, settings, username):
    settings.DEBUG = True
    refused = manage("ensure_dev_superuser", "--username", username)
    assert_one_line_error(refused, 1)
    assert "username:" in refused.err
    assert manage("ensure_dev_superuser", "--username", username, "--json").json["error"]["fields"]["username"]
    assert not User.objects.exists() and not AuditEvent.objects.exists()


def test_ensure_dev_superuser_prints_the_login(manage, settings):
    settings.DEBUG = True
    run = manage("ensure_dev_superuser", "--username", "ada.admin", "--url", "http://127.0.0.1:8000/admin/\nforged")
    assert run.code == 0 and "Log in as: ada.admin / " in run.out
    assert "/admin/\\nforged" in run.out  # the address shown as given, on its line
    assert User.objects.get().username == "ada.admin"


def write_config(tmp_path, content: bytes) -> str:
    path = tmp_path / "configuration.json"
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"a": ' * 5000, "nested too deeply"),
        (b'{"workflow": ' * 40 + b"{}" + b"}" * 40, "nested deeper than 8 levels"),
        (b'{"locale": "\xff\xfe"}', "not UTF-8 text"),
        (b" " * 300_000 + b"{}", "is larger than"),
    ],
)
def test_configure_application_refuses_a_configuration_it_cannot_take(manage, tmp_path, content, reason):
    assert manage("create_client", "--code", "acme", "--name", "A", "--domain", "a.example", "--region", "EU").code == 0
    refused = manage("configure_application", "acme", "onboarding", "--config", write_config(tmp_path, content))
    assert_one_line_error(refused, 1)
    assert reason in refused.err
    assert not Application.objects.exists()


def test_client_status_shows_stored_control_characters_escaped(manage, monkeypatch):
    monkeypatch.setenv("LOGNAME", "mallory\x1b[2J\nmanage.py client_status: forged")
    assert manage("create_client", "--code", "acme", "--name", "A", "--domain", "a.example", "--region", "EU").code == 0
    assert manage("configure_application", "acme", "onboarding").code == 0
    # Data written before names were validated, straight into the table.
    Application.objects.filter(app_code="onboarding").update(name="Onboarding\nmanage.py: forged line\u202e\x1b[31m")
    status = manage("client_status", "acme")
    assert status.code == 0
    assert "Onboarding\\nmanage.py: forged line\\u202e\\x1b[31m" in status.out
    assert not [line for line in status.out.splitlines() if "forged" in line and not line.startswith("  ")]
    assert "\x1b" not in status.out and "\u202e" not in status.out
    assert "manage.py create_client (mallory\\x1b[2J\\nmanage.py client_status: forged)" in status.out
    assert manage("client_status", "acme", "--json").json["applications"][0]["name"].startswith("Onboarding\n")


def test_a_10000_character_reference_is_a_short_precise_refusal(manage):
    refused = manage("client_status", "a" * 10_000)
    assert_one_line_error(refused, 1)
    assert "No client with code or id 'aaaa" in refused.err and "database error" not in refused.err
    assert len(refused.err) < 300
