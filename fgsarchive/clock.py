"""The package's one wall clock: now in UTC, as the naive timestamps the archive stores.

DuckDB ``TIMESTAMP`` columns (``ingested_at``, ``updated_at``, ``fetched_at``, ...) hold UTC
without a time zone, so every stage stamps its rows with :func:`utcnow`.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["utcnow"]


def utcnow() -> dt.datetime:
    """The current time in UTC, without tzinfo (a DuckDB TIMESTAMP)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
