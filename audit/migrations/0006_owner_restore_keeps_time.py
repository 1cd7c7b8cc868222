"""A restore keeps its events' time: the owner, and only the owner, may insert an event with its original time.

`restore_client` (clients/backup.py) inserts a client's audit events verbatim as the owner, with
the transaction-local setting `flows.audit_restore` on, and walks the chain with the audit key
ring before it commits. Every other insert still gets the transaction's time: the runtime roles
cannot choose it (the setting alone is not enough: any role can set an `app.*` or `flows.*` value,
so the trigger also requires the table's owner, who could drop the trigger anyway).
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION audit_event_fixed_by_db() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    -- The transaction's time, which record() reads under the head lock and hashes: a caller
    -- holding only database credentials cannot choose it. The owner's restore keeps the original.
    IF NOT (current_setting('flows.audit_restore', true) = 'on'
            AND current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID)) THEN
        NEW.occurred_at := now();
    END IF;
    IF NEW.key_id = '' OR NEW.mac !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'audit chain %: an event needs a key id and a mac; append through audit.services.record()',
            NEW.chain USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION audit_event_fixed_by_db() FROM PUBLIC;
"""

BACKWARD = """
CREATE OR REPLACE FUNCTION audit_event_fixed_by_db() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    NEW.occurred_at := now();
    IF NEW.key_id = '' OR NEW.mac !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'audit chain %: an event needs a key id and a mac; append through audit.services.record()',
            NEW.chain USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION audit_event_fixed_by_db() FROM PUBLIC;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_keyed_chain")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
