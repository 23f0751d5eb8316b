from django.db import migrations

# name, max sessions, messages per UTC day, requests per minute per key, in-flight per key
DEFAULT_PLANS = [
    ("free", 1, 100, 60, 5),
    ("pro", 5, 10_000, 600, 20),
    ("business", 50, 100_000, 3_000, 50),
]


def create_plans(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for name, sessions, daily, rate, concurrent in DEFAULT_PLANS:
        Plan.objects.get_or_create(
            name=name,
            defaults={
                "max_sessions": sessions,
                "daily_message_limit": daily,
                "rate_limit_per_minute": rate,
                "max_concurrent_requests": concurrent,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
