"""Cardinality at 10,000 clients: per-client series only for the top clients, everything else per tier."""

from __future__ import annotations

import pytest

from tests.conftest import connect_as_superuser
from tests.metrics.conftest import scrape

pytestmark = pytest.mark.usefixtures("committed")
CLIENTS = 10_000

# Written once, as the superuser, in a few set-based statements: each client on a tier in turn, one
# application, an invitation of every status, and API requests of every status class today, the
# busiest with 429s.
BULK = [
    """INSERT INTO clients_client (id, code, legal_name, domain, region, tier_id, status, created_at, updated_at)
       SELECT gen_random_uuid(), 'bulk' || i, 'Bulk ' || i, 'bulk' || i || '.thepia.net', 'EU',
              (ARRAY['free', 'pro', 'enterprise'])[1 + i %% 3], 'active', now(), now()
       FROM generate_series(1, %s) AS i""",
    """INSERT INTO clients_application (id, client_id, app_code, name, configuration, features, status,
                                        created_at, updated_at)
       SELECT gen_random_uuid(), id, 'onboarding', 'Onboarding', '{}', '{}', 'enabled', now(), now()
       FROM clients_client""",
    """INSERT INTO invitations_invitation (id, client_id, application_id, code, token_hash, status, max_uses,
                                           used_count, permissions, restrictions, expires_at, email_hash, kid,
                                           created_by, created_at, revoked_by, revoke_reason, resend_count)
       SELECT gen_random_uuid(), a.client_id, a.id, 'B' || lpad((row_number() OVER ())::text, 11, '0'),
              md5(random()::text), s.status, 1, (s.status = 'accepted')::int, '{}', '{}',
              now() + interval '12 hours', '', 'kid', 'bulk', now(), '', '', 0
       FROM clients_application a
       CROSS JOIN unnest(ARRAY['pending', 'accepted', 'expired', 'revoked']) AS s(status)""",
    """INSERT INTO api_usage (client_id, day, api_key_id, application_id, endpoint, status_class, count, rate_limited)
       SELECT c.id, (now() AT TIME ZONE 'UTC')::date, gen_random_uuid(), NULL, 'get_client', k.class,
              1 + (hashtext(c.code) & 1023), CASE WHEN k.class = '4xx' THEN 1 ELSE 0 END
       FROM clients_client c CROSS JOIN unnest(ARRAY['2xx', '4xx', '5xx']) AS k(class)""",
]


def test_ten_thousand_clients_stay_within_a_fixed_number_of_series(settings):
    with connect_as_superuser() as connection:
        connection.execute(BULK[0], [CLIENTS])
        for statement in BULK[1:]:
            connection.execute(statement)
        assert connection.execute("SELECT count(*) FROM invitations_invitation").fetchone()[0] == 4 * CLIENTS
    samples = scrape()
    top = settings.FLOWS_METRICS_TOP_CLIENTS
    per_client = [(name, labels) for name, labels in samples if name.startswith("flows_client_")]
    clients_named = {dict(labels)["client"] for _, labels in per_client}
    # Three rankings (invitations, seats, API requests today) of `top` clients each.
    assert len(clients_named) <= 3 * top
    # invitations by status (4) and expiring soon (1) per application, seats used and limit (2),
    # API requests per status class (3) and 429s (1): per ranked client, with one application each.
    assert len(per_client) <= top * (4 + 1) + top * 2 + top * (3 + 1)
    business = [name for name, _ in samples if name.startswith("flows_") and not name.startswith("flows_http_")]
    assert len(business) <= 200
    # Every client still counts, in its tier's figures.
    assert sum(v for (name, _), v in samples.items() if name == "flows_invitations") == 4 * CLIENTS
    assert sum(v for (name, _), v in samples.items() if name == "flows_clients") == CLIENTS
    assert sum(v for (name, _), v in samples.items() if name == "flows_api_rate_limited_total") == CLIENTS
