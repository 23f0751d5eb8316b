"""Make the embedded mode usable at once: an admin login and a ready API key, kept in
DATA_DIR/dev-credentials.json (never for production: it holds secrets in plain text)."""

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.authentication import KEY_PATTERN, hash_api_key
from accounts.models import Account, ApiKey, MemberRole, Plan
from accounts.services import account_create, api_key_create, member_create

DEMO_CUSTOMER = "demo@example.com"


class Command(BaseCommand):
    help = "Create (or reuse) a demo account, API key and admin login for local use."

    def add_arguments(self, parser):
        parser.add_argument("--port", default="8000", help="the port the links point at")

    def handle(self, *args, **options):
        path = settings.DATA_DIR / "dev-credentials.json"
        stored = json.loads(path.read_text()) if path.exists() else {}

        User = get_user_model()
        password = stored.get("admin_password") or secrets.token_urlsafe(12)
        admin = User.objects.filter(username="admin").first()
        if admin is None:
            User.objects.create_superuser("admin", "admin@example.com", password)
        elif not admin.check_password(password):
            admin.set_password(password)
            admin.save(update_fields=["password"])

        account = Account.objects.filter(name="demo").first() or account_create(
            name="demo", plan=Plan.objects.get(name="pro")
        )
        api_key = stored.get("api_key", "")
        if not self._key_works(api_key):
            _, api_key = api_key_create(account=account, name="embedded-mode demo key")

        # A customer user (owner of the demo account) for the dashboard.
        customer_password = stored.get("customer_password") or secrets.token_urlsafe(12)
        customer = User.objects.filter(username=DEMO_CUSTOMER).first()
        if customer is None:
            member_create(account=account, email=DEMO_CUSTOMER, password=customer_password,
                          role=MemberRole.OWNER)
        elif not customer.check_password(customer_password):
            customer.set_password(customer_password)
            customer.save(update_fields=["password"])

        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"admin_password": password, "api_key": api_key,
                                    "customer_password": customer_password}))
        path.chmod(0o600)
        base = f"http://127.0.0.1:{options['port']}"
        self.stdout.write(f"Admin:     {base}/admin/  user admin  password {password}")
        self.stdout.write(f"Dashboard: {base}/dashboard/  email {DEMO_CUSTOMER}  "
                          f"password {customer_password}")
        self.stdout.write(f"API key:   {api_key}")

    @staticmethod
    def _key_works(raw: str) -> bool:
        match = KEY_PATTERN.match(raw or "")
        if match is None:
            return False
        key = ApiKey.objects.filter(prefix=match.group(1), revoked_at__isnull=True).first()
        return key is not None and key.key_hash == hash_api_key(raw) and not key.is_expired
