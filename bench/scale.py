"""How reads and the quota check behave as tables grow: 1k, 10k and 100k stored messages,
spread over 1, 10 and 100 sessions, with as many of another account's messages beside them.
Timed in process (Django test client, PostgreSQL, Redis), median of repeated calls. Writes
bench/results/scale.md.

    .venv/bin/python bench/scale.py
"""

import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATABASE, env_for, fresh_database, write_report

SIZES = [(1_000, 1), (10_000, 10), (100_000, 100)]


def median_ms(call, repeat: int = 40) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def measure(client, session_id: str, message_id: str, account_id: str) -> dict[str, float]:
    from accounts.quotas import daily_quota_consume

    def page_two():
        cursor = json.loads(client.get("/v1/messages").content)["pagination"]["nextCursor"]
        return client.get("/v1/messages", {"cursor": cursor})

    return {
        "list newest 20": median_ms(lambda: client.get("/v1/messages")),
        "list by session+status": median_ms(
            lambda: client.get("/v1/messages", {"sessionId": session_id, "status": "failed"})),
        "first page, then page 2": median_ms(page_two),
        "get one message": median_ms(lambda: client.get(f"/v1/messages/{message_id}")),
        "quota check (upsert)": median_ms(
            lambda: daily_quota_consume(account_id=account_id, limit=10**9)),
        "GET /v1/account": median_ms(lambda: client.get("/v1/account")),
    }


def fill(account, sessions, total: int) -> str:
    from messaging.models import Message

    batch = [Message(account=account, session=sessions[i % len(sessions)], direction="outbound",
                     type="text", to_number="14155550123", text="x",
                     status="read" if i % 3 else "failed") for i in range(total)]
    Message.objects.bulk_create(batch, batch_size=5000)
    return batch[0].pk


def main() -> None:
    env = env_for(DATABASE, f"bench-{uuid.uuid4().hex[:6]}")
    fresh_database(env, DATABASE)
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from accounts.services import account_create, api_key_create, plan_upsert
    from sessions_app.models import Session

    plan, _ = plan_upsert(name="scale", max_sessions=1000, daily_message_limit=10**9,
                          rate_limit_per_minute=10**9, max_concurrent_requests=1000)
    rows = []
    for total, session_count in SIZES:
        account = account_create(name=f"scale-{total}", plan=plan)
        _, key = api_key_create(account=account)
        sessions = [Session.objects.create(account=account, engine="sandbox", status="connected",
                                           phone_number="14155552671")
                    for _ in range(session_count)]
        message_id = fill(account, sessions, total)
        # Another account's messages, newer than all of these: a list must not wade through.
        noise = account_create(name=f"noise-{total}", plan=plan)
        fill(noise, [Session.objects.create(account=noise, engine="sandbox")], total)
        with connection.cursor() as cursor:  # as autovacuum would, before anyone reads
            cursor.execute("ANALYZE messaging_message")
        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        rows.append((total, session_count,
                     measure(client, sessions[0].id, message_id, account.id)))

    names = list(rows[0][2])
    lines = [
        "Median of 40 calls each, in process (Django test client) against PostgreSQL and "
        "Redis; each size has as many of another account's (newer) messages beside it.",
        "",
        "| stored messages (sessions) | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for total, session_count, figures in rows:
        lines.append(f"| {total:,} ({session_count}) | "
                     + " | ".join(f"{figures[n]:.2f} ms" for n in names) + " |")
    print(write_report("scale", "Reads and quota as tables grow", lines).read_text())


if __name__ == "__main__":
    main()
