"""All analyses on an archive in one call (the demo's step 4); the CLI prints their summary.

>>> from fgsarchive.db import Database
>>> from fgsarchive.analysis.run import run_all_analyses
>>> results = run_all_analyses(Database("fgsarchive.duckdb"))   # periodograms, anomalies, variables

The per-analysis functions (:func:`run_periodograms`, :func:`run_anomalies`, :func:`run_variables`)
and the views (:func:`visit_summary`, :func:`anomalies_with_telemetry`, :func:`lightcurve_binned`)
live in :mod:`fgsarchive.analysis.archive_io` and are re-exported here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from ..db import Database
from ..errors import AnalysisWarning, NotComputedError
from .archive_io import (
    ANOMALY_PARAMETERS,
    GROUPINGS,
    PERIODOGRAM_PARAMETERS,
    anomalies_with_telemetry,
    lightcurve_binned,
    run_anomalies,
    run_periodograms,
    run_variables,
    visit_summary,
)

__all__ = [
    "AnalysisResults",
    "run_all_analyses",
    "derive_events_if_missing",
    "run_periodograms",
    "run_anomalies",
    "run_variables",
    "visit_summary",
    "anomalies_with_telemetry",
    "lightcurve_binned",
    "AnalysisWarning",
    "NotComputedError",
    "PERIODOGRAM_PARAMETERS",
    "ANOMALY_PARAMETERS",
    "GROUPINGS",
]

log = logging.getLogger(__name__)


@dataclass
class AnalysisResults:
    """What :func:`run_all_analyses` computed (the rows it wrote), and how long each step took."""

    peaks: pl.DataFrame
    anomalies: pl.DataFrame
    variability: pl.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)  # events derived first, by kind


def derive_events_if_missing(db: Database) -> dict[str, int]:
    """Derive the observatory events offline (``telemetry.derive_events``), so files ingested since
    the last derivation get theirs too (it replaces its own rows)."""
    from ..telemetry import derive_events

    return derive_events(db)


def run_all_analyses(
    db: Database,
    *,
    program: int | None = None,
    min_sigma: float = 5.0,
    on_warning: Callable[[str], None] | None = None,
    on_events: Callable[[dict[str, int]], None] | None = None,
) -> AnalysisResults:
    """Anomalies, periodograms (by visit) and variability ranks of the archive.

    Events are derived first (so anomalies get their coincident HGA / filter-wheel moves) and
    handed to ``on_events`` as they are known; warnings go to ``on_warning`` as they come and into
    the result. Nothing is printed: ``fgsarchive analyse`` prints the summary.
    """
    warnings_seen: list[str] = []

    def note(text: str) -> None:
        warnings_seen.append(text)
        if on_warning is not None:
            on_warning(text)

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    derived = derive_events_if_missing(db)
    if on_events is not None:
        on_events(derived)
    t = _lap(seconds, "events", t)
    # anomalies first: the periodograms leave their intervals out (and cut the series at steps)
    anomalies = run_anomalies(db, program=program, min_sigma=min_sigma, on_warning=note)
    t = _lap(seconds, "anomalies", t)
    peaks = run_periodograms(db, program=program, by="visit", on_warning=note)
    t = _lap(seconds, "periodograms", t)
    variability = run_variables(db, on_warning=note)
    _lap(seconds, "variables", t)
    return AnalysisResults(peaks, anomalies, variability, seconds, warnings_seen, derived)


def _lap(seconds: dict[str, float], name: str, t: float) -> float:
    now = time.perf_counter()
    seconds[name] = now - t
    return now
