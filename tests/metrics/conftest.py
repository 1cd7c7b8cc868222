"""Metrics fixtures: the endpoint's token, a scrape parsed as Prometheus would, and the invitation and API fixtures."""

from __future__ import annotations

import pytest
from django.test import Client as Browser
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import make_key  # noqa: F401 - fixtures shared with the API tests
from tests.invitations.conftest import issue, world  # noqa: F401 - fixtures shared with the invitation tests

TOKEN = "metrics-token-7f3a"


@pytest.fixture(autouse=True)
def token(settings):
    settings.FLOWS_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape() -> dict[tuple[str, tuple], float]:
    """Every sample of one scrape, by (sample name, sorted labels)."""
    response = Browser().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))
