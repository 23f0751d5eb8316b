"""Staff roles. Support staff see everything an operator sees and change nothing."""

SUPPORT_GROUP = "support"
SUPPORT_APPS = ("accounts", "sessions_app", "messaging", "webhooks")


def support_group_ensure(group_model, permission_model):
    """Create (or refresh) the support group with view permissions only. Takes the model
    classes so the data migration can pass its historical models."""
    group, _ = group_model.objects.get_or_create(name=SUPPORT_GROUP)
    group.permissions.set(permission_model.objects.filter(
        content_type__app_label__in=SUPPORT_APPS, codename__startswith="view_"))
    return group
