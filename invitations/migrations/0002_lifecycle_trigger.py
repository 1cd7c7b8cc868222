"""An invitation's lifecycle, enforced by the database for every role: what the tenant role could rewrite, it cannot.

The tenant role may only UPDATE the columns redemption changes (column grants in
clients/dbroles.py); this trigger adds the rules a grant cannot express:

* `used_count` never decreases, and only a pending invitation is used;
* `max_uses` is fixed at issue;
* status moves pending → accepted (all uses taken) | expired | revoked, and back from expired
  to pending only by a resend (a new token and a higher resend count, columns only the console
  role may write); accepted and revoked are final.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION invitation_enforce_lifecycle() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.used_count < OLD.used_count THEN
        RAISE EXCEPTION 'invitation %: used_count never decreases', OLD.code USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.used_count > OLD.used_count AND OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'invitation %: only a pending invitation can be used', OLD.code
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.max_uses <> OLD.max_uses THEN
        RAISE EXCEPTION 'invitation %: max_uses is fixed when it is issued', OLD.code
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'accepted' AND NEW.used_count < NEW.max_uses THEN
        RAISE EXCEPTION 'invitation %: accepted only when every use is taken', OLD.code
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> OLD.status AND NOT (
        (OLD.status = 'pending' AND NEW.status IN ('accepted', 'expired', 'revoked'))
        OR (OLD.status = 'expired' AND NEW.status = 'pending'
            AND NEW.resend_count > OLD.resend_count AND NEW.token_hash <> OLD.token_hash)
    ) THEN
        RAISE EXCEPTION 'invitation %: % to % is not allowed', OLD.code, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION invitation_enforce_lifecycle() FROM PUBLIC;
CREATE TRIGGER invitation_lifecycle BEFORE UPDATE ON invitations_invitation
    FOR EACH ROW EXECUTE FUNCTION invitation_enforce_lifecycle();
"""

BACKWARD = """
DROP TRIGGER invitation_lifecycle ON invitations_invitation;
DROP FUNCTION invitation_enforce_lifecycle();
"""


class Migration(migrations.Migration):
    dependencies = [("invitations", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
