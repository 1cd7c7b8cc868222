"""examples/node-backend run for real: Node.js and `jose` verify tokens against the live console's JWKS, then redeem.

The console runs in a live server thread on committed data (the `committed` fixture: the thread has
connections of its own). The example's node_modules are installed once with `npm ci` (git-ignored;
`make test` does it first, through the Makefile's `node-example` target). No Node.js is a failure,
never a skip: the example is part of what the suite guarantees.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Sum
from pytest_django.live_server_helper import LiveServer

from api.models import Usage
from tests.invitations.conftest import ADA

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node-backend"
SCRIPT = "verify-and-redeem.mjs"
NODE_MAJOR = 20
TIMEOUT = 60

pytestmark = pytest.mark.usefixtures("committed")  # set up before the data fixtures: they commit


@dataclass
class NodeRun:
    code: int
    out: str
    err: str


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(
            f"{program} is not on PATH: Node.js {NODE_MAJOR}+ with npm is needed to test examples/node-backend "
            "(install it, e.g. `apt-get install nodejs npm`, or put it on PATH)",
            pytrace=False,
        )
    return path


def _installed_jose() -> str | None:
    manifest = EXAMPLE / "node_modules" / "jose" / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the example's pinned dependencies installed (`npm ci`, once, when missing)."""
    node = _need("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True, timeout=TIMEOUT)  # noqa: S603
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    if major < NODE_MAJOR:
        pytest.fail(f"Node.js {NODE_MAJOR}+ is needed for examples/node-backend, found {version.stdout.strip()}")
    pinned = json.loads((EXAMPLE / "package.json").read_text())["dependencies"]["jose"]
    if _installed_jose() != pinned:
        npm = _need("npm")
        done = subprocess.run(  # noqa: S603
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=EXAMPLE, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0 or _installed_jose() != pinned:
            pytest.fail(f"`npm ci` in examples/node-backend failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return node


@pytest.fixture
def console(committed):
    """The console on a free port, in a thread of this process, serving the committed test database."""
    server = LiveServer("127.0.0.1")
    server._live_server_modified_settings.enable()  # ALLOWED_HOSTS += the server's host
    try:
        yield server.url
    finally:
        server._live_server_modified_settings.disable()
        server.stop()


@pytest.fixture
def run_example(node, console):
    def run(token: str, key: str) -> NodeRun:
        env = {
            **os.environ,
            "FLOWS_CONSOLE_URL": console,
            "FLOWS_API_KEY": key,
            "FLOWS_TOKEN_ISSUER": settings.FLOWS_TOKEN_ISSUER,
            "FLOWS_TOKEN_AUDIENCE": settings.FLOWS_TOKEN_AUDIENCE,
        }
        done = subprocess.run(  # noqa: S603
            [node, SCRIPT, token], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        return NodeRun(done.returncode, done.stdout, done.stderr)

    return run


def _api_requests() -> int:
    """Every authenticated tenant API request is counted: how many the console has answered so far."""
    return Usage.objects.using("console").aggregate(total=Sum("count"))["total"] or 0


@pytest.fixture
def redeem_key(make_key, world):
    return make_key(world[0], scopes=["invitations:redeem", "configuration:read"], name="node example")


def test_verifies_offline_then_redeems_once(issue, redeem_key, run_example):
    invitation, token = issue(ADA)

    first = run_example(token, redeem_key)
    assert first.code == 0, first
    assert f"verified offline: invitation {invitation.pk} for acme/onboarding" in first.out
    assert f"redeemed: {invitation.code} (onboarding), used 1 of 1" in first.out
    assert "invitee: Ada Lovelace <ada.lovelace@acme.example>, private ada1815@home.example" in first.out

    second = run_example(token, redeem_key)
    assert second.code == 1, second
    assert "verified offline" in second.out  # the signature still holds: only the console knows it was used
    assert "redeem refused: already_used (HTTP 400)" in second.out
    assert "Ada" not in second.out
    invitation.refresh_from_db()
    assert (invitation.status, invitation.used_count) == ("accepted", 1)


def test_another_clients_token_is_wrong_client(world, issue, redeem_key, run_example):
    globex = world[1]
    invitation, token = issue(ADA, client=globex)

    run = run_example(token, redeem_key)
    assert run.code == 1, run
    assert "for globex/onboarding" in run.out  # the signature is the console's: it verifies offline
    assert "redeem refused: wrong_client (HTTP 400)" in run.out
    invitation.refresh_from_db()
    assert (invitation.status, invitation.used_count) == ("pending", 0)


@pytest.mark.parametrize("part", ["header", "claims", "signature"])
def test_tampered_token_fails_offline_without_calling_the_api(issue, redeem_key, run_example, part):
    invitation, token = issue(ADA)
    parts = token.split(".")
    index = ["header", "claims", "signature"].index(part)
    # One character changed in the middle of the part (the last one may only carry padding bits).
    middle = len(parts[index]) // 2
    parts[index] = parts[index][:middle] + ("A" if parts[index][middle] != "A" else "B") + parts[index][middle + 1 :]
    tampered = ".".join(parts)
    before = _api_requests()

    run = run_example(tampered, redeem_key)
    assert run.code == 2, run
    assert run.out.startswith("verification failed: ERR_J"), run
    assert "not sent to the API" in run.out
    assert "redeem" not in run.out
    assert _api_requests() == before  # no tenant API request was made
    invitation.refresh_from_db()
    assert (invitation.status, invitation.used_count) == ("pending", 0)

    # The untampered token still works, through the same counter: the check above can see a request.
    assert run_example(token, redeem_key).code == 0
    assert _api_requests() == before + 1


def test_no_api_key_is_a_usage_error(node):
    done = subprocess.run(  # noqa: S603
        [node, SCRIPT, "a.b.c"], cwd=EXAMPLE, env={**os.environ, "FLOWS_API_KEY": ""},
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 3
    assert "FLOWS_API_KEY" in done.stderr
