"""Indexes behind the audit changelist's search: trigram (pg_trgm) for the substring searches, B-tree for the exact ones.

`pg_trgm` is a trusted extension: the owner (CREATE on the database) installs it, into a schema
of its own (`extensions`) that the runtime roles have no USAGE on, so none of its functions
becomes callable by them and `dbroles.verify()` (which checks the functions in `public`) is not
concerned. The LIKE the admin issues needs no function of the extension: only its operator
classes, named in the indexes. A server without the extension (the pgserver fallback build)
gets a warning and no trigram index: substring search then scans the table (docs/audit.md).
The indexes match the expression Django's `icontains` compiles to, `UPPER(col::text) LIKE UPPER(%s)`.
"""

from django.db import migrations, models

TRIGRAM_COLUMNS = ("actor_label", "target_label")

FORWARD = """
DO $$
DECLARE
    extension_schema text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            RAISE WARNING 'pg_trgm is not available on this server: audit substring search runs without an index';
            RETURN;
        END IF;
        CREATE SCHEMA IF NOT EXISTS extensions;
        REVOKE ALL ON SCHEMA extensions FROM PUBLIC;
        CREATE EXTENSION pg_trgm WITH SCHEMA extensions;
    END IF;
    SELECT n.nspname INTO extension_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    EXECUTE format('CREATE INDEX IF NOT EXISTS auditevent_actor_label_trgm ON audit_auditevent'
                   ' USING gin (upper(actor_label::text) %I.gin_trgm_ops)', extension_schema);
    EXECUTE format('CREATE INDEX IF NOT EXISTS auditevent_target_label_trgm ON audit_auditevent'
                   ' USING gin (upper(target_label::text) %I.gin_trgm_ops)', extension_schema);
END
$$;
"""

# The extension stays: other objects may come to use it, and dropping it needs its owner.
BACKWARD = """
DROP INDEX IF EXISTS auditevent_target_label_trgm;
DROP INDEX IF EXISTS auditevent_actor_label_trgm;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0006_owner_restore_keeps_time'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(fields=['target_id'], name='auditevent_target_id'),
        ),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(fields=['request_id'], name='auditevent_request'),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
