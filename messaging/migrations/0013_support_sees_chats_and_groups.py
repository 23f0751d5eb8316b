"""Support staff also see chats, groups and hidden-id mappings (view only)."""

from django.db import migrations


def refresh_support_group(apps, schema_editor):
    import importlib

    # The same steps as accounts 0004: create the new models' permissions, refresh the group.
    module = importlib.import_module("accounts.migrations.0004_support_group")
    module.create_support_group(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0012_chats"),
        ("sessions_app", "0007_groups_and_lid_mappings"),
        ("accounts", "0006_support_sees_customer_users"),
    ]
    operations = [migrations.RunPython(refresh_support_group, migrations.RunPython.noop)]
