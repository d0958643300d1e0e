"""Settings resolved once: command-line option > environment variable > default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DB = "fgsarchive.duckdb"
DEFAULT_MAST_URL = "https://mast.stsci.edu"
DEFAULT_GSC_URL = "https://gsss.stsci.edu"


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


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
        default_factory=lambda: _env_float("FGSARCHIVE_LOCK_TIMEOUT", 120.0)
    )


def parts_dir_for(db_path: Path) -> Path:
    """The folder of Parquet parts (frames, pointing, centroids, fits) beside a DuckDB file."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".parts")
