"""`api_authenticate` plans its statements as the point lookups they are (docs/performance.md, "Tenant API").

Each statement of the function finds one row by an index: the key by its unique prefix, its client
by primary key, that client's data keys by `client_id`, the rate window and the usage counter by
their unique keys. With a few hundred clients the planner's cached plan for the key lookup was a
hash join over the whole `clients_client` table plus a hashed EXISTS over every `vault_datakey`
row — on each call, work that grows with the number of clients. `SET enable_seqscan = off` on the
function (its own statements only; restored when it returns) gives index lookups at any size:
the definer call measured ~60–70 µs less at 200 clients (pgbench-like loop of the API's own
message, docs/performance.md). Body, signature, answer and writes are those of 0004.
"""

from django.db import migrations

SIGNATURE = "public.api_authenticate(text, text, integer, text)"


class Migration(migrations.Migration):
    dependencies = [("api", "0004_authenticate_meters")]

    operations = [
        migrations.RunSQL(
            f"ALTER FUNCTION {SIGNATURE} SET enable_seqscan = off;",
            f"ALTER FUNCTION {SIGNATURE} RESET enable_seqscan;",
        )
    ]
