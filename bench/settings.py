"""The production settings plus the bare endpoint the benchmarks compare against."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
