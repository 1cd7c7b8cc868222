"""The staff roles as groups (staff/roles.py); every later `migrate` converges them again."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from staff.roles import converge

    converge(apps, schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0001_initial"),
        ("clients", "0006_staff_permissions"),
        ("invitations", "0003_resend_permission"),
        ("audit", "0004_chain_rules"),
        ("vault", "0003_secret_usage_forward"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
