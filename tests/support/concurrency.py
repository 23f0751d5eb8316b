"""Run the same call from many threads at once (a barrier releases them together)."""

import threading
from collections.abc import Callable
from typing import Any


def run_concurrently(count: int, call: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """`call()` from `count` threads started together; returns their results (any order).
    A thread that raised contributes its exception, so a test can see it."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout)
            result = call()
        except Exception as error:  # reported to the test, not swallowed
            result = error
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results
