"""Session-process targets of the memory benchmark (a module of their own: a spawned process
imports the module of its target, and this one imports nothing else)."""

import threading
import time


def with_service_imports(config, conn) -> None:
    """The session process as it was: Django, the event bus and Celery's wake-ups loaded
    beside neonize (what `sessions_app.engines` used to import at the top)."""
    import infra.wakeups  # noqa: F401
    import sessions_app.engines.bus  # noqa: F401
    from sessions_app.engines.whatsmeow.child import child_main

    child_main(config, conn)


def shared_process(store_dir: str, proxy_url: str, sessions: int, conn) -> None:
    """Several sessions' clients in one process, each connecting on its own thread: the
    layout a shared process would have. `conn` gets "ready", then the process idles."""
    from neonize.client import NewClient, ProxySettings

    clients = [NewClient(f"{store_dir}/shared-{n}.sqlite3", uuid=f"shared{n}")
               for n in range(sessions)]
    for client in clients:
        threading.Thread(target=client.connect, args=(ProxySettings(proxy_address=proxy_url),),
                         daemon=True).start()
    conn.send("ready")
    time.sleep(3600)


def shared_process_one_panics(store_dir: str, sessions: int, conn) -> None:
    """The same, then one client is asked for its account before it connected: whatsmeow
    panics (a nil pointer in Go), which aborts the whole process."""
    from neonize.client import NewClient

    clients = [NewClient(f"{store_dir}/panic-{n}.sqlite3", uuid=f"panic{n}")
               for n in range(sessions)]
    conn.send("ready")
    clients[0].get_me()
    time.sleep(3600)
