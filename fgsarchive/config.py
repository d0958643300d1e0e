"""Settings resolved once: command-line option > environment variable > default.

Every environment variable fgsarchive reads is parsed here (README "Configuration"); a malformed
value is a usage error (exit 2) naming the variable.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

DEFAULT_DB = "fgsarchive.duckdb"
DEFAULT_MAST_URL = "https://mast.stsci.edu"
DEFAULT_GSC_URL = "https://gsss.stsci.edu"


def env_number(name: str, kind: type = float, default: Any = None) -> Any:
    """``$name`` as a non-negative number of ``kind``, or ``default`` when unset or blank.

    Raises :class:`UsageError` (exit 2) naming the variable when it is not such a number.
    """
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = kind(value)
    except ValueError:
        raise UsageError(f"${name}={value!r}: expected a number") from None
    if number != number or number < 0:  # NaN or negative
        raise UsageError(f"${name}={value!r}: must not be negative")
    return number


def mast_url() -> str:
    """Base URL of MAST: ``$FGSARCHIVE_MAST_URL``, else https://mast.stsci.edu."""
    return os.environ.get("FGSARCHIVE_MAST_URL") or DEFAULT_MAST_URL


def env_text(name: str) -> str:
    """The raw text of environment setting ``name`` ('' when unset): for messages that say where
    a value came from (e.g. the MAST host an error names)."""
    return os.environ.get(name, "")


def gsc_url() -> str:
    """Base URL of the Guide Star Catalog: ``$FGSARCHIVE_GSC_URL``, else https://gsss.stsci.edu."""
    return os.environ.get("FGSARCHIVE_GSC_URL") or DEFAULT_GSC_URL


def mast_token() -> str | None:
    """The MAST token from ``$MAST_API_TOKEN`` (never printed, logged or stored), or None."""
    return os.environ.get("MAST_API_TOKEN") or None


def mast_retry_policy() -> dict[str, Any]:
    """The MAST retry policy set in the environment (only the variables that are set):
    ``FGSARCHIVE_MAST_RETRIES`` (max retries), ``FGSARCHIVE_MAST_BACKOFF`` (first backoff, s),
    ``FGSARCHIVE_MAST_TIMEOUT`` (per request, s), ``FGSARCHIVE_MAST_POLL`` (EXECUTING poll, s)."""
    env = {
        "max_retries": env_number("FGSARCHIVE_MAST_RETRIES", int),
        "backoff_s": env_number("FGSARCHIVE_MAST_BACKOFF"),
        "timeout_s": env_number("FGSARCHIVE_MAST_TIMEOUT"),
        "poll_interval_s": env_number("FGSARCHIVE_MAST_POLL"),
    }
    return {k: v for k, v in env.items() if v is not None}


@dataclass(frozen=True)
class Settings:
    """Where the archive lives and how long to wait for it.

    ``lock_timeout_s`` bounds how long a reader or writer retries while another process holds the
    DuckDB file (DuckDB allows one writing process; see README "Concurrent use").
    """

    db_path: Path = field(default_factory=lambda: Path(os.environ.get("FGSARCHIVE_DB", DEFAULT_DB)))
    cache_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("FGSARCHIVE_CACHE", "fgsarchive-cache"))
    )
    lock_timeout_s: float = field(
        default_factory=lambda: float(env_number("FGSARCHIVE_LOCK_TIMEOUT", float, 120.0))
    )


def parts_dir_for(db_path: Path) -> Path:
    """The folder of Parquet parts (frames, pointing, centroids, fits) beside a DuckDB file."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".parts")


#: Thread pools of the numerical libraries (OpenBLAS/MKL, OpenMP: finufft) in pool workers: one
#: each, since the pool already runs one process per core; their own threads would only contend
#: (measured: two analyse workers side by side spent ~12 % more CPU with OpenBLAS's default).
ONE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: Modules the analyses' forkserver imports before forking workers: the unit code, and a warm-up
#: that loads the compiled kernels and lazily imported libraries once for all workers.
ANALYSIS_PRELOAD = ("fgsarchive.analysis.incremental", "fgsarchive.analysis.warmup")


@contextlib.contextmanager
def one_thread_libraries() -> Iterator[None]:
    """Set :data:`ONE_THREAD_ENV` to 1 (where the user has not set them) for processes started
    inside; this process's own libraries are already loaded and keep their threads."""
    added = [name for name in ONE_THREAD_ENV if name not in os.environ]
    for name in added:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
