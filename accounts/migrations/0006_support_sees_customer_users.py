"""Support staff also see customer users, invitations and plan requests (view only)."""

from django.db import migrations


def refresh_support_group(apps, schema_editor):
    import importlib

    # The same steps as 0004: create the new models' permissions now, then refresh the group.
    module = importlib.import_module("accounts.migrations.0004_support_group")
    module.create_support_group(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_customer_users")]
    operations = [migrations.RunPython(refresh_support_group, migrations.RunPython.noop)]
