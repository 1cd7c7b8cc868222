"""PROMETHEUS_MULTIPROC_DIR: the request metrics of several worker processes add up in one scrape."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

# A worker process: answers `count` requests for a page that does not exist, then one scrape.
WORKER = """
import sys
import django
django.setup()
from django.test import Client
browser = Client(SERVER_NAME="localhost")
for _ in range(int(sys.argv[1])):
    browser.get("/nowhere")
sys.stdout.write(browser.get("/metrics", HTTP_AUTHORIZATION="Bearer mp-token").content.decode())
"""


def _worker(directory, count: int) -> dict:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "FLOWS_METRICS_TOKEN": "mp-token",
        # No database is needed: a tenant-only worker's scrape reads none.
        "FLOWS_TENANT_ONLY": "true",
        "ALLOWED_HOSTS": "localhost",
        "SECRET_KEY": "multiprocess-test",
    }
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", WORKER, str(count)],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(result.stdout)
        for sample in family.samples
    }


def test_two_workers_requests_add_up_in_one_scrape(tmp_path):
    not_found = (
        "flows_http_request_duration_seconds_count",
        (("door", "other"), ("method", "GET"), ("status_class", "4xx")),
    )
    assert _worker(tmp_path, 3)[not_found] == 3
    # A second process (another gunicorn worker) sees its own 2 and the first one's 3.
    assert _worker(tmp_path, 2)[not_found] == 5
