"""Platform-wide summaries, so that a platform-wide dashboard reads no row per client (docs/console.md).

* `reports_platformdaily`: the per-client daily counts summed over every client, 16 rows a day (sharded by
  the client id's last byte so that writes of different clients seldom wait on one row). The invitations'
  trigger function `invitation_summary()` (0001) is replaced by one that also upserts these rows, after
  its two other upserts, in (day, shard) order.
* `reports_clienttally`: clients per tier and status, kept by three new statement-level triggers on
  `clients_client` calling `client_tally()` (SECURITY DEFINER, pinned search_path, EXECUTE granted to no
  role). An UPDATE that moves no client between tiers or statuses writes nothing.
* `reports_clientseats.tier_id`: the client's tier, set when the row is first written and moved by
  `client_tally()` when a client changes tier; the partial index (tier, seats DESC, client) gives each
  tier's ten fullest clients directly, and within a tier the share of the limit orders as the seats.

Both new tables hold no client's data (counts over all clients): no `client_id`, no RLS; the console role
may read them (clients/dbroles.py), the tenant role nothing. The backfill runs with the writers of both
source tables locked out until commit, FORCE lifted on the owner's own tables for this transaction only.
"""

import django.db.models.deletion
from django.db import migrations, models

import importlib

_first = importlib.import_module("reports.migrations.0001_dashboard_summary")
COLUMNS, NEW, OLD, BOTH, DAYS = _first.COLUMNS, _first.NEW, _first.OLD, _first.BOTH, _first.DAYS

SHARD = "get_byte(uuid_send(client_id), 15) % 16"  # reports.models.PLATFORM_SHARDS

# As 0001's SEATS, with the client's tier on a new row.
SEATS = """
    INSERT INTO public.reports_clientseats AS s (client_id, seats, tier_id)
    SELECT client_id, seats, (SELECT c.tier_id FROM public.clients_client c WHERE c.id = client_id)
      FROM (SELECT client_id, sum(sign * CASE WHEN status = 'pending' THEN max_uses ELSE used_count END) AS seats
              FROM ({source}) changed
             GROUP BY client_id) sums
     WHERE seats <> 0
     ORDER BY client_id
    ON CONFLICT (client_id) DO UPDATE SET seats = s.seats + excluded.seats;
"""
PLATFORM = f"""
    INSERT INTO public.reports_platformdaily AS p (day, shard, issued, redeemed, revoked, expired)
    SELECT day, shard, sum(issued), sum(redeemed), sum(revoked), sum(expired)
      FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, {SHARD} AS shard,
                   sign AS issued, 0 AS redeemed, 0 AS revoked, 0 AS expired
              FROM ({{source}}) changed
            UNION ALL
            SELECT (finished_at AT TIME ZONE 'UTC')::date, {SHARD}, 0,
                   sign * (status = 'accepted')::int, sign * (status = 'revoked')::int, sign * (status = 'expired')::int
              FROM ({{source}}) changed
             WHERE status <> 'pending' AND finished_at IS NOT NULL) contributions
     GROUP BY day, shard
    HAVING sum(issued) <> 0 OR sum(redeemed) <> 0 OR sum(revoked) <> 0 OR sum(expired) <> 0
     ORDER BY day, shard
    ON CONFLICT (day, shard) DO UPDATE
       SET issued = p.issued + excluded.issued, redeemed = p.redeemed + excluded.redeemed,
           revoked = p.revoked + excluded.revoked, expired = p.expired + excluded.expired;
"""


def invitation_summary(seats: str, platform: bool) -> str:
    def days(source):
        return DAYS.format(source=source) + (PLATFORM.format(source=source) if platform else "")

    return f"""
CREATE OR REPLACE FUNCTION public.invitation_summary() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {seats.format(source=NEW)}
        {days(NEW)}
    ELSIF TG_OP = 'UPDATE' THEN
        {seats.format(source=BOTH)}
        {days(BOTH)}
    ELSE  -- DELETE (a purge): seats are given back, the history stays
        {seats.format(source=OLD)}
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.invitation_summary() FROM PUBLIC;
"""


CLIENT_COLUMNS = "id, tier_id, status"
TALLY = """
    INSERT INTO public.reports_clienttally AS t (tier_id, status, clients)
    SELECT tier_id, status, sum(sign)
      FROM ({source}) changed
     GROUP BY tier_id, status
    HAVING sum(sign) <> 0
     ORDER BY tier_id, status
    ON CONFLICT (tier_id, status) DO UPDATE SET clients = t.clients + excluded.clients;
"""
CLIENT_NEW = f"SELECT 1 AS sign, {CLIENT_COLUMNS} FROM new_rows"
CLIENT_OLD = f"SELECT -1 AS sign, {CLIENT_COLUMNS} FROM old_rows"

# Writers of both sources wait until commit: nothing falls between the new functions and the backfill.
LOCK = "LOCK TABLE public.clients_client, public.invitations_invitation IN SHARE ROW EXCLUSIVE MODE;"

FUNCTIONS = f"""
{LOCK}
{invitation_summary(SEATS, platform=True)}
CREATE FUNCTION public.client_tally() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {TALLY.format(source=CLIENT_NEW)}
    ELSIF TG_OP = 'UPDATE' THEN
        {TALLY.format(source=f"{CLIENT_NEW} UNION ALL {CLIENT_OLD}")}
        UPDATE public.reports_clientseats s SET tier_id = n.tier_id
          FROM new_rows n
         WHERE s.client_id = n.id AND s.tier_id IS DISTINCT FROM n.tier_id;
    ELSE
        {TALLY.format(source=CLIENT_OLD)}
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.client_tally() FROM PUBLIC;
CREATE TRIGGER client_tally_insert AFTER INSERT ON public.clients_client
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.client_tally();
CREATE TRIGGER client_tally_update AFTER UPDATE ON public.clients_client
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION public.client_tally();
CREATE TRIGGER client_tally_delete AFTER DELETE ON public.clients_client
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.client_tally();
"""

SOURCES = ("clients_client", "reports_invitationdaily", "reports_clientseats")
BACKFILL = f"""
DO $$
DECLARE
    source text;
    forced text[] := ARRAY[]::text[];
BEGIN
    FOREACH source IN ARRAY ARRAY{list(SOURCES)} LOOP
        IF (SELECT relforcerowsecurity FROM pg_class WHERE oid = ('public.' || source)::regclass) THEN
            EXECUTE format('ALTER TABLE public.%I NO FORCE ROW LEVEL SECURITY', source);
            forced := forced || source;
        END IF;
    END LOOP;
    DELETE FROM public.reports_clienttally;
    DELETE FROM public.reports_platformdaily;
    {TALLY.format(source=f"SELECT 1 AS sign, {CLIENT_COLUMNS} FROM public.clients_client")}
    INSERT INTO public.reports_platformdaily (day, shard, issued, redeemed, revoked, expired)
    SELECT day, {SHARD}, sum(issued), sum(redeemed), sum(revoked), sum(expired)
      FROM public.reports_invitationdaily
     GROUP BY day, {SHARD}
    HAVING sum(issued) <> 0 OR sum(redeemed) <> 0 OR sum(revoked) <> 0 OR sum(expired) <> 0;
    UPDATE public.reports_clientseats s SET tier_id = c.tier_id FROM public.clients_client c WHERE c.id = s.client_id;
    FOREACH source IN ARRAY forced LOOP
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', source);
    END LOOP;
END
$$;
"""

DROP = f"""
DROP TRIGGER client_tally_insert ON public.clients_client;
DROP TRIGGER client_tally_update ON public.clients_client;
DROP TRIGGER client_tally_delete ON public.clients_client;
DROP FUNCTION public.client_tally();
{invitation_summary(_first.SEATS, platform=False)}
"""



class Migration(migrations.Migration):

    dependencies = [
        ('clients', '0006_staff_permissions'),
        ('reports', '0001_dashboard_summary'),
    ]

    operations = [
        migrations.CreateModel(
            name='ClientTally',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(max_length=12)),
                ('clients', models.BigIntegerField(default=0)),
            ],
            options={
                'verbose_name_plural': 'client tallies',
            },
        ),
        migrations.CreateModel(
            name='PlatformDaily',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('shard', models.SmallIntegerField()),
                ('issued', models.BigIntegerField(default=0)),
                ('redeemed', models.BigIntegerField(default=0)),
                ('revoked', models.BigIntegerField(default=0)),
                ('expired', models.BigIntegerField(default=0)),
            ],
            options={
                'verbose_name_plural': 'platform daily',
            },
        ),
        migrations.AddField(
            model_name='clientseats',
            name='tier',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='clients.tier'),
        ),
        migrations.AddIndex(
            model_name='clientseats',
            index=models.Index(condition=models.Q(('seats__gt', 0)), fields=['tier', '-seats', 'client'], name='clientseats_tier_seats'),
        ),
        migrations.AddField(
            model_name='clienttally',
            name='tier',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='clients.tier'),
        ),
        migrations.AddConstraint(
            model_name='platformdaily',
            constraint=models.UniqueConstraint(fields=('day', 'shard'), name='platformdaily_day_shard'),
        ),
        migrations.AddConstraint(
            model_name='clienttally',
            constraint=models.UniqueConstraint(fields=('tier', 'status'), name='clienttally_tier_status'),
        ),
        migrations.RunSQL(FUNCTIONS, DROP),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
