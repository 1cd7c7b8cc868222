"""Seed the tiers from clients/tiers.json (free, pro, enterprise)."""

import json
from pathlib import Path

from django.db import migrations

TIERS_FILE = Path(__file__).resolve().parent.parent / "tiers.json"


def seed_tiers(apps, schema_editor):
    Tier = apps.get_model("clients", "Tier")
    for tier in json.loads(TIERS_FILE.read_text()):
        Tier.objects.using(schema_editor.connection.alias).update_or_create(code=tier["code"], defaults=tier)


class Migration(migrations.Migration):
    dependencies = [("clients", "0001_initial")]
    operations = [migrations.RunPython(seed_tiers, migrations.RunPython.noop)]
