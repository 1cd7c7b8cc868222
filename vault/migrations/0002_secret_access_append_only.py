"""The secret access log is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE for every role."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION vault_secretaccess_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'the secret access log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE EXECUTE ON FUNCTION vault_secretaccess_refuse_change() FROM PUBLIC;
CREATE TRIGGER secretaccess_append_only BEFORE UPDATE OR DELETE ON vault_secretaccess
    FOR EACH ROW EXECUTE FUNCTION vault_secretaccess_refuse_change();
CREATE TRIGGER secretaccess_no_truncate BEFORE TRUNCATE ON vault_secretaccess
    FOR EACH STATEMENT EXECUTE FUNCTION vault_secretaccess_refuse_change();
"""

BACKWARD = """
DROP TRIGGER secretaccess_no_truncate ON vault_secretaccess;
DROP TRIGGER secretaccess_append_only ON vault_secretaccess;
DROP FUNCTION vault_secretaccess_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("vault", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
