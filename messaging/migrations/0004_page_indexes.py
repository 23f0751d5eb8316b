"""Indexes in the order the list endpoints read on PostgreSQL (`id COLLATE "C"`, see
config/pagination.py). SQLite keeps the plain (scope, id) indexes of the models."""

from django.db import migrations

INDEXES = [
    ("message_account_id_c", "messaging_message", "account_id"),
    ("delivery_webhook_id_c", "webhooks_delivery", "webhook_id"),
    ("session_account_id_c", "sessions_app_session", "account_id"),
    ("webhook_account_id_c", "webhooks_webhook", "account_id"),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table, scope in INDEXES:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS {name} ON {table} ({scope}, (id COLLATE "C") DESC)')


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _scope in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0003_message_media_file"),
        ("webhooks", "0002_delivery_deliveryattempt_webhook_delivery_webhook_and_more"),
        ("sessions_app", "0003_session_engine_device"),
    ]
    operations = [migrations.RunPython(create, drop)]
