"""The "support" group: staff who may look at everything an operator sees and change
nothing (view permissions only). Operators are superusers or get change permissions."""

from django.db import migrations

from accounts.roles import support_group_ensure


def create_support_group(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran; this one needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    support_group_ensure(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def remove_support_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="support").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_idempotencyrecord"),
        ("sessions_app", "0002_session_sender_lease_owner_and_more"),
        ("messaging", "0001_initial"),
        ("webhooks", "0002_delivery_deliveryattempt_webhook_delivery_webhook_and_more"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_support_group, remove_support_group)]
