"""A secret's usage only moves forward, for every role: the tenant role counts uses, it cannot erase them."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION secret_usage_forward() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.usage_count < OLD.usage_count
       OR (OLD.last_used_at IS NOT NULL AND (NEW.last_used_at IS NULL OR NEW.last_used_at < OLD.last_used_at)) THEN
        RAISE EXCEPTION 'secret %: usage never goes back', OLD.name USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION secret_usage_forward() FROM PUBLIC;
CREATE TRIGGER secret_usage_forward BEFORE UPDATE ON vault_secret
    FOR EACH ROW EXECUTE FUNCTION secret_usage_forward();
"""

BACKWARD = """
DROP TRIGGER secret_usage_forward ON vault_secret;
DROP FUNCTION secret_usage_forward();
"""


class Migration(migrations.Migration):
    dependencies = [("vault", "0002_secret_access_append_only")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
