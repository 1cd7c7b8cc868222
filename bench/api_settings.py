"""Settings of the tenant API benchmark (`bench/api.py`): the product's, plus the bare views' URLconf and a database
of its own. Used by the benchmark's gunicorn and by the benchmark process itself; never by the product."""

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES

ROOT_URLCONF = "bench.api_urls"

# The benchmark's own database (bench/api.py creates and migrates it before starting gunicorn).
if _database := os.environ.get("FLOWS_BENCH_API_DATABASE"):
    for _alias in DATABASES.values():
        _alias["NAME"] = _database
