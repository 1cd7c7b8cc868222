"""Search over labels that stays flat at millions of events: a table of the trail's distinct labels.

`audit_searchlabel` holds every distinct actor label and target label, upper-cased (the expression
Django's `icontains` compiles to): thousands of rows where the trail holds millions, since labels
repeat. The changelist finds the labels containing a term by trigram there, then each label's events
newest first by equality on two new B-tree indexes, `(upper(label), occurred_at DESC, id DESC)`, merged
in time order (audit/admin.py). The event table's own trigram indexes (0007), whose posting lists grow
with the trail, are dropped: nothing reads them any more, and every insert paid for them.

The table is kept by `audit_event_feeds_search_labels()`, an AFTER INSERT trigger on the events:
SECURITY DEFINER (it writes as the owner whoever inserts the event: the tenant role holds nothing on
the table, the console role only SELECT, clients/dbroles.py), pinned search_path, EXECUTE granted to no
role. A label already there costs one index probe per column; a new one, one insert. The backfill
reads the trail once (FORCE lifted on the owner's own table for this transaction only; the ALTER
keeps writers out until commit, and their events then fire the trigger).
"""

import importlib

import django.db.models.functions.text
from django.db import migrations, models

_trigram = importlib.import_module("audit.migrations.0007_browsing_indexes")

FEED = """
CREATE FUNCTION audit_event_feeds_search_labels() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    actor_upper text := upper(NEW.actor_label);
    target_upper text := upper(NEW.target_label);
BEGIN
    -- Check first: the common case (a known label) then reads one index entry and writes nothing.
    IF actor_upper <> '' AND NOT EXISTS (
        SELECT 1 FROM public.audit_searchlabel WHERE field = 'actor' AND label = actor_upper
    ) THEN
        INSERT INTO public.audit_searchlabel (field, label) VALUES ('actor', actor_upper) ON CONFLICT DO NOTHING;
    END IF;
    IF target_upper <> '' AND NOT EXISTS (
        SELECT 1 FROM public.audit_searchlabel WHERE field = 'target' AND label = target_upper
    ) THEN
        INSERT INTO public.audit_searchlabel (field, label) VALUES ('target', target_upper) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION audit_event_feeds_search_labels() FROM PUBLIC;
CREATE TRIGGER audit_event_feeds_search_labels AFTER INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_feeds_search_labels();
"""

# Also run by bench/audit.py after its COPY (triggers off). One pass over the trail.
BACKFILL = """
INSERT INTO audit_searchlabel (field, label)
SELECT DISTINCT v.field, v.label
  FROM audit_auditevent e
 CROSS JOIN LATERAL (VALUES ('actor', upper(e.actor_label)), ('target', upper(e.target_label))) v (field, label)
 WHERE v.label <> ''
ON CONFLICT DO NOTHING;
"""

FORWARD = f"""
{FEED}
ALTER TABLE audit_auditevent NO FORCE ROW LEVEL SECURITY;
{BACKFILL}
ALTER TABLE audit_auditevent FORCE ROW LEVEL SECURITY;
DO $$
DECLARE
    extension_schema text;
BEGIN
    SELECT n.nspname INTO extension_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    IF extension_schema IS NULL THEN
        RAISE WARNING 'pg_trgm is not installed: audit label search runs without a trigram index';
        RETURN;
    END IF;
    EXECUTE format('CREATE INDEX audit_searchlabel_trgm ON audit_searchlabel USING gin (label %I.gin_trgm_ops)',
                   extension_schema);
END
$$;
DROP INDEX IF EXISTS auditevent_target_label_trgm;
DROP INDEX IF EXISTS auditevent_actor_label_trgm;
-- The planner's statistics of the new index expressions (upper(label)): how many events each label has.
ANALYZE audit_auditevent;
ANALYZE audit_searchlabel;
"""

BACKWARD = f"""
DROP TRIGGER audit_event_feeds_search_labels ON audit_auditevent;
DROP FUNCTION audit_event_feeds_search_labels();
DROP INDEX IF EXISTS audit_searchlabel_trgm;
{_trigram.FORWARD}
"""


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0007_browsing_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="SearchLabel",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "field",
                    models.CharField(choices=[("actor", "actor label"), ("target", "target label")], max_length=6),
                ),
                ("label", models.TextField()),
            ],
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                django.db.models.functions.text.Upper("actor_label"),
                models.OrderBy(models.F("occurred_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="auditevent_actor_label_time",
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                django.db.models.functions.text.Upper("target_label"),
                models.OrderBy(models.F("occurred_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="auditevent_target_label_time",
            ),
        ),
        migrations.AddConstraint(
            model_name="searchlabel",
            constraint=models.UniqueConstraint(fields=("field", "label"), name="audit_searchlabel_field_label"),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
