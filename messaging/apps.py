from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messages"

    def ready(self) -> None:
        from messaging.event_handlers import handlers_register

        handlers_register()  # after the sessions app's: a session connects before its sends
