"""All analyses on an archive in one call (the demo's step 4), and their short printed summary.

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
from dataclasses import dataclass, field

import polars as pl

from ..db import Database
from .archive_io import (
    ANOMALY_PARAMETERS,
    GROUPINGS,
    PERIODOGRAM_PARAMETERS,
    AnalysisWarning,
    NotFittedError,
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
    "print_periodogram_summary",
    "print_anomaly_summary",
    "print_variability_summary",
    "run_periodograms",
    "run_anomalies",
    "run_variables",
    "visit_summary",
    "anomalies_with_telemetry",
    "lightcurve_binned",
    "AnalysisWarning",
    "NotFittedError",
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


def derive_events_if_missing(db: Database) -> dict[str, int] | None:
    """Derive the observatory events offline (``telemetry.derive_events``), so files ingested since
    the last derivation get theirs too (it replaces its own rows); None when the crawler stage is
    not installed."""
    try:
        from ..telemetry import derive_events
    except ImportError:  # the crawler stage is not installed
        return None
    return derive_events(db)


def run_all_analyses(
    db: Database, *, console=None, program: int | None = None, min_sigma: float = 5.0, top: int = 5
) -> AnalysisResults:
    """Anomalies, periodograms (by visit) and variability ranks of the archive; print the top results.

    Events are derived first when the archive has none (so anomalies get their coincident HGA /
    filter-wheel moves). ``console``: a rich Console for the summary (None: print nothing).
    """
    warnings_seen: list[str] = []

    def note(text: str) -> None:
        warnings_seen.append(text)
        if console is not None:
            console.print(f"    [yellow]warning:[/yellow] {text}", highlight=False)

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    derived = derive_events_if_missing(db)
    if derived is not None and console is not None:
        shown = ", ".join(f"{k} {v}" for k, v in derived.items() if v)
        console.print(
            f"    events derived from files and pointing: {shown or 'none'}", highlight=False
        )
    t = _lap(seconds, "events", t)
    # anomalies first: the periodograms leave their intervals out (and cut the series at steps)
    anomalies = run_anomalies(db, program=program, min_sigma=min_sigma, on_warning=note)
    t = _lap(seconds, "anomalies", t)
    peaks = run_periodograms(db, program=program, by="visit", on_warning=note)
    t = _lap(seconds, "periodograms", t)
    variability = run_variables(db, on_warning=note)
    _lap(seconds, "variables", t)
    if console is not None:
        print_periodogram_summary(console, peaks, top=top, seconds=seconds.get("periodograms"))
        print_anomaly_summary(console, anomalies, top=2 * top, seconds=seconds.get("anomalies"))
        print_variability_summary(console, variability, top=top, seconds=seconds.get("variables"))
    return AnalysisResults(peaks, anomalies, variability, seconds, warnings_seen)


def _lap(seconds: dict[str, float], name: str, t: float) -> float:
    now = time.perf_counter()
    seconds[name] = now - t
    return now


def _g(x, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def _where(r: dict) -> str:
    if r.get("observation") is None:
        return f"program {r['program']}"
    return f"program {r['program']} obs {r['observation']} visit {r['visit']}"


def print_periodogram_summary(
    console, peaks: pl.DataFrame, *, top: int = 5, seconds: float | None = None
) -> None:
    """The strongest non-instrumental peak of each parameter (lowest FAP, then highest power)."""
    n_groups = peaks.select("program", "file_name", "gs_id").n_unique() if peaks.height else 0
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    n_instr = int(peaks["instrumental"].sum()) if "instrumental" in peaks.columns else 0
    console.print(
        f"    periodograms: {n_groups} guide-star series, {peaks.height} peaks "
        f"({n_instr} on instrumental lines){took}; strongest non-instrumental peak per parameter:",
        highlight=False,
    )
    star = peaks.filter(~pl.col("instrumental")) if "instrumental" in peaks.columns else peaks
    best = (
        star.sort(["fap", "power"], descending=[False, True])
        .group_by("parameter", maintain_order=True)
        .head(1)
        .head(max(top, 1) * 2)
    )
    for r in best.iter_rows(named=True):
        console.print(
            f"      {r['parameter']:<9} {_where(r)} {r['gs_id']}: P = {_g(r['period_s'], '.5g')} s, "
            f"power {_g(r['power'], '.3f')}, FAP {_g(r['fap'], '.1e')}",
            highlight=False,
        )


def print_anomaly_summary(
    console, anomalies: pl.DataFrame, *, top: int = 10, seconds: float | None = None
) -> None:
    """Counts by kind, then the most significant anomalies (time order) with their coincident events."""
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    if anomalies.is_empty():
        console.print(f"    anomalies: none found{took}", highlight=False)
        return
    counts = anomalies.group_by("kind").len().sort(["len", "kind"], descending=[True, False])
    kinds = ", ".join(f"{r['kind']} {r['len']}" for r in counts.iter_rows(named=True))
    n_ev = int((anomalies["coincident_kinds"].list.len() > 0).sum())
    console.print(
        f"    anomalies: {anomalies.height} ({kinds}); {n_ev} with a coincident observatory event{took}",
        highlight=False,
    )
    shown = anomalies.sort("significance", descending=True).head(top).sort("start_mjd")
    for r in shown.iter_rows(named=True):
        events = ", ".join(r["coincident_kinds"] or [])
        console.print(
            f"      {_where(r)} {r['gs_id']} {r['kind']:<14} at {_g(r['start_s'], '.1f')} s into the visit, "
            f"{_g(r['duration_s'], '.1f')} s, amplitude {_g(r['amplitude'], '.3g')}, "
            f"{_g(r['significance'], '.0f')} sigma" + (f" <- {events}" if events else ""),
            highlight=False,
        )


def print_variability_summary(
    console, variability: pl.DataFrame, *, top: int = 5, seconds: float | None = None
) -> None:
    """The most variable guide stars, one line each."""
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    console.print(
        f"    variability: {variability.height} guide star(s) ranked{took}; most variable:",
        highlight=False,
    )
    for r in variability.sort("rank").head(top).iter_rows(named=True):
        console.print(
            f"      {r['rank']:>2}. {r['gs_id']} score {_g(r['score'], '.1f')}: rms {_g(r['rms_ppm'], '.0f')} ppm "
            f"(expected {_g(r['expected_rms_ppm'], '.0f')}), eta {_g(r['eta'], '.2f')}, skew {_g(r['skew'], '.2f')}, "
            + (
                f"best period {_g(r['best_period_s'], '.5g')} s (FAP {_g(r['best_fap'], '.1e')})"
                if r.get("best_period_s") is not None and r["best_period_s"] == r["best_period_s"]
                else "no period found"
            ),
            highlight=False,
        )
