from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts, plans and API keys"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401  (cache invalidation on admin edits)
