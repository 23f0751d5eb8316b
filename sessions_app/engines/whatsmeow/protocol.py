"""Redis keys and the command format shared by the remote engine (web and worker processes)
and the engine supervisors (`run_engine`), and what the supervisors say of themselves."""

import json
import time
import uuid

START_QUEUE = "engine:start"


def key(namespace: str, *parts: str) -> str:
    return ":".join([namespace, *parts])


def session_queue(namespace: str, session_id: str) -> str:
    return key(namespace, "engine", "session", session_id)


def lease_key(namespace: str, session_id: str) -> str:
    """Held by the supervisor that runs the session: `<worker id>:<fencing token>`."""
    return key(namespace, "engine", "lease", session_id)


def fence_key(namespace: str, session_id: str) -> str:
    """A counter: each new lease of the session takes the next value as its fencing token."""
    return key(namespace, "engine", "fence", session_id)


def hosts_key(namespace: str) -> str:
    """A hash: each live supervisor's worker id -> what it runs, and until when it holds."""
    return key(namespace, "engine", "hosts")


def command(op: str, session_id: str, args: dict | None = None, *, ttl: float = 30.0,
            reply_to: str | None = None) -> str:
    """A command expires: one still queued when its caller gave up is dropped, not run late
    (a late send would duplicate the retry)."""
    return json.dumps({"id": uuid.uuid4().hex, "op": op, "session": session_id,
                       "args": args or {}, "reply": reply_to,
                       "expires": time.time() + ttl})


def host_announce(client, namespace: str, entry: dict, ttl_ms: int) -> None:
    """Say what this supervisor runs; the entry counts as alive for `ttl_ms`."""
    entry = {**entry, "until": time.time() + ttl_ms / 1000}
    client.hset(hosts_key(namespace), entry["worker"], json.dumps(entry))


def host_withdraw(client, namespace: str, worker_id: str) -> None:
    client.hdel(hosts_key(namespace), worker_id)


def engine_hosts(client, namespace: str) -> list[dict]:
    """The engine supervisors alive now (each refreshes its entry every few seconds; one that
    stopped doing so is dropped): `{worker, sessions, capacity}`, capacity null if unlimited."""
    now, hosts, stale = time.time(), [], []
    for worker, raw in client.hgetall(hosts_key(namespace)).items():
        entry = json.loads(raw)
        if entry["until"] < now:
            stale.append(worker)
        else:
            hosts.append({name: entry[name] for name in ("worker", "sessions", "capacity")})
    if stale:
        client.hdel(hosts_key(namespace), *stale)
    return sorted(hosts, key=lambda host: host["worker"])
