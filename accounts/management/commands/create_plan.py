from django.core.management.base import BaseCommand

from accounts.services import plan_upsert


class Command(BaseCommand):
    help = "Create a plan, or update its limits if it exists."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--max-sessions", type=int, required=True)
        parser.add_argument("--daily-messages", type=int, required=True)
        parser.add_argument("--rate-per-minute", type=int, required=True)
        parser.add_argument("--max-concurrent", type=int, required=True)

    def handle(self, *args, **options):
        for option in ("max_sessions", "daily_messages", "rate_per_minute", "max_concurrent"):
            if options[option] < 0:
                self.stderr.write(f"--{option.replace('_', '-')} must not be negative")
                raise SystemExit(2)
        plan, created = plan_upsert(
            name=options["name"],
            max_sessions=options["max_sessions"],
            daily_message_limit=options["daily_messages"],
            rate_limit_per_minute=options["rate_per_minute"],
            max_concurrent_requests=options["max_concurrent"],
        )
        self.stdout.write(f"{'Created' if created else 'Updated'} plan {plan.name}")
