"""Under concurrency, on committed data: one redemption wins, the rate limit is exact, the counters add up."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from api.models import Usage
from tests.api.conftest import Api

committed = pytest.mark.usefixtures("committed")


def run_in_threads(count: int, work) -> list:
    """`work(n)` in `count` threads started together, each on its own database connections."""
    barrier, results, lock = threading.Barrier(count), [], threading.Lock()

    def worker(n):
        try:
            barrier.wait(timeout=30)
            result = work(n)
            with lock:
                results.append(result)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == count, "a worker failed"
    return results


@committed
def test_of_ten_concurrent_redemptions_of_one_token_exactly_one_is_200(acme_api, issue):
    _, token = issue()
    answers = run_in_threads(10, lambda n: Api(acme_api.key).post("/invitations/redeem", {"token": token}))
    assert sorted(answer.status for answer in answers) == [200] + [400] * 9
    assert {answer.json["code"] for answer in answers if answer.status == 400} == {"already_used"}


@committed
def test_the_rate_limit_is_exact_across_connections(world, make_key):
    key = make_key(world[0], rate_limit=6)
    api = Api(key)
    first = api.get("/client")
    remaining_seconds = int(first.headers["RateLimit"].rsplit("t=", 1)[1])
    if remaining_seconds < 15:
        time.sleep(remaining_seconds + 1)
        first = api.get("/client")
    assert first.status == 200 and first.headers["RateLimit-Policy"] == '"per-key";q=6;w=60'
    # Two threads, each on its own connections (so two database sessions), 4 requests each.
    answers = run_in_threads(2, lambda n: [Api(key).get("/client") for _ in range(4)])
    statuses = sorted(answer.status for batch in answers for answer in batch)
    assert statuses == [200] * 5 + [429] * 3
    limited = next(answer for batch in answers for answer in batch if answer.status == 429)
    assert limited.json["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit"].startswith('"per-key";r=0;t=')


@committed
def test_usage_counters_are_exact_after_concurrent_requests(world, acme_api):
    run_in_threads(6, lambda n: [Api(acme_api.key).get("/client" if i % 2 else "/applications/none") for i in range(4)])
    counters = {(u.endpoint, u.status_class): u.count for u in Usage.objects.filter(client_id=world[0].pk, count__gt=0)}
    assert counters == {("get_client", "2xx"): 12, ("get_application", "4xx"): 12}
