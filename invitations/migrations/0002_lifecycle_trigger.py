"""An invitation's lifecycle, enforced by the database for every role: what the tenant role could rewrite, it cannot.

The tenant role may only UPDATE the columns redemption changes (column grants in
clients/dbroles.py); this trigger adds the rules a grant cannot express:

* `used_count` moves up one use at a time, and only on a pending invitation;
* `max_uses` is fixed at issue;
* status moves pending → accepted (all uses taken) | expired | revoked (with who revoked it, a
  column only the console role may write), and back from expired to pending only by a resend (a
  new token and a higher resend count, columns only the console role may write); accepted and
  revoked are final;
* the lifecycle's timestamps are the database's: a status change stamps `finished_at` (and
  `accepted_at`) with the transaction's time, a revival clears it, and without a status change
  they stay as they are — a back-dated `finished_at` would let the tenant role get an invitation
  purged early, a far-future one keep it past retention.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION invitation_enforce_lifecycle() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.used_count < OLD.used_count OR NEW.used_count > OLD.used_count + 1 THEN
        RAISE EXCEPTION 'invitation %: used_count moves up by one use at a time', OLD.code
            USING ERRCODE = 'check_violation';
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
    IF NEW.status = OLD.status THEN
        IF NEW.finished_at IS DISTINCT FROM OLD.finished_at OR NEW.accepted_at IS DISTINCT FROM OLD.accepted_at THEN
            RAISE EXCEPTION 'invitation %: its timestamps change only with its status', OLD.code
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status = 'pending' AND NEW.status IN ('accepted', 'expired', 'revoked') THEN
        IF NEW.status = 'revoked' AND (NEW.revoked_by = '' OR NEW.revoked_at IS NULL) THEN
            RAISE EXCEPTION 'invitation %: revoking needs who revoked it', OLD.code
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.finished_at := now();
        IF NEW.status = 'accepted' THEN
            NEW.accepted_at := now();
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status = 'expired' AND NEW.status = 'pending'
       AND NEW.resend_count > OLD.resend_count AND NEW.token_hash <> OLD.token_hash THEN
        NEW.finished_at := NULL;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'invitation %: % to % is not allowed', OLD.code, OLD.status, NEW.status
        USING ERRCODE = 'check_violation';
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
