"""``fgsarchive analyse``: the analyses of the archive, incremental, one analysis unit at a time.

A *unit* is one visit's frames of one guide star (program, observation, visit, gs_id). Each unit
is read once and its anomalies, periodogram peaks and 10-s variability bins computed together,
on the fit's pool (or Dask), and stored with a fingerprint of its inputs; a later run computes
only new or changed units. The archive-wide products (instrumental lines, peak labels,
variability scores and ranks, the event cross-match) are then updated from the stored per-unit
results, never from frames. :func:`run_all_analyses` is the entry point (the demo's step 4);
the single analyses it builds on live in :mod:`.runner`. docs/analyses.md, "Incremental
analysis", has the rules.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import polars as pl

from ..choices import PERIODOGRAM_PARAMETERS
from ..config import ANALYSIS_PRELOAD
from ..db import Database, exclusive
from ..errors import (
    SelectionError,
    UsageError,
)
from ..storage import part_name
from ..workers import dask_client, dask_completed, end_workers, process_pool
from .anomalies import (
    SECONDS_PER_DAY,
    STEP_SUFFIXES,
    cross_match_events,
)
from .periodogram import (
    MIN_POINTS,
)
from .runner import (
    _ANOMALY_COLUMNS,
    _EVENTS_SCHEMA,
    CROSS_MATCH_WINDOW_S,
    GAIN_E_PER_DN,
    N_PEAKS,
    VARIABILITY_BIN_S,
    Progress,
    Warn,
    _anomalies_within,
    _events_available,
    _exists,
    _fit_command,
    _log_run,
    _no_files_error,
    _periodogram_group,
    _set_state,
    _Skip,
    _star_frames,
    _state,
    _store_lines,
    _table,
    _what,
    load_series,
    search_run,
    warn_unfitted,
)
from .variables import (
    BIN_SCHEMA,
    VARIABILITY_SCHEMA,
    variability_bins,
    variability_from_bins,
    variability_lines,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# All analyses
# --------------------------------------------------------------------------------------------------
@dataclass
class AnalysisResults:
    """What :func:`run_all_analyses` computed (the rows it wrote), and how long each step took."""

    peaks: pl.DataFrame
    anomalies: pl.DataFrame
    variability: pl.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)  # events derived first, by kind
    units: object = None  # UnitsReport: units computed, unchanged, removed, ...


EVENTS_STATE_KEY = "events_inputs"


def _events_inputs(db: Database, con) -> str:
    """Fingerprint of what the derived events come from: the EDB records, the files, the pointing
    parts (names, sizes, times) and the derivation's settings."""
    from .. import telemetry

    parts = sorted(
        f"{p.relative_to(db.parts.root)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
        for p in (db.parts.root / "pointing").glob("*/*.parquet")
    )
    settings = (
        telemetry.FW_CURRENT_THRESHOLD_A,
        telemetry.FW_MAX_GAP_S,
        telemetry.PAD_S,
        telemetry.DERIVED_KINDS,
    )
    text = "|".join(
        (str(db.run(con, "analysis/events_inputs").fetchall()[0][0]), *parts, repr(settings))
    )
    return hashlib.sha256(text.encode()).hexdigest()


def derive_events_if_missing(db: Database) -> dict[str, int]:
    """Derive the observatory events offline (``telemetry.derive_events``) when their inputs (EDB
    records, files, pointing parts) changed since the last derivation, so files ingested since
    get theirs too; otherwise keep them (an `analyse` with nothing new stays cheap). Returns the
    events by kind, derived or kept."""
    from ..telemetry import derive_events

    if not db.path.exists():
        return {}
    with db.reader() as con:
        known = _exists(db, con, "events") and _exists(db, con, "analysis_state")
        inputs = _events_inputs(db, con) if _exists(db, con, "telemetry") else None
        if known and inputs is not None and _state(db, con, EVENTS_STATE_KEY) == inputs:
            from ..telemetry import DERIVED_KINDS

            stored = dict(db.run(con, "events/counts").fetchall())
            return {kind: int(stored.get(kind, 0)) for kind in DERIVED_KINDS}
    counts = derive_events(db)
    if inputs is not None:
        with db.writer() as con:
            _set_state(db, con, EVENTS_STATE_KEY, inputs)
    return counts


def run_all_analyses(
    db: Database,
    *,
    program: int | None = None,
    min_sigma: float = 5.0,
    workers: int = 1,
    scheduler: str | None = None,
    full: bool = False,
    on_warning: Callable[[str], None] | None = None,
    on_events: Callable[[dict[str, int]], None] | None = None,
    progress: Progress | None = None,
) -> AnalysisResults:
    """Anomalies, periodograms (by visit) and variability ranks of the archive, incrementally.

    Events are derived first (so anomalies get their coincident HGA / filter-wheel moves) and
    handed to ``on_events`` as they are known. Then only the analysis units (a visit's frames of
    one guide star) that are new or whose inputs changed are computed (all with ``full``), on
    ``workers`` processes or the Dask ``scheduler``, and the archive-wide products (instrumental
    lines, labels, variability ranks) are updated from the stored per-unit results
    ("Incremental analysis" below). One run at a time per archive. Warnings go to ``on_warning`` as they
    come and into the result; the result holds the stored tables (of ``program``, ranks of all
    stars) and ``units`` says what was recomputed. Nothing is printed: ``fgsarchive analyse``
    prints the summary.
    """
    if workers < 1:  # bad options stop before anything is derived or written
        raise UsageError(f"--workers must be at least 1 (got {workers})")
    if not min_sigma > 0:
        raise UsageError(f"--min-sigma must be > 0, got {min_sigma}")
    warnings_seen: list[str] = []

    def note(text: str) -> None:
        warnings_seen.append(text)
        if on_warning is not None:
            on_warning(text)

    seconds: dict[str, float] = {}
    with analyse_lock(db):
        t = time.perf_counter()
        derived = derive_events_if_missing(db)
        if on_events is not None:
            on_events(derived)
        t = _lap(seconds, "events", t)
        with db.reader() as con:
            if not _events_available(db, con, program):
                note(
                    "no observatory events in the archive (coincident_events left empty): derive "
                    "them with `fgsarchive events` (or `fgsarchive telemetry`) and re-run "
                    "`fgsarchive analyse`"
                )
        units = analyse_units(
            db,
            program=program,
            options=AnalyseOptions(min_sigma=min_sigma),
            workers=workers,
            scheduler=scheduler,
            full=full,
            on_warning=note,
            progress=progress,
        )
        _lap(seconds, "units", t)
    for name in ("anomalies", "periodograms", "variables"):  # summed over units (worker time)
        seconds[name] = units.seconds.get(name, 0.0)
    seconds["variables"] += units.seconds.get("archive_wide", 0.0)
    peaks, anomalies, variability = stored_results(db, program)
    if variability.is_empty() and units.units_total:
        raise SelectionError("no guide star has enough unmasked frames for variability statistics")
    return AnalysisResults(
        peaks, anomalies, variability, seconds, warnings_seen, derived, units=units
    )


def _lap(seconds: dict[str, float], name: str, t: float) -> float:
    now = time.perf_counter()
    seconds[name] = now - t
    return now


# --------------------------------------------------------------------------------------------------
# Incremental analysis (``fgsarchive analyse``)
# --------------------------------------------------------------------------------------------------
# Each analysis unit computed once, archive-wide products updated from stored results.
#
# A *unit* is one visit's frames of one guide star (program, observation, visit, gs_id): the group
# of the visit periodogram and of the anomaly search. Per unit, one read of its frames
# (:func:`load_series`) gives its anomalies, its periodogram peaks (series conditioned by
# the unit's own anomalies) and its 10-s variability bins. Each unit's *fingerprint* hashes its
# inputs: its files (name, size, frames, ingested_at, the version and size of their fit and
# photometry parts), how its files split into guide-star runs and where its visit starts, the
# options and the method versions below. ``analysis_units`` holds the fingerprint of every unit
# whose results are stored; a run computes only units whose fingerprint is new or changed, and
# drops the results of units that vanished.
#
# Archive-wide products are then updated from stored per-unit results, never from frames:
# instrumental lines are re-learned from all stored peaks and every peak relabelled (labels, not
# spectra); variability scores are recomputed from stored bins for the stars whose units changed
# (every star when the lines changed) and all stars re-ranked; anomalies' event cross-match is
# redone whole when the events changed. Units run on the fit's process pool or Dask scheduler;
# only this process writes, a batch of units per transaction, so an interrupted run keeps its
# finished units and the next run resumes. docs/analyses.md, "Incremental analysis".

#: Bump when the anomaly search changes: every unit is recomputed by the next ``analyse``.
ANOMALY_METHOD_VERSION = 1
#: Bump when the periodogram (grid, conditioning, peaks) changes.
PERIODOGRAM_METHOD_VERSION = 3
#: Bump when the variability bins (masking, normalisation, binning) change.
VARIABILITY_METHOD_VERSION = 1
#: Units whose results one write transaction stores (each batch is a resume point).
BATCH_UNITS = 32
#: ... or fewer, once the oldest result waiting has waited this long (s). Each batch costs the main
#: process ~0.2 s (open, schema check, inserts) taken from the pool's workers on the same CPUs.
BATCH_SECONDS = 15.0
#: A batch publishes a snapshot only when the last one is this many times its own duration ago
#: (``Database.writer(lazy=True)``): ~0.4-1 s each, so publishing takes at most ~3 % of the run
#: (ingest's 10 % would take 5 % from the two workers of a two-core machine); the run's last
#: transaction publishes everything.
PUBLISH_DUTY = 29.0

UNIT_KEYS = ("program", "observation", "visit", "gs_id")
_KEY_SCHEMA = {
    "program": pl.Int32,
    "observation": pl.Int32,
    "visit": pl.Int32,
    "gs_id": pl.String,
}
_FILE_COLUMNS = (
    "file_name",
    "program",
    "observation",
    "visit",
    "guide_period",
    "segment",
    "gs_id",
    "data_start_mjd",
    "data_end_mjd",
    "n_frames",
    "frame_time_s",
)


@dataclass(frozen=True)
class AnalyseOptions:
    """What changes a unit's results besides its files (all in its fingerprint)."""

    min_sigma: float = 5.0
    window_s: float = CROSS_MATCH_WINDOW_S
    params: tuple[str, ...] = tuple(PERIODOGRAM_PARAMETERS)
    samples_per_peak: float = 5.0
    n_peaks: int = N_PEAKS
    gain: float = GAIN_E_PER_DN
    bin_s: float = VARIABILITY_BIN_S

    def fingerprint(self) -> str:
        return json.dumps(
            {
                "min_sigma": float(self.min_sigma),
                "params": list(self.params),
                "samples_per_peak": float(self.samples_per_peak),
                "n_peaks": int(self.n_peaks),
                "gain": float(self.gain),
                "bin_s": float(self.bin_s),
                "methods": [
                    ANOMALY_METHOD_VERSION,
                    PERIODOGRAM_METHOD_VERSION,
                    VARIABILITY_METHOD_VERSION,
                ],
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class UnitTask:
    """One unit to compute: its files (rows of analysis/fg_files), runs and where to read them."""

    key: tuple
    fingerprint: str
    files: pl.DataFrame
    runs: tuple[tuple[str, ...], ...]  # file names of each guide-star run, time order
    visit_start_mjd: float
    archive: str
    options: AnalyseOptions
    n_frames: int
    anomaly_threads: int | None = None  # detect_anomalies' threads (None: one per CPU)


@dataclass
class UnitResult:
    """What a worker computed for one unit (small: crosses the process pipe)."""

    key: tuple
    fingerprint: str
    anomalies: pl.DataFrame  # _ANOMALY_COLUMNS less the event cross-match
    peaks: pl.DataFrame | None
    bins: pl.DataFrame
    var_frames: int
    flux_source: str | None
    skips: list[str]
    seconds: dict[str, float]
    n_files: int
    n_frames: int


@dataclass
class UnitsReport:
    """What an incremental analyse did."""

    units_total: int = 0
    units_computed: int = 0
    units_unchanged: int = 0
    units_removed: int = 0
    units_failed: int = 0  # parts gone or broken: not stored, tried again next run
    archive_wide: bool = False  # lines, labels and ranks were updated
    lines_changed: bool = False
    stars_rescored: int = 0
    events_refreshed: bool = False
    programs_refreshed: int = 0  # programs whose anomalies' event cross-match was redone
    frames_read: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# One analyse at a time
# --------------------------------------------------------------------------------------------------
def analyse_lock(db: Database) -> contextlib.AbstractContextManager[None]:
    """One ``analyse`` at a time per archive: a second waits up to the lock timeout, then stops.

    Two runs would compute the same units twice and race on the archive-wide products. A
    ``flock`` on ``<parts>/.analyse.lock``: the kernel drops it when its holder is gone.
    """
    return exclusive(
        db,
        ".analyse.lock",
        lambda timeout_s: (
            f"another `fgsarchive analyse` is running on {db.path} (waited "
            f"{timeout_s:g} s; raise FGSARCHIVE_LOCK_TIMEOUT to wait longer)"
        ),
    )


# --------------------------------------------------------------------------------------------------
# Planning: the current units and their fingerprints
# --------------------------------------------------------------------------------------------------
def _part_versions(db: Database, dataset: str, programs: Sequence[int]) -> dict[str, str]:
    """Newest versioned part of each file in ``dataset``: ``{part name: "v<k>:<bytes>"}``,
    one directory listing per program (cheap, no Parquet is opened)."""
    out: dict[str, tuple[int, str]] = {}
    for prog in programs:
        folder = db.parts.root / dataset / f"program={int(prog)}"
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            name = entry.name
            if not name.endswith(".parquet") or ".v" not in name:
                continue
            stem, _, version = name[: -len(".parquet")].rpartition(".v")
            if not version.isdigit():
                continue
            v = int(version)
            if stem not in out or v > out[stem][0]:
                out[stem] = (v, f"v{v}:{entry.stat().st_size}")
    return {k: v for k, (_, v) in out.items()}


def current_units(
    db: Database, con, program: int | None, options: AnalyseOptions, warn: Warn
) -> pl.DataFrame:
    """The fitted files of the archive (or a program) with their unit, run and fingerprint.

    One query of ``files`` and a listing of the fit and photometry folders. Columns: the files'
    (analysis/fg_files), ``run`` (guide-star run number in its visit, from 1 per unit),
    ``visit_start_mjd`` and ``fingerprint`` (the unit's). Files without fits are left out with a
    warning (as the single analyses do).
    """
    files = _table(db, con, "analysis/unit_files", {"program": program})
    if files.is_empty():
        raise _no_files_error(program)
    programs = files["program"].unique().sort().to_list()
    fits = _part_versions(db, "fits", programs)
    phot = _part_versions(db, "photometry", programs)
    parts = [part_name(n) for n in files["file_name"].to_list()]
    files = files.with_columns(
        pl.Series("fit_part", [fits.get(p) for p in parts], dtype=pl.String),
        pl.Series("phot_part", [phot.get(p) for p in parts], dtype=pl.String),
    )
    fitted = files.filter(pl.col("fit_part").is_not_null())
    if fitted.is_empty():
        from ..errors import NotComputedError

        raise NotComputedError(
            "fits",
            message=f"{_what(program)} has no fits yet: run `{_fit_command(program)}` first",
        )
    warn_unfitted(files, files.filter(pl.col("fit_part").is_null()), warn)
    visit = ["program", "observation", "visit"]
    # guide-star runs: consecutive files (time order) of one gs_id within a visit (runner._runs)
    f = fitted.sort([*visit, "data_start_mjd", "file_name"], nulls_last=True)
    gs = pl.col("gs_id").fill_null("")
    new_run = (
        (pl.struct(visit) != pl.struct(visit).shift(1)).fill_null(True)
        | (gs != gs.shift(1)).fill_null(True)
    ).cast(pl.Int64)
    f = f.with_columns(new_run.cum_sum().alias("__run"))
    f = f.with_columns(
        pl.col("__run").rank("dense").over(list(UNIT_KEYS)).cast(pl.Int64).alias("run"),
        pl.col("data_start_mjd").min().over(visit).alias("visit_start_mjd"),
    ).drop("__run")
    line = pl.concat_str(
        [
            pl.col("file_name"),
            pl.col("n_frames").cast(pl.String),
            pl.col("file_bytes").cast(pl.String),
            pl.col("ingested_at"),
            pl.col("fit_part"),
            pl.col("phot_part"),
            pl.col("run").cast(pl.String),
            pl.col("data_start_mjd").cast(pl.String),
            pl.col("frame_time_s").cast(pl.String),
            pl.col("guide_period"),
            pl.col("visit_start_mjd").cast(pl.String),
        ],
        separator="|",
        ignore_nulls=False,
    ).fill_null(pl.lit("?"))
    f = f.with_columns(line.alias("__line"))
    opts = options.fingerprint()
    per_unit = f.group_by(list(UNIT_KEYS), maintain_order=True).agg(
        pl.col("__line").str.join("\n").alias("__text")
    )
    digests = [
        hashlib.sha256((opts + "\n" + text).encode()).hexdigest()
        for text in per_unit["__text"].to_list()
    ]
    per_unit = per_unit.drop("__text").with_columns(pl.Series("fingerprint", digests))
    return f.drop("__line").join(per_unit, on=list(UNIT_KEYS), how="left", nulls_equal=True)


# --------------------------------------------------------------------------------------------------
# One unit (a worker)
# --------------------------------------------------------------------------------------------------
_CONNECTIONS: dict[str, object] = {}


def _worker_connection():
    """An in-memory DuckDB connection per process: the unit's reads are Parquet parts by path."""
    import duckdb

    con = _CONNECTIONS.get("con")
    if con is None:
        con = duckdb.connect()
        _CONNECTIONS["con"] = con
    return con


def _is_step(kind: pl.Expr) -> pl.Expr:
    out = kind.str.ends_with(STEP_SUFFIXES[0])
    for suffix in STEP_SUFFIXES[1:]:
        out = out | kind.str.ends_with(suffix)
    return out


def _unit_anomalies(
    rows: pl.DataFrame, task: UnitTask, files: pl.DataFrame
) -> tuple[pl.DataFrame, int]:
    """Anomaly search of each guide-star run of the unit (as :func:`~.runner.run_anomalies`),
    without the event cross-match (the main process adds it). Returns (rows, runs searched)."""
    results, n_runs = [], 0
    for run_files in task.runs:
        run = files.filter(pl.col("file_name").is_in(list(run_files)))
        sub = rows.join(run.select("file_name"), on="file_name", how="semi")
        if sub.height < MIN_POINTS:
            continue
        n_runs += 1
        an = search_run(
            sub, run, task.options.min_sigma, task.visit_start_mjd, task.anomaly_threads
        )
        if an.is_empty():
            continue
        results.append(
            an.select(
                [
                    pl.col(c).cast(t)
                    for c, t in _ANOMALY_COLUMNS.items()
                    if c not in ("coincident_events", "coincident_kinds")
                ]
            )
        )
    schema = {
        c: t
        for c, t in _ANOMALY_COLUMNS.items()
        if c not in ("coincident_events", "coincident_kinds")
    }
    table = pl.concat(results) if results else pl.DataFrame(schema=schema)
    return table, n_runs


def analyse_unit(task: UnitTask) -> UnitResult:
    """Anomalies, periodogram peaks and variability bins of one unit, from one read of its frames.

    Pure: reads the unit's Parquet parts, writes nothing.
    """
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    db = Database(task.archive)
    files = task.files
    rows = load_series(db, _worker_connection(), files)
    t = _add_lap(seconds, "read", t)
    anomalies, _ = _unit_anomalies(rows, task, files)
    t = _add_lap(seconds, "anomalies", t)
    intervals = anomalies.select(
        "gs_id",
        "start_mjd",
        "end_mjd",
        "kind",
        "parameters",
        pl.lit(False).alias("with_event"),  # unused by the conditioning
    )
    skips: list[_Skip] = []
    peaks = _periodogram_group(
        files,
        rows,
        list(task.options.params),
        "visit",
        samples_per_peak=task.options.samples_per_peak,
        n_peaks=task.options.n_peaks,
        skips=skips,
        anomalies=_anomalies_within(intervals if intervals.height else None, files, rows),
    )
    t = _add_lap(seconds, "periodograms", t)
    bins = pl.DataFrame(schema=BIN_SCHEMA)
    var_frames, source = 0, None
    if task.key[3] is not None and rows.height:
        # "all" anomalies are masked (runner._instrumental_anomalies): the transients as intervals
        transients = anomalies.filter(~_is_step(pl.col("kind"))).select(
            "gs_id", "start_mjd", "end_mjd"
        )
        frame_df, source = _star_frames(rows, task.options.gain, None, "total")
        bins, n_frames = variability_bins(
            frame_df,
            bin_s=task.options.bin_s,
            anomalies=transients if transients.height else None,
        )
        var_frames = int(n_frames["n_frames"].sum()) if n_frames.height else 0
    _add_lap(seconds, "variables", t)
    return UnitResult(
        key=task.key,
        fingerprint=task.fingerprint,
        anomalies=anomalies,
        peaks=peaks,
        bins=bins,
        var_frames=var_frames,
        flux_source=source,
        skips=[f"periodogram skipped for {s.what}: {s.why}" for s in skips],
        seconds=seconds,
        n_files=files.height,
        n_frames=task.n_frames,
    )


def analyse_unit_or_error(task: UnitTask) -> UnitResult | str:
    """:func:`analyse_unit`, or a one-line reason when the unit's parts are gone or broken (the
    unit is then not stored, so the next run tries it again)."""
    try:
        return analyse_unit(task)
    except FileNotFoundError:
        return "its frames or fits are gone from the archive: re-ingest or re-fit its files"
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _add_lap(seconds: dict[str, float], name: str, t: float) -> float:
    now = time.perf_counter()
    seconds[name] = seconds.get(name, 0.0) + now - t
    return now


# --------------------------------------------------------------------------------------------------
# Pool
# --------------------------------------------------------------------------------------------------
def _map_units(
    tasks: list[UnitTask], workers: int, scheduler: str | None
) -> Iterator[UnitResult | tuple[UnitTask, str]]:
    """Each task's result as it completes: in this process (``workers == 1``), on a process pool
    (forkserver, as the fit) or on a Dask scheduler (``"local"`` or an address). Where processes
    run the units side by side, each unit's anomaly search keeps to one thread."""
    if scheduler is not None or workers > 1:
        # largest units first: the pool's last minutes are not one long unit on one worker
        tasks = sorted((replace(t, anomaly_threads=1) for t in tasks), key=lambda t: -t.n_frames)
    if scheduler is not None:
        yield from _map_dask(tasks, scheduler, workers)
    elif workers == 1:
        for task in tasks:
            result = analyse_unit_or_error(task)
            yield result if isinstance(result, UnitResult) else (task, result)
    else:
        with process_pool(workers, preload=ANALYSIS_PRELOAD) as pool:
            futures = {pool.submit(analyse_unit_or_error, task): task for task in tasks}
            try:
                for future in cf.as_completed(futures):
                    task = futures.pop(future)
                    result = future.result()
                    yield result if isinstance(result, UnitResult) else (task, result)
            finally:
                for future in futures:
                    future.cancel()
                end_workers(pool)


def _map_dask(
    tasks: list[UnitTask], scheduler: str, workers: int
) -> Iterator[UnitResult | tuple[UnitTask, str]]:
    """:func:`_map_units` on a Dask cluster."""
    with dask_client(scheduler, workers) as client:
        for task, future in dask_completed(client, analyse_unit_or_error, tasks):
            result = future.result()
            future.release()
            yield result if isinstance(result, UnitResult) else (task, result)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _keys_frame(keys: Sequence[tuple]) -> pl.DataFrame:
    return (
        pl.DataFrame(
            [dict(zip(UNIT_KEYS, k, strict=True)) for k in keys], schema=_KEY_SCHEMA, orient="row"
        )
        if keys
        else pl.DataFrame(schema=_KEY_SCHEMA)
    )


class _Events:
    """Observatory events per program, read once per run, for the anomalies' cross-match."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.cache: dict[int, pl.DataFrame] = {}
        self.available: bool | None = None

    def of(self, con, program: int) -> pl.DataFrame:
        if self.available is None:
            self.available = _exists(self.db, con, "events")
        if not self.available:
            return pl.DataFrame(schema=_EVENTS_SCHEMA)
        if program not in self.cache:
            ev = _table(self.db, con, "analysis/events_of_program", {"program": int(program)})
            self.cache[program] = ev.cast(_EVENTS_SCHEMA)
        return self.cache[program]


def _cross_match(con, anomalies: pl.DataFrame, events: _Events, window_s: float) -> pl.DataFrame:
    """Add each anomaly's coincident events (per program), in the stored column order."""
    if anomalies.is_empty():
        return pl.DataFrame(schema=_ANOMALY_COLUMNS)
    parts = []
    for (prog,), part in anomalies.group_by("program", maintain_order=True):
        ev = events.of(con, int(prog))
        parts.append(cross_match_events(part, ev, window_s=window_s))
    out = pl.concat(parts, how="diagonal_relaxed")
    return out.select([pl.col(c).cast(t) for c, t in _ANOMALY_COLUMNS.items()])


def _write_batch(db: Database, results: list[UnitResult], events: _Events, window_s: float) -> None:
    """Store a batch of units' results and fingerprints in one transaction (old results of those
    units replaced)."""
    keys = _keys_frame([r.key for r in results]).to_arrow()
    units = pl.DataFrame(
        {
            "program": [r.key[0] for r in results],
            "observation": [r.key[1] for r in results],
            "visit": [r.key[2] for r in results],
            "gs_id": [r.key[3] for r in results],
            "fingerprint": [r.fingerprint for r in results],
            "n_files": [r.n_files for r in results],
            "n_frames": [r.n_frames for r in results],
            "var_frames": [r.var_frames for r in results],
            "flux_source": [r.flux_source for r in results],
            "seconds": [float(sum(r.seconds.values())) for r in results],
        },
        schema={
            **_KEY_SCHEMA,
            "fingerprint": pl.String,
            "n_files": pl.Int32,
            "n_frames": pl.Int64,
            "var_frames": pl.Int64,
            "flux_source": pl.String,
            "seconds": pl.Float64,
        },
    )
    peaks = [r.peaks for r in results if r.peaks is not None and r.peaks.height]
    bins = []
    for r in results:
        if r.bins.height:
            bins.append(
                r.bins.with_columns(
                    *(
                        pl.lit(v, dtype=_KEY_SCHEMA[k]).alias(k)
                        for k, v in zip(UNIT_KEYS[:3], r.key[:3], strict=True)
                    )
                )
            )
    with db.writer(lazy=True, duty=PUBLISH_DUTY) as con:
        anomalies = _cross_match(con, pl.concat([r.anomalies for r in results]), events, window_s)
        db.run(con, "analysis/create_anomalies")
        db.run(con, "analysis/create_periodogram")
        db.run(con, "analysis/unit_anomalies_delete", unit_keys=keys)
        db.run(con, "analysis/unit_peaks_delete", unit_keys=keys)
        db.run(con, "analysis/unit_bins_delete", unit_keys=keys)
        db.run(con, "analysis/units_delete", unit_keys=keys)
        if anomalies.height:
            db.run(con, "analysis/anomalies_insert", new_anomalies=anomalies.to_arrow())
        if peaks:
            db.run(con, "analysis/peaks_insert", new_peaks=pl.concat(peaks).to_arrow())
        if bins:
            db.run(con, "analysis/bins_insert", new_bins=pl.concat(bins).to_arrow())
        db.run(con, "analysis/units_insert", new_units=units.to_arrow())


# --------------------------------------------------------------------------------------------------
# Archive-wide products
# --------------------------------------------------------------------------------------------------
def _archive_wide_key(options: AnalyseOptions) -> str:
    return hashlib.sha256(options.fingerprint().encode()).hexdigest()


#: analysis_state key of the per-program event fingerprints the stored cross-match was made with
CROSS_MATCH_STATE_KEY = "events_by_program"


def _events_fingerprints(db: Database, con, window_s: float) -> str:
    """JSON {program: fingerprint} of the events each program's anomalies may coincide with
    (``analysis/events_fingerprints``); ``{}`` without an events table."""
    if not _exists(db, con, "events"):
        return "{}"
    rows = db.run(
        con, "analysis/events_fingerprints", {"window_days": float(window_s) / SECONDS_PER_DAY}
    ).fetchall()
    return json.dumps({str(int(prog)): str(fp) for prog, fp in rows}, sort_keys=True)


def _events_changed(now: str, then: str | None) -> set[int]:
    """Programs whose event fingerprint differs from the stored one (every program of ``now``
    when nothing is stored)."""
    current = json.loads(now)
    before = json.loads(then) if then else {}
    if then is None:
        return {int(p) for p in current}
    return {int(p) for p, fp in current.items() if before.get(p) != fp}


def _lines_key(lines: pl.DataFrame) -> list[float]:
    return sorted(lines["frequency_hz"].to_list()) if lines.height else []


def _update_archive_wide(
    db: Database,
    *,
    gone: pl.DataFrame,
    pending_stars: set[str],
    refresh_programs: set[int],
    rescore_all: bool,
    state_key: str,
    events_state: str,
    options: AnalyseOptions,
    report: UnitsReport,
    log_options: dict,
    started: float,
) -> None:
    """One transaction: drop vanished units, refresh the cross-match of ``refresh_programs``
    (their events changed), re-learn lines and relabel peaks, rescore the stars concerned and
    re-rank all, record the state."""
    events = _Events(db)
    t = time.perf_counter()
    with db.writer() as con:
        db.run(con, "analysis/create_anomalies")
        db.run(con, "analysis/create_periodogram")
        db.run(con, "analysis/create_variability")
        if gone.height:
            keys = gone.select(list(UNIT_KEYS)).cast(_KEY_SCHEMA).to_arrow()
            for name in ("unit_anomalies_delete", "unit_peaks_delete", "unit_bins_delete"):
                db.run(con, f"analysis/{name}", unit_keys=keys)
            db.run(con, "analysis/units_delete", unit_keys=keys)
        if refresh_programs:
            scope = pl.DataFrame(
                {"program": sorted(refresh_programs)}, schema={"program": pl.Int32}
            ).to_arrow()
            con.register("programs", scope)
            stored = pl.from_arrow(db.arrow(con, "analysis/anomalies_of_programs"))
            if stored.height:
                refreshed = _cross_match(
                    con,
                    stored.drop("coincident_events", "coincident_kinds"),
                    events,
                    options.window_s,
                )
                db.run(con, "analysis/anomalies_of_programs_delete", programs=scope)
                db.run(con, "analysis/anomalies_insert", new_anomalies=refreshed.to_arrow())
            report.events_refreshed = True
            report.programs_refreshed = len(refresh_programs)
        t = _add_lap(report.seconds, "wide_cross_match", t)
        old_lines = _table(db, con, "analysis/lines")
        lines, _ = _store_lines(db, con)
        report.lines_changed = _lines_key(old_lines) != _lines_key(lines)
        # only lines low enough to reach the binned visits change a star's variability
        var_lines_changed = _lines_key(variability_lines(old_lines, options.bin_s)) != _lines_key(
            variability_lines(lines, options.bin_s)
        )
        t = _add_lap(report.seconds, "wide_lines", t)
        star_meta = _table(db, con, "analysis/star_units")
        stored_var = _table(db, con, "analysis/variability_all")
        all_stars = set(star_meta["gs_id"].to_list())
        if rescore_all or var_lines_changed or stored_var.is_empty():
            todo = all_stars
        else:
            todo = (pending_stars | set(gone["gs_id"].drop_nulls().to_list())) & all_stars
        kept = stored_var.filter(
            ~pl.col("gs_id").is_in(list(todo)) & pl.col("gs_id").is_in(list(all_stars))
        )
        fresh = _rescore(db, con, sorted(todo), star_meta, lines, options)
        report.stars_rescored = len(todo)
        t = _add_lap(report.seconds, "wide_rescore", t)
        cols = {**VARIABILITY_SCHEMA, "flux_source": pl.String, "programs": pl.List(pl.Int32)}
        table = pl.concat(
            [kept.select([pl.col(c).cast(t) for c, t in cols.items()]), fresh],
            how="vertical_relaxed",
        )
        table = (
            table.sort(["score", "gs_id"], descending=[True, False], nulls_last=True)
            .drop("rank")
            .with_row_index("rank", offset=1)
            .select([pl.col(c).cast(t) for c, t in cols.items()])
        )
        db.run(con, "analysis/variability_clear")
        if table.height:
            db.run(con, "analysis/variability_insert", new_variability=table.to_arrow())
        db.run(con, "analysis/units_settled")
        _set_state(db, con, "archive_wide", state_key)
        _set_state(db, con, CROSS_MATCH_STATE_KEY, events_state)
        _log_run(
            db,
            con,
            "analyse",
            None,
            {**log_options, "units_computed": report.units_computed},
            n_groups=report.units_total,
            n_rows=table.height,
            seconds=time.perf_counter() - started,
        )


def _rescore(
    db: Database,
    con,
    stars: list[str],
    star_meta: pl.DataFrame,
    lines: pl.DataFrame,
    options: AnalyseOptions,
) -> pl.DataFrame:
    """Variability of ``stars`` from their stored bins and the current lines (no frame read)."""
    cols = {**VARIABILITY_SCHEMA, "flux_source": pl.String, "programs": pl.List(pl.Int32)}
    if not stars:
        return pl.DataFrame(schema=cols)
    stars_table = pl.DataFrame({"gs_id": stars}, schema={"gs_id": pl.String}).to_arrow()
    con.register("stars", stars_table)
    bins = pl.from_arrow(db.arrow(con, "analysis/bins_of_stars"))
    meta = star_meta.filter(pl.col("gs_id").is_in(stars))
    n_frames = meta.select("gs_id", "n_frames")
    stats = variability_from_bins(
        bins.cast({c: t for c, t in BIN_SCHEMA.items()}),
        n_frames,
        bin_s=options.bin_s,
        lines=lines if lines.height else None,
    )
    if stats.is_empty():
        return pl.DataFrame(schema=cols)
    stats = stats.drop("n_visits").join(
        meta.select("gs_id", "n_visits", "flux_source", "programs"), on="gs_id", how="left"
    )
    return stats.select([pl.col(c).cast(t) for c, t in cols.items()])


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------
def analyse_units(
    db: Database,
    *,
    program: int | None = None,
    options: AnalyseOptions | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    full: bool = False,
    on_warning: Warn | None = None,
    progress: Progress | None = None,
) -> UnitsReport:
    """Compute the new and changed units (all with ``full``), then update the archive-wide
    products; see the module docstring. Call under :func:`analyse_lock` (run_all_analyses does)."""
    options = options or AnalyseOptions()
    warn = on_warning or (lambda _text: None)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {workers})")
    if not options.min_sigma > 0:
        raise UsageError(f"--min-sigma must be > 0, got {options.min_sigma}")
    started = time.perf_counter()
    report = UnitsReport()
    with db.reader() as con:
        files = current_units(db, con, program, options, warn)
        stored_all = (
            _table(db, con, "analysis/units_stored", {"program": None})
            if _exists(db, con, "analysis_units")
            else pl.DataFrame(
                schema={**_KEY_SCHEMA, "fingerprint": pl.String, "pending": pl.Boolean}
            )
        )
        events_now = _events_fingerprints(db, con, options.window_s)
        has_state = _exists(db, con, "analysis_state")
        old_state = _state(db, con, "archive_wide") if has_state else None
        events_then = _state(db, con, CROSS_MATCH_STATE_KEY) if has_state else None
        has_results = _exists(db, con, "variability")
    report.seconds["plan"] = time.perf_counter() - started
    stored = stored_all if program is None else stored_all.filter(pl.col("program") == program)
    units = files.group_by(list(UNIT_KEYS), maintain_order=True).agg(
        pl.col("fingerprint").first(), pl.col("n_frames").sum().alias("n_frames")
    )
    report.units_total = units.height
    compare = units.join(
        stored.select(*UNIT_KEYS, pl.col("fingerprint").alias("stored")),
        on=list(UNIT_KEYS),
        how="left",
        nulls_equal=True,
    )
    todo = (
        compare
        if full
        else compare.filter(
            pl.col("stored").is_null() | (pl.col("stored") != pl.col("fingerprint"))
        )
    )
    gone = stored.join(units.select(UNIT_KEYS), on=list(UNIT_KEYS), how="anti", nulls_equal=True)
    report.units_computed = todo.height
    report.units_unchanged = units.height - todo.height
    report.units_removed = gone.height
    pending_stars = set(
        stored_all.filter(pl.col("pending").fill_null(False))["gs_id"].drop_nulls().to_list()
    ) | set(todo["gs_id"].drop_nulls().to_list())
    fresh = sorted(set(todo["program"].to_list()) - set(stored["program"].to_list()))
    if fresh:
        # programs without any stored unit (never analysed incrementally, or their units were
        # invalidated by a single-analysis command): rows no fingerprint vouches for go first
        with db.writer() as con:
            db.run(con, "analysis/create_anomalies")
            db.run(con, "analysis/create_periodogram")
            for prog in fresh:
                for name in ("scope_anomalies_clear", "scope_peaks_clear", "scope_bins_clear"):
                    db.run(con, f"analysis/{name}", {"program": int(prog)})
    tasks = _tasks(db, files, todo, options)
    if tasks and (workers > 1 or scheduler is not None):
        # the archive-wide rescore's periodograms need nifty-ls (~1.4 s to import, astropy with
        # it): imported while this process only waits on the pool, not after it
        _import_in_background("nifty_ls")
    events = _Events(db)
    batch: list[UnitResult] = []
    batch_started = time.monotonic()
    done = 0
    t = time.perf_counter()
    try:
        for result in _map_units(tasks, workers, scheduler):
            done += 1
            if not isinstance(result, UnitResult):
                task, why = result
                report.units_failed += 1
                report.units_computed -= 1
                warn(f"{_unit_label(task.key)} not analysed: {why}")
                if progress is not None:
                    progress(done, len(tasks))
                continue
            for text in result.skips:
                warn(text)
            for name, s in result.seconds.items():
                report.seconds[name] = report.seconds.get(name, 0.0) + s
            report.frames_read += result.n_frames
            batch.append(result)
            if len(batch) >= BATCH_UNITS or time.monotonic() - batch_started >= BATCH_SECONDS:
                _write_batch(db, batch, events, options.window_s)
                batch, batch_started = [], time.monotonic()
            if progress is not None:
                progress(done, len(tasks))
        if batch:
            _write_batch(db, batch, events, options.window_s)
    except BaseException:
        db.publish_pending()  # readers see the batches stored before the failure
        raise
    report.seconds["units"] = time.perf_counter() - t
    state_key = _archive_wide_key(options)
    rescore_all = old_state is None or old_state != state_key
    # programs whose events changed since their anomalies were cross-matched (all of them when
    # the options changed or nothing is on record)
    refresh = _events_changed(events_now, None if rescore_all else events_then)
    if (
        todo.height
        or gone.height
        or pending_stars
        or refresh
        or old_state != state_key
        or events_then != events_now
        or not has_results
    ):
        t = time.perf_counter()
        report.archive_wide = True
        try:
            _update_archive_wide(
                db,
                gone=gone,
                pending_stars=pending_stars,
                refresh_programs=refresh,
                rescore_all=rescore_all,
                state_key=state_key,
                events_state=events_now,
                options=options,
                report=report,
                log_options={
                    "program": program,
                    "full": full,
                    "workers": workers,
                    "scheduler": scheduler,
                    **json.loads(options.fingerprint()),
                },
                started=started,
            )
        except BaseException:
            db.publish_pending()  # the stored batches, though the archive-wide step failed
            raise
        report.seconds["archive_wide"] = time.perf_counter() - t  # its commit published all
    else:
        t_publish = time.perf_counter()
        db.publish_pending()
        report.seconds["publish"] = time.perf_counter() - t_publish
    report.seconds["total"] = time.perf_counter() - started
    return report


def _import_in_background(module: str) -> None:
    """Import ``module`` on a daemon thread (a failure is left to the later import to report)."""

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    threading.Thread(target=load, name=f"import {module}", daemon=True).start()


def _unit_label(key: tuple) -> str:
    program, observation, visit, gs_id = key
    return f"program {program} obs {observation} visit {visit} guide star {gs_id}"


def _tasks(
    db: Database, files: pl.DataFrame, todo: pl.DataFrame, options: AnalyseOptions
) -> list[UnitTask]:
    """One task per unit to compute, in time order (files sorted as analysis/fg_files)."""
    if todo.is_empty():
        return []
    sel = files.join(todo.select(UNIT_KEYS), on=list(UNIT_KEYS), how="semi", nulls_equal=True)
    sel = sel.sort("data_start_mjd", "file_name")
    archive = str(db.path)
    tasks = []
    for key, unit in sel.group_by(list(UNIT_KEYS), maintain_order=True):
        runs = tuple(
            tuple(part["file_name"].to_list())
            for _, part in unit.group_by("run", maintain_order=True)
        )
        tasks.append(
            UnitTask(
                key=tuple(key),
                fingerprint=str(unit["fingerprint"][0]),
                files=unit.select(_FILE_COLUMNS),
                runs=runs,
                visit_start_mjd=float(unit["visit_start_mjd"][0]),
                archive=archive,
                options=options,
                n_frames=int(unit["n_frames"].sum()),
            )
        )
    return tasks


def stored_results(
    db: Database, program: int | None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The stored visit peaks, anomalies (of ``program`` or all) and variability ranks."""
    with db.reader() as con:
        peaks = (
            _table(db, con, "analysis/peaks_visit", {"program": program})
            if _exists(db, con, "periodogram_peaks")
            else pl.DataFrame()
        )
        anomalies = (
            _table(db, con, "analysis/anomalies_of", {"program": program})
            if _exists(db, con, "anomalies")
            else pl.DataFrame(schema=_ANOMALY_COLUMNS)
        )
        variability = (
            _table(db, con, "analysis/variability_all")
            if _exists(db, con, "variability")
            else pl.DataFrame()
        )
    return peaks, anomalies, variability
