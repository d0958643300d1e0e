"""The single analyses: read series from DuckDB/Parquet, run the maths, write the result tables.

``fgsarchive analyse`` (all of them, incremental per unit) is :mod:`.incremental`, built on these.

* :func:`run_periodograms` -- Lomb-Scargle of every fitted parameter per guide-star run
  (``periodogram_peaks``), and the instrumental lines learned across guide stars
  (``instrumental_lines``).
* :func:`run_anomalies` -- flux drops, centroid jumps, PSF changes per visit and guide star,
  cross-matched with the observatory ``events`` (``anomalies``).
* :func:`run_variables` -- variability statistics and rank of every guide star over all its visits
  and programs (``variability``).

The maths lives in the pure modules (:mod:`.periodogram`, :mod:`.detrend`, :mod:`.anomalies`,
:mod:`.variables`); this module only feeds them from the archive and writes what they return.
Reading is done on one read-only connection; each analysis writes its results in one short
write transaction at the end (nothing is written when it fails). Every statement lives in
``fgsarchive/sql/analysis/*.sql``. The rules (grouping, masking, noise model) are written up in
docs/analyses.md, "Running the analyses on the archive".
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..choices import FIT_PARAMETERS, GROUPINGS, PERIODOGRAM_PARAMETERS
from ..db import Database
from ..errors import (
    AnalysisWarning,
    NotComputedError,
    SelectionError,
    UsageError,
)
from ..storage import part_name
from .anomalies import (
    STEP_SUFFIXES,
    cross_match_events,
    detect_anomalies,
    parameter_family,
    theta_continuous,
)
from .detrend import calibrate_flux_opt, decorrelate_pointing
from .periodogram import (
    MIN_POINTS,
    condition_for_periodogram,
    instrumental_lines,
    label_instrumental,
    line_contrast,
    periodogram_series,
    pointing_lines,
    refine_peak_offset,
    spike_mask,
)
from .variables import (
    VARIABILITY_SCHEMA,
    variability_stats,
)

__all__ = [
    "AnalysisWarning",
    "FIT_PARAMETERS",
    "PERIODOGRAM_PARAMETERS",
    "GROUPINGS",
    "ANOMALY_PARAMETERS",
    "GAIN_E_PER_DN",
    "load_series",
    "run_periodograms",
    "run_anomalies",
    "run_variables",
    "instrumental_min_stars",
    "invalidate",
]

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400.0
#: Series searched by ``fgsarchive anomalies`` (plus a flux and the background from photometry).
ANOMALY_PARAMETERS = ("x_mean", "y_mean", "x_stddev", "y_stddev", "theta", "amplitude")
#: Detector gain used for the expected photon noise (e-/DN), as the simulator's default.
GAIN_E_PER_DN = 2.0
#: Largest periodogram grid (frequencies per series); longer groups get a coarser grid.
MAX_FREQUENCIES = 4_000_000
N_PEAKS = 5
INSTRUMENTAL_REL_TOL = 0.01
INSTRUMENTAL_MAX_FAP = 0.01
#: Peaks of fewer cycles than this over their series do not take part in learning lines.
LINE_MIN_CYCLES = 3.0
#: A line must stand this many sigma above the local density of peaks (see line_contrast).
LINE_MIN_CONTRAST = 4.0
CROSS_MATCH_WINDOW_S = 30.0
VARIABILITY_BIN_S = 10.0
_FRAME_DATASET = "frames"
_FIT_DATASET = "fits"
_PHOT_DATASET = "photometry"

Warn = Callable[[str], None]
Progress = Callable[[int, int], None]


def _warner(on_warning: Warn | None) -> Warn:
    if on_warning is not None:
        return on_warning
    return lambda text: warnings.warn(text, AnalysisWarning, stacklevel=3)


def _table(db: Database, con, name: str, params: dict | None = None) -> pl.DataFrame:
    return pl.from_arrow(db.arrow(con, name, params))


def _exists(db: Database, con, name: str) -> bool:
    return bool(db.run(con, "core/relation_exists", {"name": name}).fetchall()[0][0])


def _fit_command(program: int | None) -> str:
    return f"fgsarchive fit --program {program}" if program is not None else "fgsarchive fit"


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def _fg_files(
    db: Database, con, program: int | None = None, gs_id: str | None = None
) -> pl.DataFrame:
    return _table(db, con, "analysis/fg_files", {"program": program, "gs_id": gs_id})


def _no_files_error(program: int | None) -> SelectionError:
    if program is not None:
        return SelectionError(
            f"no fine-guide frames of program {program} in the archive "
            f"(ingest them with `fgsarchive ingest {program}` or `fgsarchive ingest --from DIR`)"
        )
    return SelectionError(
        "the archive has no fine-guide frames yet: ingest some with `fgsarchive ingest`"
    )


def _fitted_files(
    db: Database, con, files: pl.DataFrame, program: int | None, warn: Warn
) -> pl.DataFrame:
    """The files that have Gaussian fits; NotComputedError when none do (one line, names the command).

    Programs without any fit are skipped with a warning when others have fits; so are single files
    not fitted yet.
    """
    if files.is_empty():
        raise _no_files_error(program)
    if not db.parts.has_dataset(_FIT_DATASET):
        raise NotComputedError(
            "fits",
            message=f"{_what(program)} has no fits yet: run `{_fit_command(program)}` first",
        )
    fitted = _table(db, con, "analysis/fitted_files", {"program": program})
    have = files.join(fitted.select("file_name"), on="file_name", how="semi")
    if have.is_empty():
        raise NotComputedError(
            "fits",
            message=f"{_what(program)} has no fits yet: run `{_fit_command(program)}` first",
        )
    warn_unfitted(files, files.join(fitted.select("file_name"), on="file_name", how="anti"), warn)
    return have


def warn_unfitted(files: pl.DataFrame, missing: pl.DataFrame, warn: Warn) -> None:
    """One warning per program with files (``missing``, of ``files``) that have no fits yet."""
    for (prog,), part in missing.group_by("program", maintain_order=True):
        n_all = files.filter(pl.col("program") == prog).height
        if part.height == n_all:
            warn(f"program {prog} has no fits yet and was skipped: run `{_fit_command(prog)}`")
        else:
            warn(
                f"{part.height} of {n_all} file(s) of program {prog} have no fits yet and were "
                f"skipped: run `{_fit_command(prog)}`"
            )


def _what(program: int | None) -> str:
    return f"program {program}" if program is not None else "the archive"


_SERIES_SCHEMA = {
    "file_name": pl.String,
    "frame": pl.Int32,
    "time_mjd": pl.Float64,
    "flux": pl.Float64,
}


_SERIES_META = ("program", "observation", "visit", "gs_id", "guide_period", "frame_time_s")
_VERSIONED_PART = re.compile(r"(.+)\.v(\d+)\.parquet")
#: Columns :func:`load_series` reads from each dataset's parts.
_SERIES_READ = {
    _FRAME_DATASET: ("file_name", "frame", "time_mjd", "flux"),
    _FIT_DATASET: ("file_name", "frame", *FIT_PARAMETERS, "status"),
    _PHOT_DATASET: ("file_name", "frame", "background", "flux_r2", "flux_opt", "n_opt_pixels"),
}


def _unit_parts(
    db: Database, dataset: str, program: int, names: list[str]
) -> list[tuple[str, list[str]]]:
    """Per source file of ``names`` (one program): its parts in a dataset, as
    :meth:`PartStore.parts_of` finds them (``<part>.parquet``, then ``<part>.v<k>.parquet`` by
    name), listing the program's folder once for them all instead of once per file."""
    folder = db.parts.root / dataset / f"program={int(program)}"
    try:
        entries = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return [(name, []) for name in names]
    present = set(entries)
    versioned: dict[str, list[str]] = {}
    for entry in entries:
        m = _VERSIONED_PART.fullmatch(entry)
        if m:
            versioned.setdefault(m.group(1), []).append(entry)
    out = []
    for name in names:
        part = part_name(name)
        found = [f"{part}.parquet"] if f"{part}.parquet" in present else []
        out.append((name, [str(folder / e) for e in found + sorted(versioned.get(part, ()))]))
    return out


def _newest_part(paths: list[str]) -> str | None:
    """The part of the newest fit_version when every part is versioned (``<part>.v<k>``: it holds
    that version only), else None (an unversioned part may hold any version)."""
    versions = []
    for path in paths:
        m = _VERSIONED_PART.fullmatch(Path(path).name)
        if m is None:
            return None
        versions.append((int(m.group(2)), path))
    return max(versions)[1] if versions else None


def _finite_median(values: np.ndarray) -> float | None:
    """Median of the finite values (polars' median, as ``calibrate_flux_opt`` takes it), or None."""
    finite = values[np.isfinite(values)]
    return pl.Series(finite).median() if finite.size else None


def _calibrate_flux_opt_by_file(
    flux: np.ndarray,
    flux_opt: np.ndarray,
    background: np.ndarray,
    n_pixels: np.ndarray,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~.detrend.calibrate_flux_opt` on arrays whose files are the contiguous row ranges
    ``bounds[i]:bounds[i + 1]``: (calibrated flux_opt, flux_opt_gain); same operations, same
    medians, so the same values."""
    out = np.empty_like(flux_opt)
    gains = np.empty_like(flux_opt)
    with np.errstate(divide="ignore", invalid="ignore"):
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            b = _finite_median(background[lo:hi])
            b = 0.0 if b is None else b
            star_opt = flux_opt[lo:hi] - n_pixels[lo:hi] * b
            star_all = flux[lo:hi] - 64.0 * b
            m_all, m_opt = _finite_median(star_all), _finite_median(star_opt)
            g = np.nan if m_all is None or m_opt is None else np.float64(m_all) / np.float64(m_opt)
            g = float(g) if np.isfinite(g) and g > 0 else 1.0
            out[lo:hi] = star_opt * g
            gains[lo:hi] = g
    return out, gains


def load_series(
    db: Database,
    con,
    files: pl.DataFrame,
    *,
    fits: bool = True,
    photometry: bool = True,
    mask: bool = True,
) -> pl.DataFrame:
    """Per-frame series of ``files`` (rows of ``analysis/fg_files``), sorted by time.

    Columns: file_name, frame, time_mjd, flux (frames), the Gaussian parameters and ``status``
    (``fits``, newest fit_version of each file), background, flux_r2, flux_opt, n_opt_pixels
    (``photometry``), plus each file's program, observation, visit, gs_id, guide_period and
    frame_time_s. With ``mask``, every value of a frame whose fit did not converge
    (``status != 0``) is NaN. Missing values are NaN too (a file without photometry, ...).

    Each file's own parts are read (a unit's read costs the same in a 20M-frame archive as in a
    small one). When every file has one frames part and a newest fits and photometry part with
    the same frames in the same order (what ``fgsarchive fit`` writes), one DuckDB statement
    (``analysis/series``) reads only the needed columns and lines them up by position, and the
    per-file calibration of flux_opt runs on arrays; otherwise the datasets are joined in polars.
    """
    datasets = [_FRAME_DATASET]
    if fits:
        datasets.append(_FIT_DATASET)
    if photometry:
        datasets.append(_PHOT_DATASET)
    # per program (in order), each file's parts of each dataset; a program without frames adds nothing
    programs: list[dict[str, list[tuple[str, list[str]]]]] = []
    for (prog,), sel in files.group_by("program", maintain_order=True):
        names = sel["file_name"].to_list()
        found = {d: _unit_parts(db, d, int(prog), names) for d in datasets}
        if any(paths for _, paths in found[_FRAME_DATASET]):
            programs.append(found)
    if not programs:
        return pl.DataFrame(schema=_SERIES_SCHEMA)
    if fits and photometry:
        df = _load_series_aligned(db, con, files, programs, mask)
        if df is not None:
            return df
    flat = [
        {d: [p for _, paths in found[d] for p in paths] for d in datasets} for found in programs
    ]
    return _load_series_joined(db, con, files, flat, datasets, mask)


def _load_series_aligned(
    db: Database, con, files: pl.DataFrame, programs: list[dict], mask: bool
) -> pl.DataFrame | None:
    """:func:`load_series` with fits and photometry lined up by position, or None when the parts
    do not line up (several frames parts, an unversioned or missing fit part, other frames, ...).

    The parts are read with pyarrow, only the needed columns, and stay Arrow / numpy until the
    final frame (about twice as fast as DuckDB's Parquet scan of the same columns; no joins)."""
    chosen: dict[str, list[str]] = {_FRAME_DATASET: [], _FIT_DATASET: [], _PHOT_DATASET: []}
    for found in programs:
        for i, (_, frame_parts) in enumerate(found[_FRAME_DATASET]):
            if not frame_parts:
                continue  # a file without frames adds no rows
            newest = [_newest_part(found[d][i][1]) for d in (_FIT_DATASET, _PHOT_DATASET)]
            if len(frame_parts) != 1 or None in newest:
                return None
            chosen[_FRAME_DATASET].append(frame_parts[0])
            chosen[_FIT_DATASET].append(newest[0])
            chosen[_PHOT_DATASET].append(newest[1])
    try:
        fr, ft, ph = (
            pq.ParquetDataset(chosen[d], partitioning=None).read(columns=list(_SERIES_READ[d]))
            for d in (_FRAME_DATASET, _FIT_DATASET, _PHOT_DATASET)
        )
    except (pa.ArrowException, KeyError, OSError):
        return None  # parts of several schemas, a missing column: the general path says
    names, frame = fr["file_name"], fr["frame"]
    if not (
        fr.num_rows == ft.num_rows == ph.num_rows
        and names.equals(ft["file_name"])
        and names.equals(ph["file_name"])
        and frame.equals(ft["frame"])
        and frame.equals(ph["frame"])
    ):
        return None
    # each file's rows are contiguous (one part each): bounds and the file of each row
    codes = pc.dictionary_encode(names.combine_chunks())
    index = codes.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(index)) + 1, [len(index)]))
    if len(bounds) - 1 != len(codes.dictionary):
        return None  # one file's rows in two places (the file listed twice)
    meta = files.select("file_name", *_SERIES_META).unique("file_name", keep="first")
    where = dict(zip(meta["file_name"].to_list(), range(meta.height), strict=True))
    rows = np.array([where.get(n, -1) for n in codes.dictionary.to_pylist()], dtype=np.int64)
    if (rows < 0).any():
        return None

    status = pl.from_arrow(ft["status"])
    bad = (status.is_not_null() & (status != 0)).fill_null(False).to_numpy() if mask else None
    masks = bad is not None and bool(bad.any())

    def values(column: pa.ChunkedArray) -> np.ndarray:
        """As Float64, missing values NaN, NaN where the fit did not converge (with ``mask``)."""
        if column.type == pa.float64() and column.null_count == 0:
            x = column.to_numpy()  # the common case: one copy, no polars round trip
        else:
            x = pl.from_arrow(column).cast(pl.Float64).fill_null(np.nan).to_numpy()
        return np.where(bad, np.nan, x) if masks else x

    out: dict[str, object] = {
        "file_name": pl.from_arrow(names),
        "frame": pl.from_arrow(frame),
        "time_mjd": pl.from_arrow(fr["time_mjd"]),
        "flux": values(fr["flux"]),
    }
    out.update((c, values(ft[c])) for c in FIT_PARAMETERS)
    out["status"] = status
    out.update((c, values(ph[c])) for c in ("background", "flux_r2", "flux_opt"))
    out["n_opt_pixels"] = pl.from_arrow(ph["n_opt_pixels"])
    raw = out["flux_opt"]
    n_pixels = out["n_opt_pixels"].cast(pl.Float64).fill_null(0.0).to_numpy()
    out["flux_opt"], gain = _calibrate_flux_opt_by_file(
        out["flux"], raw, out["background"], n_pixels, bounds
    )
    file_rows = rows[index]
    for c in _SERIES_META:
        out[c] = meta[c][file_rows]
    out["flux_opt_gain"] = gain
    out["flux_opt_raw"] = raw
    df = pl.DataFrame(
        {k: pl.Series(k, v) if not isinstance(v, pl.Series) else v.alias(k) for k, v in out.items()}
    )
    t = df["time_mjd"]
    if t.null_count() or not bool(np.all(np.diff(t.to_numpy()) > 0)):
        df = df.sort("time_mjd", "file_name", "frame")
    return df


def _load_series_joined(
    db: Database,
    con,
    files: pl.DataFrame,
    programs: list[dict[str, list[str]]],
    datasets: list[str],
    mask: bool,
) -> pl.DataFrame:
    """:func:`load_series` dataset by dataset, joined in polars (without fits or photometry)."""
    statements = {
        _FRAME_DATASET: "analysis/frames",
        _FIT_DATASET: "analysis/fits",
        _PHOT_DATASET: "analysis/photometry",
    }
    parts = []
    for found in programs:
        df = None
        for dataset in datasets:
            if not found[dataset]:
                continue
            table = _table(db, con, statements[dataset], {"paths": found[dataset]})
            df = table if df is None else df.join(table, on=["file_name", "frame"], how="left")
        parts.append(df)
    df = pl.concat(parts, how="diagonal_relaxed")
    meta = files.select("file_name", *_SERIES_META)
    df = df.join(meta, on="file_name", how="left").sort("time_mjd", "file_name", "frame")
    value_cols = [
        c for c in (*FIT_PARAMETERS, "flux", "background", "flux_r2", "flux_opt") if c in df.columns
    ]
    df = df.with_columns(pl.col(c).cast(pl.Float64).fill_null(np.nan) for c in value_cols)
    if mask and "status" in df.columns:
        bad = pl.col("status").is_not_null() & (pl.col("status") != 0)
        df = df.with_columns(
            pl.when(bad).then(np.nan).otherwise(pl.col(c)).alias(c) for c in value_cols
        )
    if "flux_opt" in df.columns:
        df = calibrate_flux_opt(df)
    return df


def _segment_key() -> pl.Expr:
    return pl.coalesce(pl.col("guide_period"), pl.col("file_name"))


def _runs(files: pl.DataFrame) -> list[pl.DataFrame]:
    """Consecutive files (time order) of one guide star: a new run where gs_id changes."""
    files = files.sort("data_start_mjd", "file_name")
    gs = files["gs_id"].fill_null("").to_list()
    out, start = [], 0
    for i in range(1, len(gs) + 1):
        if i == len(gs) or gs[i] != gs[start]:
            out.append(files.slice(start, i - start))
            start = i
    return out


def _groups(files: pl.DataFrame, by: str) -> list[pl.DataFrame]:
    """Files grouped for one periodogram each; never across guide stars."""
    if by == "file":
        keys = [_segment_key().alias("__key"), "gs_id"]
    elif by == "visit":
        keys = ["program", "observation", "visit", "gs_id"]
    else:
        keys = ["program", "gs_id"]
    f = files.with_columns(*(k for k in keys if isinstance(k, pl.Expr)))
    names = [k if isinstance(k, str) else k.meta.output_name() for k in keys]
    return [g.drop("__key", strict=False) for _, g in f.group_by(names, maintain_order=True)]


def _load_units(files: pl.DataFrame, by: str) -> list[pl.DataFrame]:
    """Files read together: a visit, or (by guide star) all files of one star in one program."""
    keys = ["program", "gs_id"] if by == "guide_star" else ["program", "observation", "visit"]
    return [g for _, g in files.group_by(keys, maintain_order=True)]


# --------------------------------------------------------------------------------------------------
# Periodograms
# --------------------------------------------------------------------------------------------------
@dataclass
class _Skip:
    what: str
    why: str


def _check_params(params: Sequence[str] | None) -> list[str]:
    if not params:
        return list(PERIODOGRAM_PARAMETERS)
    out = []
    for p in params:
        for name in str(p).split(","):
            name = name.strip()
            if not name:
                continue
            if name not in PERIODOGRAM_PARAMETERS:
                raise UsageError(
                    f"unknown parameter {name!r}; valid parameters: {', '.join(PERIODOGRAM_PARAMETERS)}"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise UsageError(
            f"no parameter given; valid parameters: {', '.join(PERIODOGRAM_PARAMETERS)}"
        )
    return out


def _group_label(g: pl.DataFrame, by: str) -> str:
    r = g.row(0, named=True)
    if by == "guide_star":
        return f"program {r['program']} guide star {r['gs_id']}"
    where = (
        f"program {r['program']} obs {r['observation']} visit {r['visit']} guide star {r['gs_id']}"
    )
    return where if by == "visit" else f"{r['file_name']} ({where})"


_PEAK_SCHEMA = {
    "program": pl.Int32,
    "observation": pl.Int32,
    "visit": pl.Int32,
    "file_name": pl.String,
    "gs_id": pl.String,
    "grouped_by": pl.String,
    "n_files": pl.Int32,
    "start_mjd": pl.Float64,
    "end_mjd": pl.Float64,
    "n_points": pl.Int32,
    "parameter": pl.String,
    "rank": pl.Int32,
    "frequency_hz": pl.Float64,
    "period_s": pl.Float64,
    "power": pl.Float64,
    "fap": pl.Float64,
    "pointing": pl.Boolean,
}


def _periodogram_group(
    g: pl.DataFrame,
    rows: pl.DataFrame,
    params: list[str],
    by: str,
    *,
    samples_per_peak: float,
    n_peaks: int,
    skips: list[_Skip],
    spectra=None,
    anomalies: pl.DataFrame | None = None,
) -> pl.DataFrame | None:
    label = _group_label(g, by)
    if rows.is_empty():
        skips.append(_Skip(label, "no frames"))
        return None
    t = rows["time_mjd"].to_numpy() * SECONDS_PER_DAY
    names, values = [], []
    for p in params:
        if p not in rows.columns:
            skips.append(_Skip(f"{label} {p}", "not computed (run `fgsarchive fit`)"))
            continue
        v = rows[p].to_numpy().astype(np.float64, copy=True)
        n_ok = int(np.isfinite(v).sum())
        if n_ok < MIN_POINTS:
            skips.append(
                _Skip(f"{label} {p}", f"{n_ok} unmasked samples (at least {MIN_POINTS} needed)")
            )
            continue
        ok = np.isfinite(v)
        if p == "theta":
            v[ok] = theta_continuous(v[ok])
        v[np.flatnonzero(ok)[spike_mask(v[ok])]] = np.nan
        v = condition_for_periodogram(rows, p, v, anomalies)
        names.append(p)
        values.append(v)
    if not names:
        return None
    cadence = (
        float(np.median(g["frame_time_s"].drop_nulls().to_numpy()))
        if g["frame_time_s"].drop_nulls().len()
        else None
    )
    fmax = 0.5 / cadence if cadence and cadence > 0 else None
    finite_t = t[np.isfinite(t)]
    baseline = float(finite_t.max() - finite_t.min()) if finite_t.size else 0.0
    spp = float(samples_per_peak)
    if fmax is not None and baseline > 0:
        nf = spp * baseline * fmax
        if nf > MAX_FREQUENCIES:
            spp = max(1.0, spp * MAX_FREQUENCIES / nf)
            if spp * baseline * fmax > MAX_FREQUENCIES:
                fmax = MAX_FREQUENCIES / (spp * baseline)
                skips.append(
                    _Skip(
                        label,
                        f"grid capped at {MAX_FREQUENCIES:,} frequencies: searched up to {fmax:.4g} Hz only",
                    )
                )
    try:
        res = periodogram_series(
            t, np.vstack(values), fmax_hz=fmax, samples_per_peak=spp, n_peaks=n_peaks, names=names
        )
    except ValueError as exc:
        skips.append(_Skip(label, str(exc)))
        return None
    pk = res.peaks
    if pk.height:
        freq = pk["frequency_hz"].to_numpy().copy()
        for i, (series, f) in enumerate(zip(pk["series"].to_list(), freq, strict=True)):
            power = res.power[res.names.index(series)]
            idx = int(round((f - res.f0_hz) / res.df_hz))
            freq[i] = res.f0_hz + res.df_hz * (idx + refine_peak_offset(power, idx))
        pk = pk.with_columns(pl.Series("frequency_hz", freq), pl.Series("period_s", 1.0 / freq))
    pk = pk.with_columns(pl.Series("pointing", pointing_lines(res, pk), dtype=pl.Boolean))
    first = g.row(0, named=True)
    n_points = dict(zip(res.names, res.n_points, strict=True))
    meta = {
        "program": first["program"],
        "observation": None if by == "guide_star" else first["observation"],
        "visit": None if by == "guide_star" else first["visit"],
        "file_name": first["file_name"],
        "gs_id": first["gs_id"],
        "grouped_by": by,
        "n_files": g.height,
        "start_mjd": float(rows["time_mjd"].min()),
        "end_mjd": float(rows["time_mjd"].max()),
    }
    out = pk.rename({"series": "parameter"}).with_columns(
        *(pl.lit(v).alias(k) for k, v in meta.items()),
        pl.col("parameter").replace_strict(n_points, return_dtype=pl.Int32).alias("n_points"),
    )
    if spectra is not None:
        if getattr(spectra, "keep_series", False):  # the plot's FAP levels need the series
            res.extra["series"] = (t, np.vstack(values))
        spectra.write(meta, res)
    return out.select([pl.col(c).cast(t) for c, t in _PEAK_SCHEMA.items()])


def _anomalies_within(
    intervals: pl.DataFrame | None, g: pl.DataFrame, rows: pl.DataFrame
) -> pl.DataFrame | None:
    """The anomaly intervals of the group's guide star that overlap its frames."""
    if intervals is None or rows.is_empty():
        return None
    t0, t1 = float(rows["time_mjd"].min()), float(rows["time_mjd"].max())
    return intervals.filter(
        (pl.col("gs_id") == g["gs_id"][0]) & (pl.col("end_mjd") >= t0) & (pl.col("start_mjd") <= t1)
    )


class _SpectraWriter:
    """Full spectra to one Parquet file, one row group per (group, parameter)."""

    SCHEMA = pa.schema(
        [
            ("program", pa.int32()),
            ("observation", pa.int32()),
            ("visit", pa.int32()),
            ("file_name", pa.string()),
            ("gs_id", pa.string()),
            ("grouped_by", pa.string()),
            ("parameter", pa.string()),
            ("frequency_hz", pa.float64()),
            ("power", pa.float32()),
        ]
    )

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.tmp, self.SCHEMA, compression="zstd")
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self.rows = 0

    def write(self, meta: dict, res) -> None:
        freq = res.frequency_hz()
        for name in res.names:
            n = freq.size
            cols = {
                "program": pa.array(np.full(n, meta["program"], np.int32)),
                "observation": pa.nulls(n, pa.int32())
                if meta["observation"] is None
                else pa.array(np.full(n, meta["observation"], np.int32)),
                "visit": pa.nulls(n, pa.int32())
                if meta["visit"] is None
                else pa.array(np.full(n, meta["visit"], np.int32)),
                "file_name": pa.array([meta["file_name"]] * n, pa.string()),
                "gs_id": pa.array([meta["gs_id"]] * n, pa.string()),
                "grouped_by": pa.array([meta["grouped_by"]] * n, pa.string()),
                "parameter": pa.array([name] * n, pa.string()),
                "frequency_hz": pa.array(freq),
                "power": pa.array(res.power_of(name).astype(np.float32)),
            }
            self.writer.write_table(pa.table(cols, schema=self.SCHEMA))
            self.rows += n

    def close(self, ok: bool) -> None:
        self.writer.close()
        if ok:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class _SpectraKeeper:
    """Keeps each group's spectrum (and its conditioned series) in memory, for plotting."""

    keep_series = True

    def __init__(self) -> None:
        self.found: list[tuple[dict, object]] = []

    def write(self, meta: dict, res) -> None:
        self.found.append((meta, res))


def _group_series(db: Database, con, units: list[pl.DataFrame], by: str, intervals):
    """Each periodogram group of ``units`` with its series rows and the anomaly intervals within
    it, one unit's series read at a time (run_periodograms and periodogram_spectra share it)."""
    for unit in units:
        rows = load_series(db, con, unit)
        for g in _groups(unit, by):
            sub = rows.join(g.select("file_name"), on="file_name", how="semi")
            yield g, sub, _anomalies_within(intervals, g, sub)


def periodogram_spectra(
    db: Database,
    program: int | None = None,
    obs: int | None = None,
    visit: int | None = None,
    gs_id: str | None = None,
    params: Sequence[str] | None = None,
    *,
    by: str = "visit",
    samples_per_peak: float = 5,
    n_peaks: int = N_PEAKS,
) -> tuple[list[tuple[dict, object]], list[str]]:
    """The spectra :func:`run_periodograms` computes for a selection, without writing anything.

    The same code path (series cleaned of spikes and the archive's anomaly intervals, cut at steps,
    conditioned; the same grid), so a plot shows the spectrum its peaks came from. Returns
    ([(meta, PeriodogramResult)], skipped-reasons); each result's ``extra["series"]`` is
    (time_s, conditioned values (k, n)).
    """
    params = _check_params(params)
    if by not in GROUPINGS:
        raise UsageError(f"unknown grouping {by!r}; valid values: {', '.join(GROUPINGS)}")
    keeper, skips = _SpectraKeeper(), []
    with db.reader() as con:
        files = _fitted_files(db, con, _fg_files(db, con, program), program, lambda _t: None)
        for name, value in (("observation", obs), ("visit", visit), ("gs_id", gs_id)):
            if value is not None:
                files = files.filter(pl.col(name) == value)
        intervals = (
            _table(db, con, "analysis/anomaly_intervals") if _exists(db, con, "anomalies") else None
        )
        for g, sub, anomalies in _group_series(db, con, _load_units(files, by), by, intervals):
            _periodogram_group(
                g,
                sub,
                params,
                by,
                samples_per_peak=samples_per_peak,
                n_peaks=n_peaks,
                skips=skips,
                spectra=keeper,
                anomalies=anomalies,
            )
    return keeper.found, [f"{s.what}: {s.why}" for s in skips]


def instrumental_min_stars(n_stars: int) -> int:
    """Stars a line must recur in: 3, or 2 when the archive has only two guide stars.

    With a single guide star no line can be told from the star's own signal (none is learned).
    """
    return 3 if n_stars >= 3 else 2


def _learn_lines(db: Database, con) -> tuple[pl.DataFrame, int]:
    """Instrumental lines from all peaks of the archive (see :func:`line_contrast`)."""
    peaks = _table(db, con, "analysis/peaks_all")
    n_stars = peaks["gs_id"].n_unique() if peaks.height else 0
    min_stars = instrumental_min_stars(n_stars)
    peaks = peaks.filter(pl.col("n_cycles") >= LINE_MIN_CYCLES)
    lines = instrumental_lines(
        peaks, rel_tol=INSTRUMENTAL_REL_TOL, min_stars=min_stars, max_fap=INSTRUMENTAL_MAX_FAP
    )
    lines = line_contrast(
        lines, peaks.filter(pl.col("fap") <= INSTRUMENTAL_MAX_FAP), rel_tol=INSTRUMENTAL_REL_TOL
    )
    lines = (
        lines.filter(pl.col("contrast_sigma") >= LINE_MIN_CONTRAST)
        .sort(["n_stars", "frequency_hz"], descending=[True, False])
        .drop("line_id")
        .with_row_index("line_id")
        .with_columns(
            pl.col("line_id").cast(pl.Int32),
            pl.lit(min_stars, pl.Int32).alias("min_stars"),
            pl.lit(INSTRUMENTAL_REL_TOL).alias("rel_tol"),
        )
    )
    return lines, n_stars


def _store_lines(db: Database, con) -> tuple[pl.DataFrame, int]:
    """Re-learn ``instrumental_lines`` from every stored peak and relabel every peak (in the
    caller's write transaction): labels change, spectra and peaks stay."""
    lines, n_stars = _learn_lines(db, con)
    db.run(con, "analysis/lines_delete")
    if lines.height:
        db.run(con, "analysis/lines_insert", new_lines=lines.to_arrow())
    labels = lines.select(
        "line_id",
        "frequency_hz",
        (pl.col("frequency_hz") * (1 - INSTRUMENTAL_REL_TOL)).alias("lo_hz"),
        (pl.col("frequency_hz") * (1 + INSTRUMENTAL_REL_TOL)).alias("hi_hz"),
    )
    db.run(con, "analysis/peaks_label", labels=labels.to_arrow())
    return lines, n_stars


def run_periodograms(
    db: Database,
    program: int | None = None,
    params: Sequence[str] | None = None,
    by: str = "visit",
    out: str | Path | None = None,
    *,
    samples_per_peak: float = 5,
    n_peaks: int = N_PEAKS,
    on_warning: Warn | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Lomb-Scargle periodograms of the fitted parameters of every guide-star run; table ``periodogram_peaks``.

    ``by``: ``"file"`` (one guide period: its segment files joined), ``"visit"`` (a visit's files
    of one guide star) or ``"guide_star"`` (all files of a guide star in a program). Never across
    guide stars. ``params``: names from :data:`PERIODOGRAM_PARAMETERS` (default all). Frames whose
    fit did not converge are masked. Grid: 1/baseline to the Nyquist frequency of the files'
    cadence (``files.frame_time_s``), ``samples_per_peak`` points per resolution element.
    ``out``: also write the full spectra (long format) to this Parquet file.

    Replaces the rows of (program, grouping, parameters) recomputed; then re-learns
    ``instrumental_lines`` from all peaks of the archive and relabels every peak.
    Returns the new peaks (with ``instrumental``/``line_id``).
    """
    warn = _warner(on_warning)
    params = _check_params(params)
    if by not in GROUPINGS:
        raise UsageError(f"unknown grouping {by!r}; valid values: {', '.join(GROUPINGS)}")
    started = time.perf_counter()
    skips: list[_Skip] = []
    spectra = _SpectraWriter(Path(out)) if out is not None else None
    ok = False
    try:
        with db.reader() as con:
            files = _fitted_files(db, con, _fg_files(db, con, program), program, warn)
            units = _load_units(files, by)
            groups_total = sum(len(_groups(u, by)) for u in units)
            done, results = 0, []
            intervals = (
                _table(db, con, "analysis/anomaly_intervals")
                if _exists(db, con, "anomalies")
                else None
            )
            for g, sub, anomalies in _group_series(db, con, units, by, intervals):
                pk = _periodogram_group(
                    g,
                    sub,
                    params,
                    by,
                    samples_per_peak=samples_per_peak,
                    n_peaks=n_peaks,
                    skips=skips,
                    spectra=spectra,
                    anomalies=anomalies,
                )
                if pk is not None:
                    results.append(pk)
                done += 1
                if progress:
                    progress(done, groups_total)
        if not results:
            detail = "; ".join(f"{s.what}: {s.why}" for s in skips[:3]) or "nothing to analyse"
            raise SelectionError(f"no periodogram could be computed ({detail})")
        ok = True
    finally:
        if spectra is not None:
            spectra.close(ok)
    for s in skips:
        warn(f"periodogram skipped for {s.what}: {s.why}")
    if intervals is None:
        warn(
            "no anomalies in the archive: the series were not cleaned of drops and steps; run "
            "`fgsarchive anomalies` first (`fgsarchive analyse` does) for cleaner spectra"
        )
    peaks = pl.concat(results)
    with db.writer() as con:
        db.run(con, "analysis/create_periodogram")
        db.run(
            con,
            "analysis/peaks_delete",
            {"program": program, "grouped_by": by, "parameters": params},
        )
        db.run(con, "analysis/peaks_insert", new_peaks=peaks.to_arrow())
        lines, n_stars = _store_lines(db, con)
        _invalidate_units(db, con, program, units=by == "visit")
        _log_run(
            db,
            con,
            "periodogram",
            program,
            {
                "params": params,
                "by": by,
                "samples_per_peak": samples_per_peak,
                "n_peaks": n_peaks,
                "instrumental_min_stars": instrumental_min_stars(n_stars),
                "out": str(out) if out else None,
            },
            n_groups=len(results),
            n_rows=peaks.height,
            seconds=time.perf_counter() - started,
        )
    if n_stars < 2:
        warn(
            f"only {n_stars} guide star in the archive's periodograms: no instrumental line can be "
            "learned (a line must recur in the peaks of 2 or more stars)"
        )
    elif n_stars == 2:
        warn(
            "only 2 guide stars in the archive's periodograms: a frequency in the peaks of both is "
            "taken as instrumental (3 stars are required once the archive has 3 or more)"
        )
    labelled = label_instrumental(peaks, lines, rel_tol=INSTRUMENTAL_REL_TOL)
    return labelled.with_columns(pl.col("instrumental") | pl.col("pointing").fill_null(False))


def _invalidate_units(db: Database, con, program: int | None, *, units: bool) -> None:
    """A single analysis replaced results ``fgsarchive analyse`` keeps per unit: forget those
    units (``units``) and the archive-wide fingerprint, so the next analyse recomputes them."""
    invalidate(db, con, program, units=units)


def _log_run(
    db: Database,
    con,
    analysis: str,
    program,
    options: dict,
    *,
    n_groups: int,
    n_rows: int,
    seconds: float,
) -> None:
    db.run(
        con,
        "analysis/runs_insert",
        {
            "analysis": analysis,
            "program": program,
            "options": json.dumps(options, default=str),
            "n_groups": int(n_groups),
            "n_rows": int(n_rows),
            "seconds": float(seconds),
        },
    )


# --------------------------------------------------------------------------------------------------
# Anomalies
# --------------------------------------------------------------------------------------------------
_ANOMALY_COLUMNS = {
    "program": pl.Int32,
    "observation": pl.Int32,
    "visit": pl.Int32,
    "file_name": pl.String,
    "gs_id": pl.String,
    "kind": pl.String,
    "start_mjd": pl.Float64,
    "end_mjd": pl.Float64,
    "duration_s": pl.Float64,
    "start_s": pl.Float64,
    "parameters": pl.List(pl.String),
    "kinds": pl.List(pl.String),
    "amplitude": pl.Float64,
    "significance": pl.Float64,
    "n_detections": pl.Int32,
    "start_frame": pl.Int32,
    "end_file_name": pl.String,
    "end_frame": pl.Int32,
    "coincident_events": pl.List(
        pl.Struct(
            {
                "kind": pl.String,
                "start_mjd": pl.Float64,
                "end_mjd": pl.Float64,
                "file_name": pl.String,
                "detail": pl.String,
                "offset_s": pl.Float64,
            }
        )
    ),
    "coincident_kinds": pl.List(pl.String),
    "min_sigma": pl.Float64,
}
_EVENTS_SCHEMA = {
    "kind": pl.String,
    "start_mjd": pl.Float64,
    "end_mjd": pl.Float64,
    "file_name": pl.String,
    "detail": pl.String,
}


def _flux_series(rows: pl.DataFrame) -> tuple[str, np.ndarray] | None:
    """The flux searched for drops: flux_opt, else flux_r2 (photometry), else the frames' sum."""
    for name in ("flux_opt", "flux_r2", "flux"):
        if name in rows.columns:
            v = rows[name].to_numpy()
            if np.isfinite(v).sum() >= MIN_POINTS:
                return name, v
    return None


def _anomaly_series(rows: pl.DataFrame) -> dict[str, np.ndarray]:
    series: dict[str, np.ndarray] = {}
    flux = _flux_series(rows)
    if flux is not None:
        series[flux[0]] = decorrelate_pointing(rows, flux[1])
    for p in ANOMALY_PARAMETERS:
        if p in rows.columns:
            series[p] = rows[p].to_numpy()
    if "background" in rows.columns:
        series["background"] = rows["background"].to_numpy()
    return series


def _events_available(db: Database, con, program: int | None) -> bool:
    if not _exists(db, con, "events"):
        return False
    return int(db.run(con, "analysis/events_count", {"program": program}).fetchall()[0][0]) > 0


def search_run(
    sub: pl.DataFrame,
    run: pl.DataFrame,
    min_sigma: float,
    visit_start_mjd: float,
    workers: int | None = None,
) -> pl.DataFrame:
    """Anomalies of one guide-star run (``sub``: its series from :func:`load_series`, ``run``:
    its files), with where each lies (program ... end_frame, ``start_s`` from the visit's start);
    no event cross-match. Shared by :func:`run_anomalies` and ``fgsarchive analyse``.
    ``workers``: threads of ``detect_anomalies`` (default: one per CPU)."""
    cadence = (
        float(np.median(run["frame_time_s"].drop_nulls().to_numpy()))
        if run["frame_time_s"].drop_nulls().len()
        else None
    )
    an = detect_anomalies(
        sub["time_mjd"].to_numpy(),
        _anomaly_series(sub),
        min_sigma=min_sigma,
        cadence_s=cadence,
        workers=workers,
    )
    if an.is_empty():
        return an
    first = run.row(0, named=True)
    si, ei = an["start_index"].to_numpy(), an["end_index"].to_numpy()
    fn, fr = sub["file_name"].to_numpy(), sub["frame"].to_numpy()
    return an.with_columns(
        pl.lit(first["program"]).alias("program"),
        pl.lit(first["observation"]).alias("observation"),
        pl.lit(first["visit"]).alias("visit"),
        pl.lit(first["gs_id"]).alias("gs_id"),
        pl.Series("file_name", fn[si]),
        pl.Series("start_frame", fr[si]),
        pl.Series("end_file_name", fn[ei]),
        pl.Series("end_frame", fr[ei]),
        pl.lit(float(min_sigma)).alias("min_sigma"),
        ((pl.col("start_mjd") - visit_start_mjd) * SECONDS_PER_DAY).alias("start_s"),
    )


def run_anomalies(
    db: Database,
    program: int | None = None,
    min_sigma: float = 5.0,
    *,
    window_s: float = CROSS_MATCH_WINDOW_S,
    on_warning: Warn | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Anomaly search per visit and guide star (consecutive files of one gs_id); table ``anomalies``.

    Series: the optimal-aperture flux (``flux_opt``; ``flux_r2`` or the frames' summed flux when
    there is no photometry), the Gaussian x_mean, y_mean, x_stddev, y_stddev, theta, amplitude
    and the photometry background, each NaN where the fit did not converge; the flux is first
    decorrelated from the pointing (``decorrelate_pointing``). Each anomaly gets the
    observatory events (``events``: HGA moves, filter-wheel moves, ...) within ``window_s`` of it.
    Replaces the anomalies of the program (or of all programs). Returns the new rows.
    """
    warn = _warner(on_warning)
    if not min_sigma > 0:
        raise UsageError(f"--min-sigma must be > 0, got {min_sigma}")
    started = time.perf_counter()
    results = []
    n_runs = 0
    with db.reader() as con:
        files = _fitted_files(db, con, _fg_files(db, con, program), program, warn)
        with_events = _events_available(db, con, program)
        units = _load_units(files, "visit")
        total = sum(len(_runs(u)) for u in units)
        done = 0
        for unit in units:
            rows = load_series(db, con, unit)
            visit_start = float(unit["data_start_mjd"].min())
            for run in _runs(unit):
                done += 1
                sub = rows.join(run.select("file_name"), on="file_name", how="semi")
                if sub.height < MIN_POINTS:
                    continue
                n_runs += 1
                an = search_run(sub, run, min_sigma, visit_start)
                if progress:
                    progress(done, total)
                if an.is_empty():
                    continue
                if with_events:
                    t0, t1 = float(sub["time_mjd"].min()), float(sub["time_mjd"].max())
                    pad = window_s / SECONDS_PER_DAY
                    ev = _table(
                        db,
                        con,
                        "analysis/events",
                        {
                            "program": int(run["program"][0]),
                            "start_mjd": t0 - pad,
                            "end_mjd": t1 + pad,
                        },
                    )
                else:
                    ev = pl.DataFrame(schema=_EVENTS_SCHEMA)
                an = cross_match_events(an, ev.cast(_EVENTS_SCHEMA), window_s=window_s)
                results.append(an.select([pl.col(c).cast(t) for c, t in _ANOMALY_COLUMNS.items()]))
    if n_runs == 0:
        raise SelectionError(
            f"{_what(program)} has no guide-star run long enough to search ({MIN_POINTS} frames)"
        )
    if not with_events:
        warn(
            "no observatory events in the archive (coincident_events left empty): derive them with "
            "`fgsarchive events` (or `fgsarchive telemetry`) and re-run `fgsarchive anomalies`"
        )
    table = pl.concat(results) if results else pl.DataFrame(schema=_ANOMALY_COLUMNS)
    table = table.sort("start_mjd")
    with db.writer() as con:
        db.run(con, "analysis/create_anomalies")
        db.run(con, "analysis/anomalies_delete", {"program": program})
        if table.height:
            db.run(con, "analysis/anomalies_insert", new_anomalies=table.to_arrow())
        _invalidate_units(db, con, program, units=True)
        _log_run(
            db,
            con,
            "anomalies",
            program,
            {"min_sigma": min_sigma, "window_s": window_s, "events": with_events},
            n_groups=n_runs,
            n_rows=table.height,
            seconds=time.perf_counter() - started,
        )
    return table


# --------------------------------------------------------------------------------------------------
# Variable guide stars
# --------------------------------------------------------------------------------------------------
_INSTRUMENTAL_FAMILIES = {"centroid", "width", "theta", "background", "jitter"}


def _instrumental_anomalies(
    anomalies: pl.DataFrame, mask: str
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """Which anomalies the variability statistics leave out: (intervals to drop, step times).

    ``"all"`` (default): every anomaly. ``"instrumental"``: only anomalies that coincide with an
    observatory event or show in a centroid, PSF-width, theta, background or jitter series (the
    telescope's doing); flux-only anomalies stay, since they may be the star's own dips and flares
    (``"all"`` masks an eclipse shorter than a few minutes along with the flux drops).
    ``"none"``: nothing. Transients are dropped as intervals; steps (kinds ``*_jump``,
    ``*_change``, ``*_step``) cannot be, so with ``flux_opt`` the visit is cut there and each
    piece normalised on its own (a PSF-width step changes the aperture losses).
    """
    if mask == "none" or anomalies.is_empty():
        return None, None
    if mask == "instrumental":
        keep = [
            bool(ev) or any(parameter_family(p) in _INSTRUMENTAL_FAMILIES for p in (ps or []))
            for ps, ev in zip(
                anomalies["parameters"].to_list(), anomalies["with_event"].to_list(), strict=True
            )
        ]
        anomalies = anomalies.filter(pl.Series(keep, dtype=pl.Boolean))
    is_step = pl.col("kind").str.ends_with(STEP_SUFFIXES[0])
    for suffix in STEP_SUFFIXES[1:]:
        is_step = is_step | pl.col("kind").str.ends_with(suffix)
    steps = anomalies.filter(is_step).select("gs_id", "start_mjd")
    intervals = anomalies.filter(~is_step).select("gs_id", "start_mjd", "end_mjd")
    return (intervals if intervals.height else None), (steps if steps.height else None)


def _of_star(df: pl.DataFrame | None, gs_id: str) -> pl.DataFrame | None:
    return df.filter(pl.col("gs_id") == gs_id) if df is not None else None


def _star_frames(
    rows: pl.DataFrame, gain: float, steps: pl.DataFrame | None, flux: str
) -> tuple[pl.DataFrame, str]:
    """Per-frame gs_id, visit_key, time_mjd, flux, flux_err of one star for ``variability_stats``.

    ``flux="total"``: the sum of the 64 pixels minus 64 x the file's median fitted sky (the
    Gaussian's constant ``offset``); ``"flux_opt"``: the calibrated optimal-aperture flux (whose
    fixed pixel mask makes it follow the pointing and the PSF width: the visit is then also cut at
    instrumental steps). Photon noise of what was summed (star and sky).
    """
    c = rows["frame_time_s"].cast(pl.Float64) * gain  # electrons per DN/s
    use_opt = (
        flux == "flux_opt"
        and "flux_opt" in rows.columns
        and rows["flux_opt"].is_not_nan().sum() >= 0.5 * rows.height
    )
    if use_opt:
        values = rows["flux_opt"]
        err = (rows["flux_opt_raw"].clip(lower_bound=0) * c).sqrt() / c * rows["flux_opt_gain"]
        source = "flux_opt"
    else:
        err = (rows["flux"].clip(lower_bound=0) * c).sqrt() / c
        values = rows["flux"]
        source = "flux"
        if "offset" in rows.columns:
            sky = rows.select(
                pl.when(pl.col("offset").is_finite())
                .then(pl.col("offset"))
                .median()
                .over("file_name")
            ).to_series()
            values = values - 64.0 * sky.fill_null(0.0)
            source = "flux-sky"
    key = (
        rows["program"].cast(pl.String)
        + "/"
        + rows["observation"].cast(pl.String)
        + "/"
        + rows["visit"].cast(pl.String)
    )
    if use_opt and steps is not None and steps.height:
        piece = np.searchsorted(
            np.sort(steps["start_mjd"].to_numpy()), rows["time_mjd"].to_numpy(), side="right"
        )
        key = key + "/" + pl.Series(piece).cast(pl.String)
    frame_df = pl.DataFrame(
        {
            "gs_id": rows["gs_id"],
            "visit_key": key,
            "time_mjd": rows["time_mjd"],
            "flux": values,
            "flux_err": err,
        }
    )
    return frame_df, source


def run_variables(
    db: Database,
    top: int | None = None,
    *,
    gain: float = GAIN_E_PER_DN,
    bin_s: float = VARIABILITY_BIN_S,
    mask: str = "all",
    flux: str = "total",
    on_warning: Warn | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Variability statistics of every guide star over all its visits and programs; table ``variability``.

    ``flux="total"`` (default): the sum of the 64 pixels minus 64 x the file's median fitted sky
    (``frames.flux`` minus the Gaussian's ``offset``). ``"flux_opt"``: the optimal-aperture flux
    as calibrated by :func:`load_series`; its fixed pixel mask turns pointing drifts, centroid
    jumps and PSF-width changes into flux changes of 0.1-0.5 % (measured on simulated data: the
    binned RMS of constant stars is 1.5-4x that of the total flux), so it is not the default.
    Expected per-frame noise from the count rate: electrons = DN/s x ``files.frame_time_s`` x
    ``gain`` (2 e-/DN, the simulator's value) of what was summed (star and sky); read noise left
    out. Left out: frames whose fit did not converge, the instrumental lines
    (``instrumental_lines``, when periodograms were run; a sinusoid at each is fitted out of every
    binned visit) and the anomalies chosen by ``mask`` (:func:`_instrumental_anomalies`). All
    stars are recomputed and ranked (1 = most variable);
    returns the ``top`` best (all by default).
    """
    warn = _warner(on_warning)
    if mask not in ("instrumental", "all", "none"):
        raise UsageError(f"unknown mask {mask!r}; valid values: instrumental, all, none")
    if flux not in ("total", "flux_opt"):
        raise UsageError(f"unknown flux {flux!r}; valid values: total, flux_opt")
    if top is not None and top < 1:
        raise UsageError(f"--top must be >= 1, got {top}")
    if not gain > 0:
        raise UsageError(f"gain must be > 0, got {gain}")
    started = time.perf_counter()
    stats = []
    with db.reader() as con:
        files = _fg_files(db, con)
        if files.is_empty():
            raise _no_files_error(None)
        files = files.filter(pl.col("gs_id").is_not_null())
        lines = (
            _table(db, con, "analysis/lines") if _exists(db, con, "instrumental_lines") else None
        )
        if lines is not None and lines.is_empty():
            lines = None
        intervals = steps = None
        if _exists(db, con, "anomalies"):
            intervals, steps = _instrumental_anomalies(
                _table(db, con, "analysis/anomaly_intervals"), mask
            )
        elif mask != "none":
            warn(
                "no anomalies table yet: no anomaly is left out (run `fgsarchive anomalies` first)"
            )
        if not db.parts.has_dataset(_PHOT_DATASET):
            warn(
                "no photometry yet: using the frames' summed flux (run `fgsarchive fit` for flux_opt)"
            )
        stars = files["gs_id"].unique(maintain_order=True).to_list()
        for i, gs_id in enumerate(stars):
            sel = files.filter(pl.col("gs_id") == gs_id)
            rows = load_series(db, con, sel)
            frame_df, source = _star_frames(rows, gain, _of_star(steps, gs_id), flux)
            st = variability_stats(
                frame_df, bin_s=bin_s, lines=lines, anomalies=_of_star(intervals, gs_id)
            )
            if st.height:
                st = st.with_columns(
                    pl.lit(
                        sel.select("program", "observation", "visit").n_unique(), pl.Int64
                    ).alias("n_visits"),
                    pl.lit(source).alias("flux_source"),
                    pl.lit(
                        sorted({int(p) for p in sel["program"].to_list()}), pl.List(pl.Int32)
                    ).alias("programs"),
                )
                stats.append(st)
            if progress:
                progress(i + 1, len(stars))
    if not stats:
        raise SelectionError("no guide star has enough unmasked frames for variability statistics")
    table = (
        pl.concat(stats)
        .sort(["score", "gs_id"], descending=[True, False], nulls_last=True)
        .drop("rank")
        .with_row_index("rank", offset=1)
    )
    cols = {**VARIABILITY_SCHEMA, "flux_source": pl.String, "programs": pl.List(pl.Int32)}
    table = table.select([pl.col(c).cast(t) for c, t in cols.items()])
    with db.writer() as con:
        db.run(con, "analysis/create_variability")
        db.run(con, "analysis/variability_delete")
        db.run(con, "analysis/variability_insert", new_variability=table.to_arrow())
        _invalidate_units(db, con, None, units=False)
        _log_run(
            db,
            con,
            "variables",
            None,
            {
                "gain": gain,
                "bin_s": bin_s,
                "mask": mask,
                "lines": 0 if lines is None else lines.height,
            },
            n_groups=table.height,
            n_rows=table.height,
            seconds=time.perf_counter() - started,
        )
    return table.head(top) if top is not None else table


# --------------------------------------------------------------------------------------------------
# Stored fingerprints (analysis_state), shared with :mod:`.incremental`
# --------------------------------------------------------------------------------------------------
def _state(db: Database, con, key: str) -> str | None:
    rows = db.run(con, "analysis/state_get", {"key": key}).fetchall()
    return rows[0][0] if rows else None


def _set_state(db: Database, con, key: str, value: str | None) -> None:
    db.run(con, "analysis/state_delete", {"key": key})
    if value is not None:
        db.run(con, "analysis/state_insert", {"key": key, "value": value})


def invalidate(db: Database, con, program: int | None, *, units: bool) -> None:
    """For the single-analysis commands, in their write transaction: what they replaced is no
    longer what ``analyse`` stored (``units``: the units of ``program``, or all), and the
    archive-wide products are recomputed by the next ``analyse``."""
    if units:
        db.run(con, "analysis/units_invalidate", {"program": program})
    _set_state(db, con, "archive_wide", None)
