"""The invitation summary the dashboard reads (reports/models.py), kept by triggers on the invitations.

Three statement-level AFTER triggers on `invitations_invitation` (INSERT, UPDATE, DELETE; a
transition table each) call one function. It turns the changed rows into signed contributions
(+1 for each new row, -1 for each old one) and adds their sums to the summary with one upsert
per table, in the writing statement's transaction:

* `reports_clientseats`: per client, the seats as `invitations.selectors.seats_used` counts them
  (pending: `max_uses`; otherwise `used_count`). Every operation moves it, a DELETE included.
* `reports_invitationdaily`: per client and UTC day, issued (by `created_at`) and redeemed / revoked
  / expired (by `finished_at`, with the row's status). INSERT and UPDATE move it; a DELETE does not:
  the cleanup's purge removes finished invitations after the retention period, and the history of
  what was issued and finished stays on the dashboard.

Sums that come to zero write nothing (a resend, a use that is not the last), and rows are upserted
in (client, day) order, seats before days, so two multi-client statements (expiry batches) lock
the same rows in the same order and cannot deadlock each other.

The function is SECURITY DEFINER, owned by the owner, with a pinned search_path and EXECUTE
revoked from PUBLIC (and granted to no role: a trigger needs none to fire). It runs as the owner
whoever writes, so the tenant role, which redeems through the API, needs no privilege on the
summary: it can neither read nor forge it. The owner is subject to FORCE ROW LEVEL SECURITY like
everyone else; the summary tables are in `clients.dbroles.DEFINER_TABLES`, whose owner-only policy
gives it back what it already has.

The backfill reads every existing invitation with FORCE lifted from the invitations table for this
transaction only (the owner's own table; it is forced again before commit). The trigger is created
first and the ALTER holds the table's ACCESS EXCLUSIVE lock until commit, so no write falls between
the backfill and the trigger. History before this migration is what the rows still hold: invitations
purged earlier are not in it.
"""

from django.db import migrations, models
import django.db.models.deletion

# The signed contributions of a statement's changed rows: {source} is a transition table or a union of both.
SEATS = """
    INSERT INTO public.reports_clientseats AS s (client_id, seats)
    SELECT client_id, sum(sign * CASE WHEN status = 'pending' THEN max_uses ELSE used_count END)
      FROM ({source}) changed
     GROUP BY client_id
    HAVING sum(sign * CASE WHEN status = 'pending' THEN max_uses ELSE used_count END) <> 0
     ORDER BY client_id
    ON CONFLICT (client_id) DO UPDATE SET seats = s.seats + excluded.seats;
"""
DAYS = """
    INSERT INTO public.reports_invitationdaily AS d (client_id, day, issued, redeemed, revoked, expired)
    SELECT client_id, day, sum(issued), sum(redeemed), sum(revoked), sum(expired)
      FROM (SELECT client_id, (created_at AT TIME ZONE 'UTC')::date AS day,
                   sign AS issued, 0 AS redeemed, 0 AS revoked, 0 AS expired
              FROM ({source}) changed
            UNION ALL
            SELECT client_id, (finished_at AT TIME ZONE 'UTC')::date, 0,
                   sign * (status = 'accepted')::int, sign * (status = 'revoked')::int, sign * (status = 'expired')::int
              FROM ({source}) changed
             WHERE status <> 'pending' AND finished_at IS NOT NULL) contributions
     GROUP BY client_id, day
    HAVING sum(issued) <> 0 OR sum(redeemed) <> 0 OR sum(revoked) <> 0 OR sum(expired) <> 0
     ORDER BY client_id, day
    ON CONFLICT (client_id, day) DO UPDATE
       SET issued = d.issued + excluded.issued, redeemed = d.redeemed + excluded.redeemed,
           revoked = d.revoked + excluded.revoked, expired = d.expired + excluded.expired;
"""
COLUMNS = "client_id, status, max_uses, used_count, created_at, finished_at"
NEW = f"SELECT 1 AS sign, {COLUMNS} FROM new_rows"
OLD = f"SELECT -1 AS sign, {COLUMNS} FROM old_rows"
BOTH = f"{NEW} UNION ALL {OLD}"

FUNCTION = f"""
CREATE FUNCTION public.invitation_summary() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {SEATS.format(source=NEW)}
        {DAYS.format(source=NEW)}
    ELSIF TG_OP = 'UPDATE' THEN
        {SEATS.format(source=BOTH)}
        {DAYS.format(source=BOTH)}
    ELSE  -- DELETE (a purge): seats are given back, the history stays
        {SEATS.format(source=OLD)}
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.invitation_summary() FROM PUBLIC;
CREATE TRIGGER invitation_summary_insert AFTER INSERT ON public.invitations_invitation
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.invitation_summary();
CREATE TRIGGER invitation_summary_update AFTER UPDATE ON public.invitations_invitation
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION public.invitation_summary();
CREATE TRIGGER invitation_summary_delete AFTER DELETE ON public.invitations_invitation
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.invitation_summary();
"""

BACKFILL = f"""
DO $$
DECLARE
    forced boolean;
BEGIN
    SELECT relforcerowsecurity INTO forced FROM pg_class WHERE oid = 'public.invitations_invitation'::regclass;
    IF forced THEN
        ALTER TABLE public.invitations_invitation NO FORCE ROW LEVEL SECURITY;
    END IF;
    DELETE FROM public.reports_clientseats;
    DELETE FROM public.reports_invitationdaily;
    {SEATS.format(source=f"SELECT 1 AS sign, {COLUMNS} FROM public.invitations_invitation")}
    {DAYS.format(source=f"SELECT 1 AS sign, {COLUMNS} FROM public.invitations_invitation")}
    IF forced THEN
        ALTER TABLE public.invitations_invitation FORCE ROW LEVEL SECURITY;
    END IF;
END
$$;
"""

DROP = """
DROP TRIGGER invitation_summary_insert ON public.invitations_invitation;
DROP TRIGGER invitation_summary_update ON public.invitations_invitation;
DROP TRIGGER invitation_summary_delete ON public.invitations_invitation;
DROP FUNCTION public.invitation_summary();
"""


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("clients", "0006_staff_permissions"),
        ("invitations", "0005_dashboard_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="ClientSeats",
            fields=[
                (
                    "client",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="clients.client",
                    ),
                ),
                ("seats", models.BigIntegerField(default=0)),
            ],
            options={"verbose_name_plural": "client seats"},
        ),
        migrations.CreateModel(
            name="InvitationDaily",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("issued", models.IntegerField(default=0)),
                ("redeemed", models.IntegerField(default=0)),
                ("revoked", models.IntegerField(default=0)),
                ("expired", models.IntegerField(default=0)),
                (
                    "client",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="clients.client",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["day"],
                        include=("issued", "redeemed", "revoked", "expired"),
                        name="invitationdaily_day",
                    )
                ],
                "constraints": [models.UniqueConstraint(fields=("client", "day"), name="invitationdaily_client_day")],
            },
        ),
        migrations.RunSQL(FUNCTION, DROP),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
