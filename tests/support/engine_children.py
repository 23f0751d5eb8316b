"""Child process targets for the supervisor tests (module level: `spawn` imports them)."""

from sessions_app.engines.whatsmeow.child import child_main


def panicking_child(config, conn):
    """Asks whatsmeow for the account before connecting: a Go nil-pointer panic aborts the
    whole process (measured with neonize 0.5.2)."""
    if config.session_id.endswith("PANIC"):
        from neonize.client import NewClient

        NewClient(config.store_path, uuid=config.session_id).get_me()
    child_main(config, conn)
