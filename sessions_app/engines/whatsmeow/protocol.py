"""Redis keys and the command format shared by the remote engine (web and worker processes)
and the engine supervisor (`run_engine`)."""

import json
import time
import uuid

START_QUEUE = "engine:start"


def key(namespace: str, *parts: str) -> str:
    return ":".join([namespace, *parts])


def session_queue(namespace: str, session_id: str) -> str:
    return key(namespace, "engine", "session", session_id)


def lease_key(namespace: str, session_id: str) -> str:
    return key(namespace, "engine", "lease", session_id)


def command(op: str, session_id: str, args: dict | None = None, *, ttl: float = 30.0,
            reply_to: str | None = None) -> str:
    """A command expires: one still queued when its caller gave up is dropped, not run late
    (a late send would duplicate the retry)."""
    return json.dumps({"id": uuid.uuid4().hex, "op": op, "session": session_id,
                       "args": args or {}, "reply": reply_to,
                       "expires": time.time() + ttl})
