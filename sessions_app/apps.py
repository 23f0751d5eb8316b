from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "WhatsApp sessions"

    def ready(self) -> None:
        # What this app adds to the apps below it, which cannot import it.
        from accounts.selectors import usage_counter_register
        from api.health import health_report_register
        from sessions_app.event_handlers import handlers_register
        from sessions_app.selectors import (
            engine_hosts_report,
            session_count_live,
            session_is_visible,
        )
        from webhooks.selectors import session_check_register

        handlers_register()
        health_report_register("engineHosts", engine_hosts_report)
        usage_counter_register("sessions", session_count_live)
        session_check_register(session_is_visible)
