"""Pool workers run the numerical libraries on one thread each (the pool is the parallelism)."""

from __future__ import annotations

import os

from fgsarchive.config import ONE_THREAD_ENV
from fgsarchive.workers import process_pool


def _thread_settings(_: int) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in ONE_THREAD_ENV}


def test_forkserver_workers_get_one_thread_per_library_and_the_caller_keeps_its_env(monkeypatch):
    for name in ONE_THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    with process_pool(2) as pool:
        seen = list(pool.map(_thread_settings, range(2)))
    assert seen == [dict.fromkeys(ONE_THREAD_ENV, "1")] * 2
    assert all(name not in os.environ for name in ONE_THREAD_ENV)
