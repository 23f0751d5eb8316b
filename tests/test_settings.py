"""Settings read from the environment (config/settings.py), checked in a fresh interpreter."""

import os
import re
import subprocess
import sys
from pathlib import Path

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


def settings_start(**env: str) -> subprocess.CompletedProcess:
    clean = {name: value for name, value in os.environ.items()
             if name != "WEBHOOK_MAX_IN_FLIGHT"}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.WEBHOOK_MAX_IN_FLIGHT)"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True)


@pytest.mark.parametrize(("value", "refusal"), [
    ("0", "WEBHOOK_MAX_IN_FLIGHT must be at least 1, not 0"),
    ("101", "WEBHOOK_MAX_IN_FLIGHT must be at most 100, not 101"),
    ("ten", "WEBHOOK_MAX_IN_FLIGHT must be an integer, not 'ten'"),
])
def test_a_bad_limit_stops_the_process_at_start_up(value, refusal):
    started = settings_start(WEBHOOK_MAX_IN_FLIGHT=value)
    assert started.returncode != 0 and refusal in started.stderr


def test_the_in_flight_limit_is_read_from_the_environment():
    assert settings_start(WEBHOOK_MAX_IN_FLIGHT="100").stdout.strip() == "100"
    assert settings_start().stdout.strip() == "10"


def test_every_setting_is_in_the_readme_table():
    """The README's table is the one list of settings (the guides include it)."""
    root = Path(__file__).resolve().parents[1]
    settings_source = (root / "config" / "settings.py").read_text()
    names = set(re.findall(r'env_(?:str|bool|int|float|list)\(\s*"([A-Z_]+)"', settings_source))
    table = (root / "README.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert names and not missing, missing


def test_every_periodic_task_names_a_task_the_workers_have():
    from django.conf import settings

    from config.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "accounts.purge_error_logs" in scheduled
    assert scheduled <= set(app.tasks)


def secret_key_of(data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {name: value for name, value in os.environ.items()
             if name not in ("SECRET_KEY", "REQUIRE_SECRET_KEY", "DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.SECRET_KEY)"],
        cwd=ROOT, env={**clean, "DATA_DIR": str(data_dir), **env}, capture_output=True,
        text=True)


def test_without_secret_key_a_random_one_is_made_once_and_kept(tmp_path):
    first = secret_key_of(tmp_path)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert len(key) >= 60 and "insecure" not in key
    assert (tmp_path / "secret-key").stat().st_mode & 0o777 == 0o600
    assert secret_key_of(tmp_path).stdout.strip() == key  # the next start reads it back
    assert secret_key_of(tmp_path / "elsewhere").stdout.strip() != key  # not a shared value


def test_a_required_secret_key_stops_the_start_without_one(tmp_path):
    refused = secret_key_of(tmp_path, REQUIRE_SECRET_KEY="true")
    assert refused.returncode != 0 and "SECRET_KEY must be set" in refused.stderr
    assert secret_key_of(tmp_path, SECRET_KEY="given").stdout.strip() == "given"


def email_backend(**env: str) -> str:
    clean = {name: value for name, value in os.environ.items()
             if name not in ("EMAIL_HOST", "EMAIL_TO_CONSOLE")}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.EMAIL_BACKEND)"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, check=True,
    ).stdout.strip().rsplit(".", 2)[-2]


def test_emails_with_sign_in_links_reach_no_log_unless_asked():
    assert email_backend() == "dummy"
    assert email_backend(EMAIL_TO_CONSOLE="true") == "console"
    assert email_backend(EMAIL_HOST="smtp.example.com") == "smtp"
