"""`invitation_issue_context(client)`: what issuing needs before it can build a token, in one round trip.

Issuing used to spend a round trip on each of: the client's row lock, its data keys, and a
checks query whose seat count summed every invitation of the client (10,000 rows read at
10,000 invitations; docs/performance.md, "Issuing at scale"). This function does, in order:

1. locks the client's row (`FOR UPDATE`): the lock that serialises issues and revivals of this
   client against its tier's `max_users`, exactly as `get_client(..., for_update=True)` did;
2. then, in a **second statement** — a VOLATILE function takes a new snapshot per statement
   under READ COMMITTED, so it sees every issue that committed before the lock was granted —
   returns the client and its tier (as JSON), the seats held, read in O(1) from
   `reports_clientseats` (kept exact by the invitations' statement triggers in the writing
   transaction, reports/migrations/0001), the client's data key rows and the active signing key.

Reading the seats in the locking statement itself would be wrong: that statement's snapshot is
taken before it waits for the lock, so it would miss the seats of the issue it waited for.

SECURITY INVOKER: it runs as its caller (the console role) with the caller's grants and RLS
policies; it exists to save round trips, not to lend privileges. Owned by the owner, search_path
pinned, EXECUTE revoked from PUBLIC and granted to the console role only
(`clients.dbroles.CONSOLE_FUNCTIONS`). An unknown client returns no row.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION public.invitation_issue_context(p_client uuid)
RETURNS TABLE (client jsonb, tier jsonb, seats bigint, key_versions bigint[], key_statuses text[],
               key_wrapped bytea[], signing_kid text, signing_wrapped bytea)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM 1 FROM public.clients_client WHERE id = p_client FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- A new statement, a new snapshot: the seats of every issue that held the lock before us.
    RETURN QUERY
    SELECT to_jsonb(c), to_jsonb(t),
           coalesce((SELECT s.seats FROM public.reports_clientseats s WHERE s.client_id = p_client), 0)::bigint,
           ARRAY(SELECT k.version::bigint FROM public.vault_datakey k WHERE k.client_id = p_client ORDER BY k.version),
           ARRAY(SELECT k.status::text FROM public.vault_datakey k WHERE k.client_id = p_client ORDER BY k.version),
           ARRAY(SELECT k.wrapped_key FROM public.vault_datakey k WHERE k.client_id = p_client ORDER BY k.version),
           sk.kid::text, sk.wrapped_private_key
      FROM public.clients_client c
      JOIN public.clients_tier t ON t.code = c.tier_id
      LEFT JOIN public.vault_signingkey sk ON sk.status = 'active'
     WHERE c.id = p_client;
END
$$;
REVOKE ALL ON FUNCTION public.invitation_issue_context(uuid) FROM PUBLIC;
"""

BACKWARD = "DROP FUNCTION public.invitation_issue_context(uuid);"


class Migration(migrations.Migration):
    dependencies = [
        ("invitations", "0005_dashboard_indexes"),
        ("reports", "0001_dashboard_summary"),
        ("vault", "0004_secret_active_expiry_index"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
