"""The daily message quota: one statement, exact under concurrency, per account and UTC day."""


import pytest
from django.db import connection, transaction

from accounts.models import DailyUsage
from accounts.quotas import daily_messages_used, daily_quota_consume
from tests.support.concurrency import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)


def test_consumes_until_the_limit_then_refuses(alice):
    totals = [daily_quota_consume(account_id=alice.account.id, limit=3) for _ in range(5)]
    assert totals == [1, 2, 3, None, None]
    assert daily_messages_used(account_id=alice.account.id) == 3
    assert alice.http.get("/v1/account").json()["data"]["usage"]["messagesToday"] == 3


def test_a_batch_larger_than_what_is_left_takes_nothing(alice):
    assert daily_quota_consume(account_id=alice.account.id, limit=5, count=4) == 4
    assert daily_quota_consume(account_id=alice.account.id, limit=5, count=2) is None
    assert daily_quota_consume(account_id=alice.account.id, limit=5, count=6) is None
    assert daily_messages_used(account_id=alice.account.id) == 4


def test_accounts_have_separate_quotas(alice, bob):
    daily_quota_consume(account_id=alice.account.id, limit=1)
    assert daily_quota_consume(account_id=bob.account.id, limit=1) == 1


def test_rolled_back_acceptance_gives_the_message_back(alice):
    with pytest.raises(RuntimeError), transaction.atomic():
        daily_quota_consume(account_id=alice.account.id, limit=1)
        raise RuntimeError("the message insert failed")
    assert daily_messages_used(account_id=alice.account.id) == 0


def test_fifty_concurrent_consumers_never_exceed_the_limit(alice):
    limit, workers = 20, 50

    def consume():
        try:
            return daily_quota_consume(account_id=alice.account.id, limit=limit)
        finally:
            connection.close()  # each thread's own database connection

    results = run_concurrently(workers, consume)
    assert len(results) == workers
    granted = sorted(r for r in results if r is not None)
    assert granted == list(range(1, limit + 1))
    assert DailyUsage.objects.get(account=alice.account).messages == limit
