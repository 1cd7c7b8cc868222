"""`api_authenticate` also counts the request in `api_usage` (as `2xx`, or as `4xx` and
`rate_limited` when the rate limit refuses it), so a successful request's tenant transaction only reads: one round trip and one
write-ahead-log flush fewer per request (docs/performance.md, "Tenant API"). A request that ends
in an error moves its count to its class afterwards (`api.metering.reclassify`).

The counters, the rate window and `last_used_at` are committed asynchronously
(`synchronous_commit = off` for the function's own transaction only): a crash of the database
server can lose the last fraction of a second of them, never make them inconsistent; nothing
else is written in that transaction. The signature gains the endpoint and the answer the usage
day, so the old function is dropped, not replaced.
"""

import importlib

from django.db import migrations

PREVIOUS = importlib.import_module("api.migrations.0002_authenticate_function").CREATE

CREATE = r"""
DROP FUNCTION IF EXISTS public.api_authenticate(text, text, integer);
CREATE FUNCTION public.api_authenticate(p_prefix text, p_secret_hash text, p_default_limit integer,
                                        p_endpoint text)
RETURNS TABLE (client_id uuid, application_id uuid, scopes text[], key_id uuid, key_prefix text,
               rate_limit integer, rate_used integer, rate_reset integer, usage_day date)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $fn$
#variable_conflict use_column
DECLARE
    k record;
    matches boolean;
    usable boolean;
    window_now timestamptz := date_trunc('minute', now());
    day date := (now() AT TIME ZONE 'UTC')::date;
    used integer;
    the_limit integer;
BEGIN
    SELECT a.id, a.client_id, a.application_id, a.scopes::text[] AS scopes, a.prefix, a.secret_hash,
           a.rate_limit, a.revoked_at, a.expires_at, a.last_used_at, c.status AS client_status,
           EXISTS (SELECT 1 FROM public.vault_datakey d
                   WHERE d.client_id = a.client_id AND d.status = 'destroyed') AS erased
      INTO k
      FROM public.clients_apikey a JOIN public.clients_client c ON c.id = a.client_id
     WHERE a.prefix = p_prefix;
    -- Constant time: compare digests of the two hex strings, computed whether or not the prefix
    -- exists (a placeholder stands in), so neither the comparison nor the path taken says how much
    -- of the stored hash matched or whether the prefix was found.
    matches := sha256(convert_to(coalesce(k.secret_hash, repeat('-', 64)), 'UTF8'))
             = sha256(convert_to(coalesce(p_secret_hash, ''), 'UTF8'));
    usable := matches AND k.id IS NOT NULL AND k.revoked_at IS NULL
              AND (k.expires_at IS NULL OR k.expires_at > now())
              AND k.client_status = 'active' AND NOT k.erased;
    IF NOT coalesce(usable, false) THEN
        RETURN;
    END IF;
    -- Only this function's own transaction (the caller runs it on its own, before the tenant
    -- transaction): counters may lose their last instant in a server crash, never their consistency.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- At most one write a minute per key for last_used_at.
    IF k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute' THEN
        UPDATE public.clients_apikey SET last_used_at = now() WHERE id = k.id;
    END IF;
    -- Fixed one-minute window, counted in the database so every worker shares it. A request
    -- from an older window (a late transaction) counts in the current one.
    INSERT INTO public.api_ratewindow AS w (api_key_id, window_start, used)
    VALUES (k.id, window_now, 1)
    ON CONFLICT (api_key_id) DO UPDATE
       SET used = CASE WHEN excluded.window_start > w.window_start THEN 1 ELSE w.used + 1 END,
           window_start = greatest(w.window_start, excluded.window_start)
    RETURNING w.used INTO used;
    the_limit := coalesce(k.rate_limit, p_default_limit);
    -- The request's usage counter: 2xx until the request says otherwise, 4xx when refused here.
    -- A refusal is also counted in rate_limited, which /metrics reads (docs/monitoring.md).
    INSERT INTO public.api_usage AS u
           (client_id, day, api_key_id, application_id, endpoint, status_class, count, rate_limited)
    VALUES (k.client_id, day, k.id, k.application_id, left(coalesce(p_endpoint, ''), 64),
            CASE WHEN used > the_limit THEN '4xx' ELSE '2xx' END, 1, CASE WHEN used > the_limit THEN 1 ELSE 0 END)
    ON CONFLICT ON CONSTRAINT api_usage_counter
    DO UPDATE SET count = u.count + 1, rate_limited = u.rate_limited + excluded.rate_limited;
    RETURN QUERY SELECT k.client_id, k.application_id, k.scopes, k.id, k.prefix::text, the_limit, used,
                        greatest(1, ceil(extract(epoch FROM (window_now + interval '1 minute' - now()))))::integer,
                        day;
END
$fn$;
REVOKE ALL ON FUNCTION public.api_authenticate(text, text, integer, text) FROM PUBLIC;
"""

DROP = "DROP FUNCTION IF EXISTS public.api_authenticate(text, text, integer, text);" + PREVIOUS


class Migration(migrations.Migration):
    dependencies = [("api", "0003_usage_rate_limited")]

    # The reverse drops this function and restores the previous one from its migration's text.
    operations = [migrations.RunSQL(CREATE, DROP)]
