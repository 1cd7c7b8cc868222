"""The chain's head follows its events, enforced by the database for every role.

Before: the head row was moved by `record()`, so the tenant role (which may UPDATE seq and hash
of its client's head) could set it back and make every later write of that client collide on
`(client_id, chain, seq)`, or insert an event the head did not know of, with the same effect.
Now an event must link to the current head (next seq, previous hash), the insert itself moves
the head, and the head can only move to an event that exists and links to where it was.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION audit_event_links_to_head() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    head_seq bigint;
    head_hash text;
BEGIN
    IF NEW.client_id IS NULL THEN
        SELECT seq, hash INTO head_seq, head_hash FROM audit_chainhead
        WHERE client_id IS NULL AND chain = NEW.chain FOR UPDATE;
    ELSE
        SELECT seq, hash INTO head_seq, head_hash FROM audit_chainhead
        WHERE client_id = NEW.client_id AND chain = NEW.chain FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit chain %: no head row; append through audit.services.record()', NEW.chain
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.seq <> head_seq + 1 OR NEW.prev_hash <> head_hash THEN
        RAISE EXCEPTION 'audit chain %: event % does not follow the head (%)', NEW.chain, NEW.seq, head_seq
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION audit_event_moves_head() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    IF NEW.client_id IS NULL THEN
        UPDATE audit_chainhead SET seq = NEW.seq, hash = NEW.hash WHERE client_id IS NULL AND chain = NEW.chain;
    ELSE
        UPDATE audit_chainhead SET seq = NEW.seq, hash = NEW.hash
        WHERE client_id = NEW.client_id AND chain = NEW.chain;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION audit_head_follows_events() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    last_seq bigint;
    last_hash text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.client_id IS DISTINCT FROM OLD.client_id OR NEW.chain <> OLD.chain OR NEW.seq <> OLD.seq + 1 THEN
            RAISE EXCEPTION 'audit chain %: the head only moves to the next event', OLD.chain
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    -- The event the head names must exist (and, when it moves, link to where it was).
    IF NEW.client_id IS NULL THEN
        SELECT seq, hash INTO last_seq, last_hash FROM audit_auditevent
        WHERE client_id IS NULL AND chain = NEW.chain ORDER BY seq DESC LIMIT 1;
    ELSE
        SELECT seq, hash INTO last_seq, last_hash FROM audit_auditevent
        WHERE client_id = NEW.client_id AND chain = NEW.chain ORDER BY seq DESC LIMIT 1;
    END IF;
    IF coalesce(last_seq, 0) <> NEW.seq
       OR coalesce(last_hash, '0000000000000000000000000000000000000000000000000000000000000000') <> NEW.hash THEN
        RAISE EXCEPTION 'audit chain %: the head must name its last event', NEW.chain
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

REVOKE EXECUTE ON FUNCTION audit_event_links_to_head(), audit_event_moves_head(), audit_head_follows_events()
    FROM PUBLIC;
CREATE TRIGGER audit_event_links_to_head BEFORE INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_links_to_head();
CREATE TRIGGER audit_event_moves_head AFTER INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_moves_head();
CREATE TRIGGER chainhead_follows_events BEFORE INSERT OR UPDATE ON audit_chainhead
    FOR EACH ROW EXECUTE FUNCTION audit_head_follows_events();
"""

BACKWARD = """
DROP TRIGGER chainhead_follows_events ON audit_chainhead;
DROP TRIGGER audit_event_moves_head ON audit_auditevent;
DROP TRIGGER audit_event_links_to_head ON audit_auditevent;
DROP FUNCTION audit_head_follows_events(), audit_event_moves_head(), audit_event_links_to_head();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_chain_head")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
