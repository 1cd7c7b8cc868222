"""Schemathesis over the API's own OpenAPI document, against the live app: valid and invalid input, never a 500."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from config.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], allow_x00=True)


@pytest.fixture
def api_key(committed, world, make_key, issue):
    """A key with every scope and room for every example, and an invitation for the list to show."""
    issue()
    return make_key(world[0], rate_limit=1_000_000)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    # The committed data is set up once per operation, not per example: that is intended.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_generated_request_makes_the_api_fail(case, api_key):
    response = case.call(headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        headers = {name.lower(): value for name, value in response.headers.items()}
        assert "application/problem+json" in str(headers["content-type"])
        assert response.json()["status"] == response.status_code
