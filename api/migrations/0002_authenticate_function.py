"""The one SECURITY DEFINER function the tenant role calls before it knows its tenant: API key
authentication, the key's rate limit and its last_used_at, in one round trip (docs/api.md).

Owned by the owner (the role running migrate), search_path pinned, EXECUTE revoked from PUBLIC;
`clients.dbroles.apply` grants it to flows_app alone (APP_FUNCTIONS) and gives the owner the
`api_auth_definer` policy on the tables it reads (DEFINER_TABLES), which FORCE RLS requires.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION public.api_authenticate(p_prefix text, p_secret_hash text, p_default_limit integer)
RETURNS TABLE (client_id uuid, application_id uuid, scopes text[], key_id uuid, key_prefix text,
               rate_limit integer, rate_used integer, rate_reset integer)
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
    used integer;
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
    RETURN QUERY SELECT k.client_id, k.application_id, k.scopes, k.id, k.prefix::text,
                        coalesce(k.rate_limit, p_default_limit), used,
                        greatest(1, ceil(extract(epoch FROM (window_now + interval '1 minute' - now()))))::integer;
END
$fn$;
REVOKE ALL ON FUNCTION public.api_authenticate(text, text, integer) FROM PUBLIC;
"""

DROP = "DROP FUNCTION IF EXISTS public.api_authenticate(text, text, integer);"


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("clients", "0005_apikey_rate_limit"),
        ("vault", "0002_secret_access_append_only"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
