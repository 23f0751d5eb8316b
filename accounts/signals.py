"""Drop cached API key records whenever a key, its account or its plan changes, whoever made
the change (a service, the admin, a shell): a revoked key must stop working at once."""

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.authentication import api_key_cache_key
from accounts.models import Account, ApiKey, Plan


def _forget(prefixes) -> None:
    keys = [api_key_cache_key(prefix) for prefix in prefixes]
    if keys:
        cache.delete_many(keys)


@receiver([post_save, post_delete], sender=ApiKey)
def forget_key(sender, instance: ApiKey, **kwargs) -> None:
    _forget([instance.prefix])


@receiver(post_save, sender=Account)
def forget_account_keys(sender, instance: Account, **kwargs) -> None:
    _forget(ApiKey.objects.filter(account=instance).values_list("prefix", flat=True))


@receiver(post_save, sender=Plan)
def forget_plan_keys(sender, instance: Plan, **kwargs) -> None:
    _forget(ApiKey.objects.filter(account__plan=instance).values_list("prefix", flat=True))
