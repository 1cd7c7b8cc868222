"""Keyed chain: each event carries an HMAC of its hash (key id + mac), and the database fixes its time.

Existing events keep empty key_id and mac: `verify_audit` checks them as legacy, unkeyed events,
accepted only before a chain's first keyed event. From here on the database refuses an event
without a key id and a well-formed mac, and sets `occurred_at` itself (the transaction's time), so
a caller cannot backdate one; `seq` and `prev_hash` were already checked against the head (0004).
Also the signed checkpoints' table, append-only like the trail.
"""

from django.db import migrations, models

FORWARD = """
CREATE FUNCTION audit_event_fixed_by_db() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    -- The transaction's time, which record() reads under the head lock and hashes: a caller
    -- holding only database credentials cannot choose it.
    NEW.occurred_at := now();
    IF NEW.key_id = '' OR NEW.mac !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'audit chain %: an event needs a key id and a mac; append through audit.services.record()',
            NEW.chain USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION audit_event_fixed_by_db() FROM PUBLIC;
CREATE TRIGGER audit_event_fixed_by_db BEFORE INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_fixed_by_db();
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""

BACKWARD = """
DROP TRIGGER audit_no_truncate ON audit_checkpoint;
DROP TRIGGER audit_append_only ON audit_checkpoint;
DROP TRIGGER audit_event_fixed_by_db ON audit_auditevent;
DROP FUNCTION audit_event_fixed_by_db();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0004_chain_rules'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditevent',
            name='key_id',
            field=models.CharField(blank=True, default='', max_length=32),
        ),
        migrations.AddField(
            model_name='auditevent',
            name='mac',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.CreateModel(
            name='Checkpoint',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('client_id', models.UUIDField(blank=True, null=True)),
                ('chain', models.CharField(max_length=40)),
                ('seq', models.BigIntegerField()),
                ('hash', models.CharField(max_length=64)),
                ('signed_at', models.DateTimeField()),
                ('key_id', models.CharField(max_length=32)),
                ('signature', models.CharField(max_length=100)),
            ],
            options={
                'indexes': [models.Index(fields=['client_id', 'chain', '-seq'], name='audit_checkpoint_chain')],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
