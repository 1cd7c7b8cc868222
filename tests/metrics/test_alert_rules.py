"""docs/prometheus-alerts.yml: well-formed rules, each naming only metrics /metrics exposes."""

from __future__ import annotations

import re

import pytest
import yaml
from django.conf import settings
from django.test import Client as Browser
from prometheus_client.parser import text_string_to_metric_families

from tests.metrics.conftest import TOKEN

RULES = settings.BASE_DIR / "docs" / "prometheus-alerts.yml"
METRIC = re.compile(r"\bflows_[a-z0-9_]+\b")
DURATION = re.compile(r"^\d+[smh]$")


def _rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_rules_file_has_the_shape_prometheus_loads():
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    for rule in _rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Flows[A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert "for" not in rule or DURATION.match(rule["for"]), rule["for"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), rule["alert"]


def test_the_seeds_alerts_are_all_there():
    alerts = {rule["alert"] for rule in _rules()}
    assert {
        "FlowsInvitationsExpiringUnused",
        "FlowsClientNearSeatLimit",
        "FlowsSignInFailureSpike",
        "FlowsCleanupOverdue",
        "FlowsAuditCheckpointOverdue",
        "FlowsDatabaseSlow",
        "FlowsApiServerErrors",
        "FlowsApiRateLimitedTier",
    } <= alerts


@pytest.mark.usefixtures("committed")
def test_every_metric_a_rule_names_is_exposed():
    Browser().get("/healthz")  # one request, so the histogram has series
    body = Browser().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    exposed = set()
    for family in text_string_to_metric_families(body):
        exposed.add(family.name)  # families without a sample yet (a job never run, no pool) still declare it
        exposed.update(sample.name for sample in family.samples)
    counters = {f"{name}_total" for name in exposed}
    named = {name for rule in _rules() for name in METRIC.findall(rule["expr"])}
    assert named and not named - exposed - counters, named - exposed - counters
