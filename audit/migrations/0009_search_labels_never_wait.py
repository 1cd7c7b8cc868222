"""The label table no longer makes audit writers wait on each other (found by the review of 0008).

Under 0008's unique index on (field, label), the trigger's `INSERT … ON CONFLICT DO NOTHING` of a label
new to the trail waited for any other open transaction that had inserted the same label, whichever client
it wrote for: writers of different clients queued on each other (record() promises they never do), and two
writers taking two new labels in opposite orders deadlocked. The index is now a plain one, and the trigger
inserts a label it does not find: two transactions racing on one new label may both add it, and the
changelist reads labels with DISTINCT. Nothing in the trigger can wait on another transaction.

The reverse removes duplicates before it restores the unique constraint and 0008's function.
"""

import importlib

from django.db import migrations, models

_0008 = importlib.import_module("audit.migrations.0008_search_labels")

FEED = """
CREATE OR REPLACE FUNCTION audit_event_feeds_search_labels() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    actor_upper text := upper(NEW.actor_label);
    target_upper text := upper(NEW.target_label);
BEGIN
    -- No unique index, no ON CONFLICT: inserting never waits for another transaction (a label two writers add at
    -- the same moment stands twice; readers take it once). A known label: one index probe, nothing written.
    IF actor_upper <> '' AND NOT EXISTS (
        SELECT 1 FROM public.audit_searchlabel WHERE field = 'actor' AND label = actor_upper
    ) THEN
        INSERT INTO public.audit_searchlabel (field, label) VALUES ('actor', actor_upper);
    END IF;
    IF target_upper <> '' AND NOT EXISTS (
        SELECT 1 FROM public.audit_searchlabel WHERE field = 'target' AND label = target_upper
    ) THEN
        INSERT INTO public.audit_searchlabel (field, label) VALUES ('target', target_upper);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION audit_event_feeds_search_labels() FROM PUBLIC;
"""

# 0008's function body, as CREATE OR REPLACE (its trigger stays).
PREVIOUS_FEED = _0008.FEED.split("CREATE TRIGGER")[0].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)

DEDUPLICATE = """
DELETE FROM audit_searchlabel duplicate USING audit_searchlabel kept
 WHERE duplicate.field = kept.field AND duplicate.label = kept.label AND duplicate.id > kept.id;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_search_labels")]

    operations = [
        migrations.RemoveConstraint(model_name="searchlabel", name="audit_searchlabel_field_label"),
        # Reversed after the index is dropped and before the unique constraint comes back.
        migrations.RunSQL(migrations.RunSQL.noop, DEDUPLICATE),
        migrations.AddIndex(
            model_name="searchlabel",
            index=models.Index(fields=["field", "label"], name="audit_searchlabel_lookup"),
        ),
        migrations.RunSQL(FEED, PREVIOUS_FEED),
    ]
