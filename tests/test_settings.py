"""Settings read from the environment (config/settings.py), checked in a fresh interpreter."""

import os
import subprocess
import sys

import pytest

from tests.support.servers import ROOT


def cache_key_prefix(**env: str) -> str:
    clean = {name: value for name, value in os.environ.items()
             if name not in ("REDIS_NAMESPACE", "CACHE_KEY_PREFIX")}
    return subprocess.run(
        [sys.executable, "-c",
         "import config.settings as s; print(s.CACHES['default']['KEY_PREFIX'])"],
        cwd=ROOT, env={**clean, "REDIS_URL": "redis://127.0.0.1:6379/15", **env},
        capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize(("env", "prefix"), [
    ({}, "wa"),
    ({"REDIS_NAMESPACE": "tenant-b"}, "tenant-b"),  # sharing a Redis: one setting suffices
    ({"REDIS_NAMESPACE": "tenant-b", "CACHE_KEY_PREFIX": "cache-b"}, "cache-b"),
])
def test_the_cache_key_prefix_follows_the_redis_namespace(env, prefix):
    assert cache_key_prefix(**env) == prefix
