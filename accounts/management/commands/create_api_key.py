from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, Plan
from accounts.scopes import ALL_SCOPES
from accounts.services import account_create, api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for an account (creating the account on --plan if needed). "
        "The key is printed alone on the last line; it cannot be shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="account name")
        parser.add_argument("--plan", default=None, help="plan for a new account (default free)")
        parser.add_argument("--scopes", default=None,
                            help=f"comma-separated, default all: {','.join(ALL_SCOPES)}")
        parser.add_argument("--expires-in", type=int, default=None, metavar="SECONDS")
        parser.add_argument("--name", default="", help="a label for the key")

    @transaction.atomic
    def handle(self, *args, **options):
        scopes = None
        if options["scopes"] is not None:
            scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
            unknown = sorted(set(scopes) - set(ALL_SCOPES))
            if unknown or not scopes:
                raise CommandError(
                    f"unknown scopes: {', '.join(unknown) or '(none given)'}; "
                    f"valid: {', '.join(ALL_SCOPES)}"
                )
        expires_at = None
        if options["expires_in"] is not None:
            if options["expires_in"] <= 0:
                raise CommandError("--expires-in must be a positive number of seconds")
            expires_at = timezone.now() + timedelta(seconds=options["expires_in"])

        account = Account.objects.select_related("plan").filter(name=options["account"]).first()
        if account is None:
            plan_name = options["plan"] or "free"
            plan = Plan.objects.filter(name=plan_name).first()
            if plan is None:
                raise CommandError(f"no plan named {plan_name!r}")
            account = account_create(name=options["account"], plan=plan)
            self.stdout.write(f"Created account {account.name} ({account.id}) on plan {plan}")
        elif options["plan"] and account.plan.name != options["plan"]:
            raise CommandError(
                f"account {account.name} is on plan {account.plan.name}, not {options['plan']}; "
                "change its plan in the admin"
            )

        key, raw = api_key_create(
            account=account, name=options["name"], scopes=scopes, expires_at=expires_at
        )
        self.stdout.write(
            f"API key {key.prefix} for {account.name}, scopes {','.join(key.scopes)}"
            + (f", expires {key.expires_at:%Y-%m-%dT%H:%M:%SZ}" if key.expires_at else "")
        )
        self.stdout.write(raw)
